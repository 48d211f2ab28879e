// Small helpers shared by the reference's property tests: owned strided
// buffers with random values, and RapidCheck generators for their layouts.
#pragma once

#include <attncheck/reference/view.h>

#include <rapidcheck.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

namespace attncheck {
// How RapidCheck prints these values in a counterexample (found by ADL).
inline void showValue(const Layout& l, std::ostream& os) { os << l.str(); }
namespace ref {
inline void showValue(DType t, std::ostream& os) { os << name_of(t); }
}  // namespace ref
}  // namespace attncheck

namespace attncheck::test {

// Memory for one view: every slot of the allocation holds a random value of
// dtype, so a view reads real numbers wherever its strides point.
struct Buffer {
  ref::DType dtype = ref::DType::f64;
  std::vector<std::byte> bytes;
  ref::View view;

  Buffer(ref::DType t, const Layout& layout, uint64_t seed, double scale = 1.0) : dtype(t) {
    const int64_t n = layout.max_offset() + 1;
    bytes.resize(static_cast<size_t>(n) * ref::size_of(t));
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> dist(0.0, scale);
    for (int64_t i = 0; i < n; ++i) ref::write(t, bytes.data() + i * ref::size_of(t), dist(rng));
    view.dtype = t;
    view.base = bytes.data();
    view.layout = layout;
  }
};

// A layout for shape: a random dimension order, padding on any dimension
// (the innermost included), zero strides when allowed, an offset.
inline rc::Gen<Layout> gen_layout(std::vector<int64_t> shape, bool allow_zero_strides) {
  const int r = static_cast<int>(shape.size());
  return rc::gen::exec([shape, r, allow_zero_strides] {
    std::vector<int> order(r);
    std::iota(order.begin(), order.end(), 0);
    // order[0] is the outermost dimension in memory.
    if (*rc::gen::arbitrary<bool>()) {
      auto keys = *rc::gen::container<std::vector<int>>(r, rc::gen::inRange(0, 100));
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return keys[a] < keys[b]; });
    }
    Layout l;
    l.shape = shape;
    l.stride.assign(r, 0);
    int64_t next = 1 + *rc::gen::weightedOneOf<int64_t>(
                           {{3, rc::gen::just<int64_t>(0)}, {1, rc::gen::inRange<int64_t>(1, 3)}});
    for (int i = r - 1; i >= 0; --i) {
      const int d = order[i];
      const bool zero = allow_zero_strides && *rc::gen::weightedOneOf<bool>(
                                                  {{5, rc::gen::just(false)}, {1, rc::gen::just(true)}});
      l.stride[d] = zero ? 0 : next;
      if (!zero) next = next * shape[d] + *rc::gen::inRange<int64_t>(0, 3);
    }
    l.offset = *rc::gen::inRange<int64_t>(0, 5);
    return l;
  });
}

inline rc::Gen<ref::DType> gen_dtype() {
  return rc::gen::element(ref::DType::f32, ref::DType::f64, ref::DType::f16, ref::DType::bf16);
}

}  // namespace attncheck::test
