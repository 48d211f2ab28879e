// A strided view over typed memory, and the reference's own tensors.
#pragma once

#include <attncheck/layout.h>
#include <attncheck/reference/dtype.h>

#include <memory>
#include <vector>

namespace attncheck::ref {

// Element i of a view lives at base + size_of(dtype) * layout.index(i).
// A view may keep the memory it reads alive (owner), or borrow it.
struct View {
  DType dtype = DType::ext;
  const std::byte* base = nullptr;
  Layout layout;
  std::shared_ptr<const void> owner;  // null for borrowed memory

  const std::vector<int64_t>& shape() const { return layout.shape; }
  int rank() const { return layout.rank(); }
  real at(std::span<const int64_t> idx) const {
    return read(dtype, base + size_of(dtype) * layout.index(idx));
  }
};

// A compact tensor of ext values owned by the reference.
struct Tensor {
  std::vector<int64_t> shape;
  std::shared_ptr<std::vector<real>> data;

  explicit Tensor(std::vector<int64_t> shape);
  int64_t numel() const { return static_cast<int64_t>(data->size()); }
  real& operator[](int64_t i) { return (*data)[i]; }
  real operator[](int64_t i) const { return (*data)[i]; }
  real at(std::span<const int64_t> idx) const;
  // A view that keeps this tensor's storage alive.
  View view() const;
};

// Calls f(index) for every multi-index of shape in row-major order.
template <class F>
void for_each_index(const std::vector<int64_t>& shape, F&& f) {
  for (int64_t s : shape)
    if (s == 0) return;
  std::vector<int64_t> idx(shape.size(), 0);
  for (;;) {
    f(static_cast<std::span<const int64_t>>(idx));
    int d = static_cast<int>(shape.size()) - 1;
    while (d >= 0 && ++idx[d] == shape[d]) idx[d--] = 0;
    if (d < 0) return;
  }
}

// A packed copy of any view.
Tensor contiguous(const View& v);

}  // namespace attncheck::ref
