#include <attncheck/error_model.h>
#include <attncheck/reference/einsum.h>

#include <cmath>
#include <limits>

namespace attncheck {

double unit_roundoff(DType t) {
  switch (t) {
    case DType::f32: return 0x1p-24;
    case DType::f64: return 0x1p-53;
    case DType::f16: return 0x1p-11;
    case DType::bf16: return 0x1p-8;
    case DType::ext: return 0x1p-64;
  }
  return 0x1p-24;
}

static double smallest_normal(DType t) {
  switch (t) {
    case DType::f32: return std::numeric_limits<float>::min();
    case DType::f64: return std::numeric_limits<double>::min();
    case DType::f16: return 0x1p-14;
    case DType::bf16: return std::numeric_limits<float>::min();
    case DType::ext: return 0;
  }
  return 0;
}

ref::AttentionArgs reference_args(const GuardedCase& g) {
  const Case& c = g.spec();
  return {c.axes, g.view(kRoleQ), g.view(kRoleK), g.view(kRoleV), c.heads, c.scale};
}

Expectation expect(const GuardedCase& g, double K) { return expect(reference_args(g), g.spec().dtype, {}, K); }

Expectation expect(const ref::AttentionArgs& a, DType dtype, ref::Wrong w, double K) {
  const ref::AttentionTrace tr = ref::trace_attention(a, w);
  auto absolute = [](const ref::View& x) {
    ref::Tensor t = ref::contiguous(x);
    for (auto& e : *t.data) e = std::fabs(e);
    return t;
  };
  const ref::Tensor aq = absolute(tr.q), ak = absolute(tr.k);
  const ref::View ops[2] = {aq.view(), ak.view()};
  const ref::Tensor absdot = ref::einsum("ngdp,ngdr->ngpr", ops);  // (N, heads, Sq, Sk)
  const int64_t N = tr.o.shape[0], H = tr.o.shape[1], Dv = tr.o.shape[2], Sq = tr.o.shape[3];
  const int64_t Sk = tr.P.shape[3], D = tr.q.shape()[2];
  const double u = unit_roundoff(dtype);
  const long double scale = std::fabs(static_cast<long double>(a.scale));
  ref::Tensor bound(tr.o.shape);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t p = 0; p < Sq; ++p) {
        const int64_t row = ((n * H + h) * Sq + p) * Sk;
        long double L = 0;
        for (int64_t r = 0; r < Sk; ++r) L = std::max(L, absdot[row + r]);
        const long double el = (D + 2) * u * scale * L;
        const long double growth = std::expm1(std::min<long double>(2 * el, 60));
        for (int64_t e = 0; e < Dv; ++e) {
          const int64_t oi = ((n * H + h) * Dv + e) * Sq + p;
          const long double o = tr.o[oi];
          long double spread = 0, mag = 0;
          for (int64_t r = 0; r < Sk; ++r) {
            const int64_t vi[4] = {n, h, e, r};
            const long double v = tr.v.at(vi), P = tr.P[row + r];
            spread += P * std::fabs(v - o);
            mag += P * std::fabs(v);
          }
          bound[oi] = K * (growth * spread + (Sk + D + 8) * u * mag) + u * std::fabs(o) +
                      K * (Sk + 1) * smallest_normal(dtype);
        }
      }
  return {tr.out, ref::ungroup(bound.view(), a, w)};
}

std::string index_text(const std::array<int64_t, 5>& i) {
  return "[" + std::to_string(i[0]) + "," + std::to_string(i[1]) + "," + std::to_string(i[2]) + "," +
         std::to_string(i[3]) + "," + std::to_string(i[4]) + "]";
}

Comparison compare(const ref::Tensor& got, const Expectation& e) {
  Comparison c;
  int64_t flat = 0;
  ref::for_each_index(e.want.shape, [&](std::span<const int64_t> idx) {
    const long double w = e.want[flat], g = got[flat], b = e.bound[flat];
    ++flat;
    const long double err = std::fabs(g - w);
    const bool finite = std::isfinite(g);
    if (finite) {
      c.max_error = std::max(c.max_error, err);
      if (b > 0) c.worst_ratio = std::max(c.worst_ratio, static_cast<double>(err / b));
    }
    if (!finite || err > b) {
      if (c.ok) {
        c.ok = false;
        for (int d = 0; d < 5; ++d) c.first[d] = idx[d];
        c.want = w, c.got = g, c.bound = b;
      }
      ++c.failing;
      if (!finite) c.worst_ratio = std::numeric_limits<double>::infinity();
    }
  });
  return c;
}

}  // namespace attncheck
