#include <attncheck/layout.h>

#include <algorithm>
#include <charconv>
#include <stdexcept>

namespace attncheck {

Layout Layout::compact(std::vector<int64_t> shape, int64_t offset) {
  Layout l;
  l.stride.assign(shape.size(), 1);
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i) {
    int64_t next = shape[i + 1] > 0 ? shape[i + 1] : 1;
    if (__builtin_mul_overflow(l.stride[i + 1], next, &l.stride[i]))
      throw std::overflow_error("compact layout: strides overflow int64");
  }
  l.shape = std::move(shape);
  l.offset = offset;
  return l;
}

int64_t Layout::numel() const {
  // A size-0 dimension first: then the other sizes may be anything (their
  // product is not computed), whatever the order of the dimensions.
  for (int64_t s : shape)
    if (s == 0) return 0;
  int64_t n = 1;
  for (int64_t s : shape)
    if (__builtin_mul_overflow(n, s, &n))
      throw std::overflow_error("layout " + str() + ": element count overflows int64");
  return n;
}

int64_t Layout::index(std::span<const int64_t> idx) const {
  int64_t off = offset;
  for (size_t i = 0; i < idx.size(); ++i) off += idx[i] * stride[i];
  return off;
}

int64_t Layout::max_offset() const {
  // No element, no extent: checked before any term, so that a permutation
  // of a valid empty layout is valid too.
  for (int64_t s : shape)
    if (s == 0) return offset;
  int64_t off = offset;
  for (size_t i = 0; i < shape.size(); ++i) {
    int64_t term;
    if (__builtin_mul_overflow(shape[i] - 1, stride[i], &term) ||
        __builtin_add_overflow(off, term, &off))
      throw std::overflow_error("layout " + str() + ": extent overflows int64");
  }
  return off;
}

bool Layout::is_compact() const {
  int64_t expect = 1;
  for (int i = rank() - 1; i >= 0; --i) {
    if (shape[i] == 1) continue;
    if (stride[i] != expect) return false;
    // Past int64 (an empty layout's other sizes may be anything), no stride
    // can match any more: compact only if every outer dim has size 1.
    if (__builtin_mul_overflow(expect, shape[i], &expect)) {
      for (int j = i - 1; j >= 0; --j)
        if (shape[j] != 1) return false;
      return true;
    }
  }
  return true;
}

void Layout::validate() const {
  if (shape.size() != stride.size())
    throw std::invalid_argument("layout: " + std::to_string(shape.size()) + " sizes but " +
                                std::to_string(stride.size()) + " strides");
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0)
      throw std::invalid_argument("layout " + str() + ": size " + std::to_string(i) +
                                  " is negative");
    if (stride[i] < 0)
      throw std::invalid_argument("layout " + str() + ": stride " + std::to_string(i) +
                                  " is negative");
  }
  if (offset < 0) throw std::invalid_argument("layout " + str() + ": offset is negative");
  numel();
  max_offset();
}

Layout Layout::permuted(std::span<const int> perm) const {
  if (static_cast<int>(perm.size()) != rank())
    throw std::invalid_argument("permute: " + std::to_string(perm.size()) +
                                " axes given for a rank-" + std::to_string(rank()) + " layout");
  std::vector<bool> seen(perm.size(), false);
  Layout out;
  out.offset = offset;
  for (int p : perm) {
    if (p < 0 || p >= rank() || seen[p])
      throw std::invalid_argument("permute: axis " + std::to_string(p) +
                                  " is out of range or repeated");
    seen[p] = true;
    out.shape.push_back(shape[p]);
    out.stride.push_back(stride[p]);
  }
  return out;
}

