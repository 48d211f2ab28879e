// permute, reshape and softmax with NumPy / PyTorch semantics.
#pragma once

#include <attncheck/reference/view.h>

#include <span>

namespace attncheck::ref {

// x.permute(perm): dimension i of the result is dimension perm[i] of x.
View permute(const View& x, std::span<const int> perm);
View permute(const View& x, std::initializer_list<int> perm);

// x.reshape(shape): the elements of x in logical row-major order, laid out
// again in shape. A view of x's memory where the strides allow, otherwise a
// view of a packed copy; the values are identical either way.
View reshape(const View& x, std::span<const int64_t> shape);
View reshape(const View& x, std::initializer_list<int64_t> shape);

// exp(x - max) / sum exp(x - max) along axis, in long double.
Tensor softmax(const View& x, int axis);

// x * s, elementwise.
Tensor scaled(const View& x, real s);

}  // namespace attncheck::ref
