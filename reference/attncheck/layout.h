// A layout is a value: a (shape, stride) pair plus an offset, all in elements,
// printed in CuTe's notation `(1,2,3,4,5):(120,1,40,10,2)+3`.
//
// The same type describes a view for the reference, the generators, the
// checker's reports and the kernels' packing code. It holds no memory.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace attncheck {

struct Layout {
  std::vector<int64_t> shape;
  std::vector<int64_t> stride;  // in elements, >= 0
  int64_t offset = 0;           // in elements, >= 0

  // Row-major strides for shape (the last dimension has stride 1).
  static Layout compact(std::vector<int64_t> shape, int64_t offset = 0);
  // Parses the text form written by str(); throws std::invalid_argument.
  static Layout parse(std::string_view text);

  int rank() const { return static_cast<int>(shape.size()); }
  // Number of elements; throws std::overflow_error when it overflows int64.
  int64_t numel() const;
  // Element offset of a multi-index (no bounds check beyond rank).
  int64_t index(std::span<const int64_t> idx) const;
  // Largest element offset a valid index reaches (offset when numel() == 0).
  int64_t max_offset() const;
  // True when strides are the row-major ones (dims of size 1 are ignored).
  bool is_compact() const;

  // Throws std::invalid_argument (rank mismatch, negative size or stride) or
  // std::overflow_error (an extent that does not fit in int64).
  void validate() const;

  // Dimension i of the result is dimension perm[i] of this one.
  Layout permuted(std::span<const int> perm) const;
  // The layout of x.reshape(shape) when it can be a view of the same memory
  // (PyTorch's rule: each group of merged or split dimensions must be
  // contiguous among itself), std::nullopt when a copy is needed.
  std::optional<Layout> reshaped(std::span<const int64_t> new_shape) const;

  // "(s0,s1,...):(d0,d1,...)" plus "+offset" when the offset is not zero.
  std::string str() const;

  friend bool operator==(const Layout&, const Layout&) = default;
};

}  // namespace attncheck
