#include <attncheck/reference/attention.h>
#include <attncheck/selfcheck.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>

namespace attncheck {

namespace {

using ref::real;

// Owns a packed tensor of f32 values drawn from a seeded normal distribution.
struct Input {
  std::vector<float> data;
  ref::View view;
  Input(std::vector<int64_t> shape, std::mt19937_64& rng) {
    view.dtype = ref::DType::f32;
    view.layout = Layout::compact(std::move(shape));
    std::normal_distribution<float> dist;
    data.resize(static_cast<size_t>(view.layout.numel()));
    for (auto& x : data) x = dist(rng);
    view.base = reinterpret_cast<const std::byte*>(data.data());
  }
};

real max_abs_diff(const ref::Tensor& a, const ref::Tensor& b) {
  real m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

}  // namespace

int run_selfcheck(std::ostream& out) {
  int failed = 0;
  auto check = [&](const std::string& what, bool ok) {
    out << (ok ? "  ok    " : "  FAIL  ") << what << "\n";
    failed += !ok;
  };
  std::mt19937_64 rng(20261128);
  // One key: every query's output is that key's value, exactly.
  {
    Input q({2, 4, 3, 2, 2}, rng), k({2, 4, 3, 1, 1}, rng), v({2, 6, 3, 1, 1}, rng);
    ref::AttentionArgs a{ref::Axes::spatial, q.view, k.view, v.view, 2, 0.5};
    auto o = ref::attention(a);
    bool ok = true;
    ref::for_each_index(o.shape, [&](std::span<const int64_t> i) {
      const int64_t vi[5] = {i[0], i[1], i[2], 0, 0};
      ok &= o.at(i) == v.view.at(vi);
    });
    check("a single key gives its value (spatial, 2 heads)", ok);
  }
  // A fixed family of shapes for the legacy law and for scale 0.
  for (auto axes : {ref::Axes::spatial, ref::Axes::temporal}) {
    for (int64_t T : {1, 3}) {
      Input q({1, 4, T, 2, 3}, rng), k({1, 4, T, 2, 3}, rng), v({1, 4, T, 2, 3}, rng);
      ref::AttentionArgs a{axes, q.view, k.view, v.view, 1, 0.5};
      const real d = max_abs_diff(ref::attention(a), ref::legacy_attention(a));
      // The legacy reshape is harmless exactly when it does not mix axes:
      // T == 1 (spatial: the permute moves nothing; temporal: one key, so
      // the output is v, reshaped and reshaped back).
      const bool should_equal = T == 1;
      check(std::string(ref::name_of(axes)) + " reshape-without-permute " +
                (should_equal ? "equals" : "differs from") + " the spec at T=" + std::to_string(T),
            should_equal ? d == 0 : d > 1e-6);
    }
  }
  {
    // Scale 0: uniform weights, output is the mean of v over the keys.
    Input q({1, 2, 1, 3, 3}, rng), k({1, 2, 1, 3, 3}, rng), v({1, 2, 1, 3, 3}, rng);
    ref::AttentionArgs a{ref::Axes::spatial, q.view, k.view, v.view, 1, 0};
    auto o = ref::attention(a);
    bool ok = true;
    for (int64_t c = 0; c < 2; ++c) {
      real mean = 0;
      for (int64_t r = 0; r < 9; ++r) {
        const int64_t vi[5] = {0, c, 0, r / 3, r % 3};
        mean += v.view.at(vi);
      }
      mean /= 9;
      for (int64_t p = 0; p < 9; ++p) {
        const int64_t oi[5] = {0, c, 0, p / 3, p % 3};
        ok &= std::fabs(o.at(oi) - mean) <= 1e-15L;
      }
    }
    check("scale 0 averages v over the keys", ok);
  }
  {
    // Spatiotemporal over one frame equals spatial over it.
    Input q({1, 4, 1, 2, 3}, rng), k({1, 4, 1, 3, 2}, rng), v({1, 2, 1, 3, 2}, rng);
    ref::AttentionArgs a{ref::Axes::spatial, q.view, k.view, v.view, 2, 0.7};
    ref::AttentionArgs b = a;
    b.axes = ref::Axes::spatiotemporal;
    check("spatiotemporal equals spatial when T = 1",
          max_abs_diff(ref::attention(a), ref::attention(b)) == 0);
  }
  return failed;
}

}  // namespace attncheck
