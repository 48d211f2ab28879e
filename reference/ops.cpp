#include <attncheck/reference/einsum.h>
#include <attncheck/reference/ops.h>

#include <cmath>
#include <stdexcept>

namespace attncheck::ref {

View permute(const View& x, std::span<const int> perm) {
  View out = x;
  out.layout = x.layout.permuted(perm);
  return out;
}

View permute(const View& x, std::initializer_list<int> perm) {
  return permute(x, std::span<const int>(perm.begin(), perm.size()));
}

View reshape(const View& x, std::span<const int64_t> shape) {
  if (auto layout = x.layout.reshaped(shape)) {
    View out = x;
    out.layout = *layout;
    return out;
  }
  Tensor copy = contiguous(x);
  copy.shape.assign(shape.begin(), shape.end());
  return copy.view();
}

View reshape(const View& x, std::initializer_list<int64_t> shape) {
  return reshape(x, std::span<const int64_t>(shape.begin(), shape.size()));
}

Tensor softmax(const View& x, int axis) {
  if (axis < 0 || axis >= x.rank())
    throw std::invalid_argument("softmax: axis " + std::to_string(axis) +
                                " out of range for rank " + std::to_string(x.rank()));
  Tensor out = contiguous(x);
  const int64_t n = x.shape()[axis];
  int64_t inner = 1;
  for (int d = axis + 1; d < x.rank(); ++d) inner *= x.shape()[d];
  const int64_t outer = out.numel() / (n * inner);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      real* row = out.data->data() + o * n * inner + i;
      real m = row[0];
      for (int64_t j = 1; j < n; ++j) m = std::max(m, row[j * inner]);
      NeumaierSum sum;
      for (int64_t j = 0; j < n; ++j) {
        row[j * inner] = std::exp(row[j * inner] - m);
        sum.add(row[j * inner]);
      }
      const real total = sum.value();
      for (int64_t j = 0; j < n; ++j) row[j * inner] /= total;
    }
  return out;
}

Tensor scaled(const View& x, real s) {
  Tensor out = contiguous(x);
  for (real& e : *out.data) e *= s;
  return out;
}

}  // namespace attncheck::ref
