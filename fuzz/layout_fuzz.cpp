// Fuzz target `layout`: bytes -> a strided tensor and a sequence of view
// operations (permute, reshape, slice, expand). Two halves:
//
//  * small tensors in real memory: after every operation the engine's
//    Layout (permuted / reshaped, and slice / expand as stride arithmetic)
//    must address exactly the elements a brute-force enumeration of the
//    logical order says, and xtensor's adapt of the final layout must read
//    the same values; numel, max_offset, is_compact and the text form agree;
//  * arbitrary int64 shapes, strides and offsets: validate, numel,
//    max_offset, compact, permuted, reshaped and parse either answer or throw
//    their documented exceptions, never overflow (UBSan reports that).
#include <attncheck/layout.h>

#include <FuzzedDataProvider.h>
#include <xtensor/xadapt.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using attncheck::Layout;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "layout fuzz: %s\n", what.c_str());
  std::abort();
}
#define CHECK(cond, what) \
  do {                    \
    if (!(cond)) fail(std::string(#cond) + ": " + (what)); \
  } while (0)

std::vector<int64_t> row_major_indices(const std::vector<int64_t>& shape, int64_t flat) {
  std::vector<int64_t> idx(shape.size());
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return idx;
}

int64_t product(const std::vector<int64_t>& s) {
  return std::accumulate(s.begin(), s.end(), int64_t{1}, std::multiplies<>());
}

// A logical tensor as brute force knows it: the shape and, in row-major
// order, the buffer offset of every element.
struct Brute {
  std::vector<int64_t> shape;
  std::vector<int64_t> at;
};

Brute enumerate(const Layout& l) {
  Brute b{l.shape, {}};
  const int64_t n = product(l.shape);
  for (int64_t i = 0; i < n; ++i) {
    const auto idx = row_major_indices(l.shape, i);
    int64_t off = l.offset;
    for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * l.stride[d];
    b.at.push_back(off);
  }
  return b;
}

// The layout must address what brute force says, element by element.
void agree(const Layout& l, const Brute& b, const char* after) {
  l.validate();
  CHECK(l.shape == b.shape, std::string("shape after ") + after);
  CHECK(l.numel() == static_cast<int64_t>(b.at.size()), l.str());
  for (size_t i = 0; i < b.at.size(); ++i) {
    const auto idx = row_major_indices(b.shape, static_cast<int64_t>(i));
    CHECK(l.index(idx) == b.at[i], l.str() + " after " + after + " at flat " + std::to_string(i));
  }
  if (!b.at.empty()) {
    CHECK(l.max_offset() == *std::max_element(b.at.begin(), b.at.end()), l.str());
    bool compact = true;
    for (size_t i = 0; i < b.at.size(); ++i) compact &= b.at[i] == b.at[0] + static_cast<int64_t>(i);
    CHECK(l.is_compact() == compact, l.str() + " after " + after);
  }
  CHECK(Layout::parse(l.str()) == l, l.str());
}

void small_tensor(FuzzedDataProvider& in) {
  const int rank = in.ConsumeIntegralInRange<int>(1, 5);
  Layout l;
  for (int d = 0; d < rank; ++d) {
    l.shape.push_back(in.ConsumeIntegralInRange<int64_t>(in.ConsumeBool() ? 0 : 1, 5));
    l.stride.push_back(in.ConsumeIntegralInRange<int64_t>(0, 40));
  }
  l.offset = in.ConsumeIntegralInRange<int64_t>(0, 20);
  if (in.ConsumeBool()) l = Layout::compact(l.shape, l.offset);
  // The buffer: element i holds i, so a read tells where it came from.
  std::vector<double> buffer(static_cast<size_t>(l.max_offset()) + 1);
  std::iota(buffer.begin(), buffer.end(), 0.0);
  Brute b = enumerate(l);
  agree(l, b, "construction");
  for (int op = 0; op < 6 && in.remaining_bytes() > 0; ++op) {
    const int r = l.rank();
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
      case 0: {  // permute
        std::vector<int> perm(r);
        std::iota(perm.begin(), perm.end(), 0);
        for (int i = r - 1; i > 0; --i) std::swap(perm[i], perm[in.ConsumeIntegralInRange<int>(0, i)]);
        l = l.permuted(perm);
        Brute p{l.shape, {}};
        for (int64_t i = 0; i < static_cast<int64_t>(b.at.size()); ++i) {
          // Element idx of the result is element idx' of b with idx'[perm[d]] = idx[d].
          const auto idx = row_major_indices(l.shape, i);
          std::vector<int64_t> src(r);
          for (int d = 0; d < r; ++d) src[perm[d]] = idx[d];
          int64_t flat = 0;
          for (int d = 0; d < r; ++d) flat = flat * b.shape[d] + src[d];
          p.at.push_back(b.at[flat]);
        }
        b = p;
        agree(l, b, "permute");
        break;
      }
      case 1: {  // reshape: split the element count into up to 5 factors
        int64_t n = static_cast<int64_t>(b.at.size());
        std::vector<int64_t> shape;
        const int parts = in.ConsumeIntegralInRange<int>(1, 5);
        for (int i = 0; i < parts - 1; ++i) {
          int64_t f = n == 0 ? in.ConsumeIntegralInRange<int64_t>(0, 3) : 1;
          if (n > 0)
            for (int64_t k = in.ConsumeIntegralInRange<int64_t>(1, n); k >= 1; --k)
              if (n % k == 0) {
                f = k;
                break;
              }
          shape.push_back(f);
          if (f > 0) n /= f;
        }
        shape.push_back(n);
        if (product(shape) != static_cast<int64_t>(b.at.size())) shape = {static_cast<int64_t>(b.at.size())};
        const auto v = l.reshaped(shape);
        if (!v) {
          // A copy: the engine must have had a reason. A compact layout is
          // always a view.
          CHECK(!l.is_compact(), l.str() + " is compact but reshape refused a view");
          l = Layout::compact(shape, 0);
          std::vector<double> copy(b.at.size() + 1);
          for (size_t i = 0; i < b.at.size(); ++i) copy[i] = buffer[b.at[i]];
          buffer = std::move(copy);
          b = enumerate(l);
        } else {
          l = *v;
          b.shape = shape;  // same elements, same row-major order
        }
        agree(l, b, "reshape");
        break;
      }
      case 2: {  // slice dim d: [start, stop) with step
        const int d = in.ConsumeIntegralInRange<int>(0, r - 1);
        const int64_t n = l.shape[d];
        const int64_t start = in.ConsumeIntegralInRange<int64_t>(0, n);
        const int64_t stop = in.ConsumeIntegralInRange<int64_t>(start, n);
        const int64_t step = in.ConsumeIntegralInRange<int64_t>(1, 3);
        const int64_t len = (stop - start + step - 1) / step;
        Brute s{l.shape, {}};
        s.shape[d] = len;
        for (int64_t i = 0; i < product(s.shape); ++i) {
          auto idx = row_major_indices(s.shape, i);
          idx[d] = start + idx[d] * step;
          int64_t flat = 0;
          for (int e = 0; e < r; ++e) flat = flat * b.shape[e] + idx[e];
          s.at.push_back(b.at[flat]);
        }
        if (len > 0) l.offset += start * l.stride[d];
        l.shape[d] = len;
        l.stride[d] *= step;
        b = s;
        agree(l, b, "slice");
        break;
      }
      default: {  // expand a size-1 dim (stride 0)
        const int d = in.ConsumeIntegralInRange<int>(0, r - 1);
        if (l.shape[d] != 1) break;
        const int64_t n = in.ConsumeIntegralInRange<int64_t>(1, 4);
        Brute e{l.shape, {}};
        e.shape[d] = n;
        for (int64_t i = 0; i < product(e.shape); ++i) {
          auto idx = row_major_indices(e.shape, i);
          idx[d] = 0;
          int64_t flat = 0;
          for (int k = 0; k < r; ++k) flat = flat * b.shape[k] + idx[k];
          e.at.push_back(b.at[flat]);
        }
        l.shape[d] = n;
        l.stride[d] = 0;
        b = e;
        agree(l, b, "expand");
        break;
      }
    }
  }
  // xtensor reads the same values through the final strides.
  if (b.at.empty()) return;
  std::vector<size_t> shape(l.shape.begin(), l.shape.end());
  std::vector<ptrdiff_t> strides(l.stride.begin(), l.stride.end());
  auto x = xt::adapt(buffer.data() + l.offset, static_cast<size_t>(l.numel()), xt::no_ownership(), shape,
                     strides);
  for (size_t i = 0; i < b.at.size(); ++i) {
    const auto idx = row_major_indices(l.shape, static_cast<int64_t>(i));
    std::vector<size_t> u(idx.begin(), idx.end());
    CHECK(x.element(u.begin(), u.end()) == buffer[b.at[i]], l.str() + " xtensor disagrees at flat " +
                                                                   std::to_string(i));
  }
}

int64_t any_int(FuzzedDataProvider& in) {
  static constexpr int64_t kEdges[] = {0, 1, 2, -1, INT64_MAX, INT64_MIN, INT64_MAX / 2, int64_t{1} << 31,
                                       int64_t{1} << 32, int64_t{1} << 62, 3037000500};
  switch (in.ConsumeIntegralInRange<int>(0, 2)) {
    case 0: return in.PickValueInArray(kEdges);
    case 1: return in.ConsumeIntegralInRange<int64_t>(0, 8);
    default: return in.ConsumeIntegral<int64_t>();
  }
}

void huge_values(FuzzedDataProvider& in) {
  const int rank = in.ConsumeIntegralInRange<int>(0, 6);
  Layout l;
  for (int d = 0; d < rank; ++d) l.shape.push_back(any_int(in)), l.stride.push_back(any_int(in));
  if (in.ConsumeBool()) l.stride.push_back(any_int(in));  // a rank mismatch
  l.offset = any_int(in);
  bool valid = true;
  try {
    l.validate();
  } catch (const std::invalid_argument&) {
    valid = false;
  } catch (const std::overflow_error&) {
    valid = false;
  }
  try {
    Layout::compact(l.shape, 0).validate();
  } catch (const std::exception&) {
  }
  if (!valid) return;
  (void)l.numel();
  (void)l.max_offset();
  (void)l.is_compact();
  CHECK(Layout::parse(l.str()) == l, l.str());
  std::vector<int> perm(rank);
  std::iota(perm.begin(), perm.end(), 0);
  for (int i = rank - 1; i > 0; --i) std::swap(perm[i], perm[in.ConsumeIntegralInRange<int>(0, i)]);
  const Layout p = l.permuted(perm);
  p.validate();
  std::vector<int64_t> shape;
  if (in.ConsumeBool()) {
    // A reshape that keeps the element count: size-1 dims inserted,
    // neighbours merged, as x.reshape(...) in model code does.
    shape = l.shape;
    for (int e = in.ConsumeIntegralInRange<int>(0, 4); e > 0; --e) {
      const size_t at = in.ConsumeIntegralInRange<size_t>(0, shape.size());
      if (in.ConsumeBool() || at + 1 >= shape.size()) {
        shape.insert(shape.begin() + static_cast<ptrdiff_t>(at), 1);
      } else {
        int64_t merged;
        if (__builtin_mul_overflow(shape[at], shape[at + 1], &merged)) continue;
        shape[at] = merged;
        shape.erase(shape.begin() + static_cast<ptrdiff_t>(at) + 1);
      }
    }
  } else {
    const int parts = in.ConsumeIntegralInRange<int>(0, 6);
    for (int i = 0; i < parts; ++i) shape.push_back(rank == 0 || in.ConsumeBool() ? any_int(in) : l.shape[i % rank]);
  }
  try {
    if (const auto v = l.reshaped(shape)) {
      v->validate();  // a view of valid memory is a valid layout
      CHECK(v->numel() == l.numel(), v->str());
      CHECK(l.numel() == 0 || v->max_offset() == l.max_offset(), v->str() + " is not a view of " + l.str());
    }
  } catch (const std::invalid_argument&) {
  } catch (const std::overflow_error&) {
  }
}

void text(FuzzedDataProvider& in) {
  const std::string s = in.ConsumeRemainingBytesAsString();
  try {
    const Layout l = Layout::parse(s);
    CHECK(Layout::parse(l.str()) == l, s);
  } catch (const std::invalid_argument&) {
  } catch (const std::overflow_error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0:
    case 1: small_tensor(in); break;
    case 2: huge_values(in); break;
    default: text(in); break;
  }
  return 0;
}