// PyTorch's computeStride (aten/src/ATen/TensorUtils.cpp), restated: walk the
// old dimensions from the innermost, cutting them into chunks whose elements
// are evenly spaced in memory; each chunk must be rebuilt from a run of new
// dimensions with the same element count.
std::optional<Layout> Layout::reshaped(std::span<const int64_t> new_shape) const {
  validate();  // the arithmetic below relies on every extent fitting in int64
  Layout out;
  out.shape.assign(new_shape.begin(), new_shape.end());
  out.stride.assign(new_shape.size(), 1);
  out.offset = offset;
  int64_t new_numel = 1;
  for (int64_t s : new_shape)
    if (s < 0) throw std::invalid_argument("reshape: negative size");
  // A size-0 dimension first: an empty shape's other sizes may be anything.
  if (std::find(new_shape.begin(), new_shape.end(), 0) != new_shape.end()) new_numel = 0;
  for (int64_t s : new_shape)
    if (new_numel != 0 && __builtin_mul_overflow(new_numel, s, &new_numel))
      throw std::overflow_error("reshape: element count overflows int64");
  if (new_numel != numel())
    throw std::invalid_argument("reshape: cannot reshape " + str() + " (" +
                                std::to_string(numel()) + " elements) to " +
                                std::to_string(new_numel) + " elements");
  if (numel() == 0 || new_shape.empty() || shape.empty()) return Layout::compact(out.shape, offset);
  int view_d = static_cast<int>(new_shape.size()) - 1;
  int64_t chunk_base_stride = stride.back();
  int64_t tensor_numel = 1, view_numel = 1;
  // The products below are checked: a chunk's element count times its base
  // stride may pass int64 even though its extent, (count - 1) times the
  // stride, fits (a valid layout's extents all fit).
  for (int d = rank() - 1; d >= 0; --d) {
    tensor_numel *= shape[d];  // <= numel()
    int64_t next_stride;       // the stride dim d - 1 needs to join the chunk
    const bool joins = d > 0 && (shape[d - 1] == 1 ||
                                 (!__builtin_mul_overflow(tensor_numel, chunk_base_stride, &next_stride) &&
                                  stride[d - 1] == next_stride));
    if (!joins) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
        // view_numel < tensor_numel keeps this in range for a dim of size
        // > 1; a size-1 dim's stride addresses nothing, so where PyTorch's
        // formula would overflow it gets the chunk's base stride.
        if (__builtin_mul_overflow(view_numel, chunk_base_stride, &out.stride[view_d]))
          out.stride[view_d] = chunk_base_stride;
        view_numel *= new_shape[view_d];  // <= new_numel
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base_stride = stride[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}

std::string Layout::str() const {
  auto list = [](const std::vector<int64_t>& v) {
    std::string s = "(";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
    return s + ")";
  };
  std::string s = list(shape) + ":" + list(stride);
  if (offset != 0) s += "+" + std::to_string(offset);
  return s;
}

namespace {
std::vector<int64_t> parse_list(std::string_view& t, std::string_view whole) {
  auto bad = [&](const char* what) {
    return std::invalid_argument("layout '" + std::string(whole) + "': " + what);
  };
  if (t.empty() || t.front() != '(') throw bad("expected '('");
  t.remove_prefix(1);
  std::vector<int64_t> v;
  if (!t.empty() && t.front() == ')') {
    t.remove_prefix(1);
    return v;
  }
  for (;;) {
    int64_t x = 0;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), x);
    if (ec != std::errc()) throw bad("expected an integer");
    t.remove_prefix(p - t.data());
    v.push_back(x);
    if (t.empty()) throw bad("unterminated list");
    char c = t.front();
    t.remove_prefix(1);
    if (c == ')') return v;
    if (c != ',') throw bad("expected ',' or ')'");
  }
}
}  // namespace

Layout Layout::parse(std::string_view text) {
  std::string_view t = text;
  Layout l;
  l.shape = parse_list(t, text);
  if (t.empty() || t.front() != ':')
    throw std::invalid_argument("layout '" + std::string(text) + "': expected ':'");
  t.remove_prefix(1);
  l.stride = parse_list(t, text);
  if (!t.empty()) {
    if (t.front() != '+')
      throw std::invalid_argument("layout '" + std::string(text) + "': expected '+offset'");
    t.remove_prefix(1);
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), l.offset);
    if (ec != std::errc() || p != t.data() + t.size())
      throw std::invalid_argument("layout '" + std::string(text) + "': bad offset");
  }
  l.validate();
  return l;
}

}  // namespace attncheck
