// The reference gradients against central differences of the reference
// forward (with tolerances derived from long double's epsilon and the values'
// magnitudes, shown tight enough to reject wrong formulas), the identities the
// softmax's rows imply, the legacy semantics' own gradient, broadcast inputs
// and dout's shape check.
#include <attncheck/reference/backward.h>
#include <attncheck/reference/einsum.h>
#include <attncheck/reference/ops.h>
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cfloat>
#include <cmath>
#include <string>

#include "support.h"

namespace attncheck {
namespace {

using ref::Axes;
using ref::real;
using ref::Wrong;

struct Case {
  Axes axes;
  int64_t B, heads, D, Dv, Tq, Hq, Wq, Tk, Hk, Wk;
  double scale;
  int64_t Sq() const { return positions(Tq, Hq, Wq); }
  int64_t Sk() const { return positions(Tk, Hk, Wk); }
  int64_t positions(int64_t T, int64_t H, int64_t W) const {
    return axes == Axes::spatial ? H * W : axes == Axes::temporal ? T : T * H * W;
  }
};

void showValue(const Case& c, std::ostream& os) {
  os << ref::name_of(c.axes) << " B=" << c.B << " heads=" << c.heads << " D=" << c.D
     << " Dv=" << c.Dv << " q=" << c.Tq << "x" << c.Hq << "x" << c.Wq << " k=" << c.Tk << "x"
     << c.Hk << "x" << c.Wk << " scale=" << c.scale;
}

// Small cases of all three families; D and Dv apart, Sq and Sk apart. Large
// scales saturate the softmax, where its derivatives are steepest. Drawn at
// full size from the first case (the sizes are small anyway): RapidCheck's
// size-scaled ranges would otherwise make the first quarter of the cases
// 1x1x1 with one head and one channel.
rc::Gen<Case> gen_case(bool moderate_scales = false) {
  return rc::gen::resize(
      100, rc::gen::exec([moderate_scales] {
        Case c{};
        c.axes = *rc::gen::element(Axes::spatial, Axes::temporal, Axes::spatiotemporal);
        c.heads = *rc::gen::inRange<int64_t>(1, 4);
        c.D = *rc::gen::inRange<int64_t>(1, 5);
        c.Dv = *rc::gen::inRange<int64_t>(1, 5);
        c.B = *rc::gen::inRange<int64_t>(1, 3);
        c.Tq = *rc::gen::inRange<int64_t>(1, 4);
        c.Hq = *rc::gen::inRange<int64_t>(1, 4);
        c.Wq = *rc::gen::inRange<int64_t>(1, 4);
        c.Tk = c.axes == Axes::spatial ? c.Tq : *rc::gen::inRange<int64_t>(1, 4);
        c.Hk = c.axes == Axes::temporal ? c.Hq : *rc::gen::inRange<int64_t>(1, 4);
        c.Wk = c.axes == Axes::temporal ? c.Wq : *rc::gen::inRange<int64_t>(1, 4);
        c.scale = moderate_scales
                      ? *rc::gen::element(-0.7, 0.5, 1.5)
                      : *rc::gen::element(1.0 / std::sqrt(double(c.D)), 1.0, -0.7, 3.0, 0.0, 12.0);
        return c;
      }));
}

struct Inputs {
  std::unique_ptr<test::Buffer> q, k, v, dout;
  ref::AttentionArgs args(const Case& c) const {
    return {c.axes, q->view, k->view, v->view, c.heads, c.scale};
  }
};

// Random dtypes and layouts (permuted, padded, offset; zero strides when
// allowed) for q, k, v and dout.
Inputs make_inputs(const Case& c, bool zero_strides) {
  const ref::DType dt = *test::gen_dtype();
  auto make = [&](std::vector<int64_t> shape) {
    const Layout l = *test::gen_layout(shape, zero_strides);
    return std::make_unique<test::Buffer>(dt, l, *rc::gen::arbitrary<uint64_t>());
  };
  Inputs in;
  in.q = make({c.B, c.heads * c.D, c.Tq, c.Hq, c.Wq});
  in.k = make({c.B, c.heads * c.D, c.Tk, c.Hk, c.Wk});
  in.v = make({c.B, c.heads * c.Dv, c.Tk, c.Hk, c.Wk});
  in.dout = make({c.B, c.heads * c.Dv, c.Tq, c.Hq, c.Wq});
  return in;
}

real max_abs(const ref::Tensor& t) {
  real m = 0;
  for (real x : *t.data) m = std::max(m, std::fabs(x));
  return m;
}

constexpr real eps = LDBL_EPSILON;  // 2^-63, long double's epsilon (twice its unit roundoff)

// The step h and the tolerance for the central difference of
// L(x) = sum(out(x) * dout) at one element x of q (which = 0), k (1) or v (2).
//
// Truncation. (L(x+h) - L(x-h)) / 2h - L'(x) is at most h^2/6 sup|L'''|. Along
// x the logits move linearly, so L is a sum of softmax expectations E_P[u] of
// entries u of dP (whose range U <= 2 Dv |dout| |v|) under a natural parameter
// x * a; the n-th derivative of E_P[u] is the joint cumulant k(u, a, .., a),
// and |k(u, a, a, a)| <= 4 U R^3 for R the range of a. A q element moves one
// softmax row with a = scale * k[d, .] (R <= 2 |scale| |k|); a k element moves
// one entry of each of Sq rows with a = scale * q[d, p] times an indicator
// (R <= |scale| |q|). Over queries (softmax_over_queries) the two swap. L is
// linear in v, so v's truncation is 0.
//
// Rounding. A logit errs by <= 3 eps Lambda (Lambda = |scale| D |q| |k| bounds
// every |logit|), exp(logit - max) relatively by <= 8 eps Lambda + eps, P by
// <= 16 eps Lambda + 4 eps, an out element by <= eps (16 Lambda + 6) |v| times
// the mass of its weights (1; up to Sk over queries). Elements the step does
// not reach come out bitwise equal, so L(x+h) - L(x-h), summed elementwise,
// errs by E <= eps (32 Lambda + 16) mass |v| Dv Sq |dout|, and the quotient by
// E / 2h. The reference gradient's own error G (the same P errors through one
// more contraction of Sq + Sk terms) is added; it is far below E / 2h.
//
// h minimises h^2/6 B3 + E/2h: h = cbrt(3 E / B3), rounded to a power of two
// (so x +- h is exact for these inputs, and the quotient divides by the step
// actually taken anyway), within [2^-40, 2^-10]. For the cases here h comes
// out between 6e-8 and 1e-6 for q and k (2^-10 at scale 0 and for v), and the
// tolerance between 1e-14 and 1e-6 for q and k, below 1e-9 for v. The bound
// is worst case: observed errors sit 1e-3 to 1e-7 below it, and each wrong
// formula in CentralDifferencesRejectWrongFormulas 1e6 to 1e10 above it.
struct Step {
  real h, tol;
};
struct Magnitudes {
  real q, k, v, dout;  // max |x| over each logical tensor
};

Step step_and_tolerance(const Case& c, const Magnitudes& m, int which, Wrong w) {
  const bool over_queries = w == Wrong::softmax_over_queries;
  const real s = std::fabs(static_cast<real>(c.scale));
  const real Sq = c.Sq(), Sk = c.Sk(), Dv = c.Dv, mass = over_queries ? Sk : 1;
  const real U = 2 * Dv * m.dout * m.v;
  const real Lambda = s * c.D * m.q * m.k;
  const real Q = s * m.q, K = s * m.k;
  const real B3 = which == 0   ? 4 * U * K * K * K * (over_queries ? Sk : 8)
                  : which == 1 ? 4 * U * Q * Q * Q * (over_queries ? 8 : Sq)
                               : 0;
  const real E = eps * (32 * Lambda + 16) * mass * m.v * Dv * Sq * m.dout;
  const real G = eps * (16 * Lambda + 8) * mass * U * (Sq + Sk) * (1 + Q + K);
  real h = B3 > 0 ? std::exp2(std::round(std::log2(std::cbrt(3 * E / B3)))) : 0x1p-10L;
  h = std::clamp(h, 0x1p-40L, 0x1p-10L);
  return {h, B3 * h * h / 6 + E / (2 * h) + G};
}

// One sampled central difference: the slope of L along logical element
// `index` (row-major) of q (which = 0), k (1) or v (2).
struct Probe {
  int which;
  int64_t index;
  real slope, tol;
};

// Three sampled elements of each of q, k and v, differenced through the
// reference forward of `w` on packed long double copies, so that moving one
// logical element of a broadcast view moves nothing else.
std::vector<Probe> central_differences(const Case& c, const ref::AttentionArgs& a,
                                       const ref::View& dout, Wrong w) {
  const ref::Tensor packed[3] = {ref::contiguous(a.q), ref::contiguous(a.k), ref::contiguous(a.v)};
  const ref::Tensor dout_packed = ref::contiguous(dout);
  const Magnitudes m{max_abs(packed[0]), max_abs(packed[1]), max_abs(packed[2]),
                     max_abs(dout_packed)};
  std::vector<Probe> probes;
  for (int which = 0; which < 3; ++which) {
    const Step step = step_and_tolerance(c, m, which, w);
    const auto at = rc::gen::inRange<int64_t>(0, packed[which].numel());
    for (int64_t i : *rc::gen::container<std::vector<int64_t>>(3, at)) {
      auto out_at = [&](real x) {
        ref::Tensor moved(packed[which].shape);
        *moved.data = *packed[which].data;
        moved[i] = x;
        ref::AttentionArgs b = a;
        ref::View* slot[3] = {&b.q, &b.k, &b.v};
        for (int j = 0; j < 3; ++j) *slot[j] = j == which ? moved.view() : packed[j].view();
        return ref::attention(b, w);
      };
      const real up = packed[which][i] + step.h, down = packed[which][i] - step.h;
      const ref::Tensor hi = out_at(up), lo = out_at(down);
      ref::NeumaierSum dL;
      for (int64_t j = 0; j < hi.numel(); ++j) dL.add((hi[j] - lo[j]) * dout_packed[j]);
      probes.push_back({which, i, dL.value() / (up - down), step.tol});
    }
  }
  return probes;
}

// max |gradient - slope| / tol over the probes: at most 1 for a right gradient.
real worst_ratio(const std::vector<Probe>& probes, const ref::AttentionGrads& g) {
  const ref::Tensor* grad[3] = {&g.dq, &g.dk, &g.dv};
  real worst = 0;
  for (const Probe& p : probes) {
    const real err = std::fabs((*grad[p.which])[p.index] - p.slope);
    worst = std::max(worst, err == 0 ? 0 : err / p.tol);
  }
  return worst;
}

// "what 1e<k> unit" for x in [10^k, 10^(k+1)), "what 0 unit" for 0: how far
// below (or above) its tolerance a comparison landed, as a RapidCheck tag.
std::string decade(const char* what, real x, const char* unit) {
  if (x == 0) return std::string(what) + " 0 " + unit;
  return std::string(what) + " 1e" + std::to_string(int(std::floor(std::log10(x)))) + " " + unit;
}

RC_GTEST_PROP(BackwardGradient, AgreesWithCentralDifferencesOfTheForward, ()) {
  const Case c = *gen_case();
  RC_TAG(ref::name_of(c.axes));
  const Inputs in = make_inputs(c, true);
  const ref::AttentionArgs a = in.args(c);
  const ref::AttentionGrads g = ref::attention_backward(a, in.dout->view);
  RC_ASSERT(g.dq.shape == a.q.shape());
  RC_ASSERT(g.dk.shape == a.k.shape());
  RC_ASSERT(g.dv.shape == a.v.shape());
  const real worst = worst_ratio(central_differences(c, a, in.dout->view, Wrong::none), g);
  RC_ASSERT(worst <= 1);
  RC_TAG(decade("error", worst, "x tol"));
}

// The gradients of the other named semantics are those of their own forwards:
// the legacy one (reshape without permute) above all, which diagnosis uses.
RC_GTEST_PROP(BackwardGradient, EachNamedWrongSemanticsAgreesWithCentralDifferencesOfItsForward,
              ()) {
  const Case c = *gen_case();
  const Wrong w = *rc::gen::element(Wrong::reshape_without_permute, Wrong::heads_interleaved,
                                    Wrong::softmax_over_queries);
  RC_TAG(ref::name_of(w));
  const Inputs in = make_inputs(c, true);
  const ref::AttentionArgs a = in.args(c);
  const ref::AttentionGrads g = w == Wrong::reshape_without_permute
                                    ? ref::legacy_attention_backward(a, in.dout->view)
                                    : ref::attention_backward(a, in.dout->view, w);
  const real worst = worst_ratio(central_differences(c, a, in.dout->view, w), g);
  RC_ASSERT(worst <= 1);
  RC_TAG(decade("error", worst, "x tol"));
}

// The check can fail: three plausible wrong formulas, computed here from the
// trace, are each rejected by the same probes that accept the right one.
// Moderate scales keep P's rows away from one-hot, no zero strides away from
// uniform (where the unweighted mean is the weighted one), and two keys at
// least (with one, dS = 0, and without the scale or with the plain mean the
// gradient stays right).
RC_GTEST_PROP(BackwardGradient, CentralDifferencesRejectWrongFormulas, ()) {
  Case c = *gen_case(true);
  if (c.Sk() == 1) (c.axes == Axes::temporal ? c.Tk : c.Wk) = 2;
  const Inputs in = make_inputs(c, false);
  const ref::AttentionArgs a = in.args(c);
  const ref::BackwardTrace t = ref::trace_attention_backward(a, in.dout->view);
  const std::vector<Probe> probes = central_differences(c, a, in.dout->view, Wrong::none);
  RC_ASSERT(worst_ratio(probes, {t.dq, t.dk, t.dv}) <= 1);

  const ref::View P = t.forward.P.view(), dP = t.dP.view();
  const ref::View PdP[2] = {P, dP};
  const ref::Tensor weighted_mean = ref::einsum("ngpr,ngpr->ngp", PdP);
  ref::Tensor uniform(t.dP.shape);
  std::fill(uniform.data->begin(), uniform.data->end(), real(1) / t.dP.shape[3]);
  const ref::View uniform_dP[2] = {uniform.view(), dP};
  const ref::Tensor plain_mean = ref::einsum("ngpr,ngpr->ngp", uniform_dP);
  // dS from P and dP with `mean` per row subtracted (none when null).
  auto grads_from = [&](const ref::Tensor* mean, real scale) {
    ref::Tensor dS(t.dP.shape);
    for (int64_t i = 0; i < dS.numel(); ++i)
      dS[i] = t.forward.P[i] * (t.dP[i] - (mean ? (*mean)[i / t.dP.shape[3]] : 0));
    const ref::View dS_k[2] = {dS.view(), t.forward.k}, dS_q[2] = {dS.view(), t.forward.q};
    return ref::AttentionGrads{
        ref::ungroup(ref::scaled(ref::einsum("ngpr,ngdr->ngdp", dS_k).view(), scale).view(), a,
                     ref::Positions::query),
        ref::ungroup(ref::scaled(ref::einsum("ngpr,ngdp->ngdr", dS_q).view(), scale).view(), a,
                     ref::Positions::key),
        t.dv};
  };
  const real without_mean = worst_ratio(probes, grads_from(nullptr, c.scale));
  const real unweighted_mean = worst_ratio(probes, grads_from(&plain_mean, c.scale));
  const real without_scale = worst_ratio(probes, grads_from(&weighted_mean, 1));
  // The same formula as the reference's, rebuilt here: the rebuild is sound.
  RC_ASSERT(worst_ratio(probes, grads_from(&weighted_mean, c.scale)) <= 1);
  RC_ASSERT(without_mean > 1);
  RC_ASSERT(unweighted_mean > 1);
  RC_ASSERT(without_scale > 1);
  RC_TAG(decade("wrong formulas' least error",
                std::min({without_mean, unweighted_mean, without_scale}), "x tol"));
}

// Rows of P sum to 1, so every row of dS sums to 0 and dv's key sums are
// dout's query sums. Bounds: the row's P-weighted mean m of dP is a
// compensated sum (error <= 2 eps max|dP|), rows of P sum to 1 within 2 eps,
// each dS entry rounds twice, and the sum here is compensated: |sum_r dS| <=
// 8 eps max_r |dP[p, r]|, and |sum_r dv - sum_p dout| <= 6 eps sum_p |dout|;
// both are asserted with a factor 2 to spare. Without the mean subtraction a
// row sums to m, which the same bound rejects (asserted on some row).
RC_GTEST_PROP(BackwardGradient, SatisfiesTheIdentitiesOfRowsSummingToOne, ()) {
  const Case c = *gen_case();
  RC_TAG(ref::name_of(c.axes));
  const Inputs in = make_inputs(c, true);
  const ref::AttentionArgs a = in.args(c);
  const ref::BackwardTrace t = ref::trace_attention_backward(a, in.dout->view);
  const int64_t rows = t.dS.numel() / c.Sk();
  bool some_row_has_a_mean = false;
  for (int64_t row = 0; row < rows; ++row) {
    ref::NeumaierSum sum, mean;
    real largest = 0;
    for (int64_t r = 0; r < c.Sk(); ++r) {
      const int64_t i = row * c.Sk() + r;
      sum.add(t.dS[i]);
      mean.add(t.forward.P[i] * t.dP[i]);
      largest = std::max(largest, std::fabs(t.dP[i]));
    }
    const real bound = 16 * eps * largest;
    RC_ASSERT(std::fabs(sum.value()) <= bound);
    some_row_has_a_mean |= std::fabs(mean.value()) > bound;
  }
  RC_ASSERT(some_row_has_a_mean);

  const ref::Tensor dv = ref::contiguous(ref::group(t.dv.view(), c.axes, c.heads));
  const ref::Tensor dout = ref::contiguous(t.dout);  // both (N, heads, Dv, S)
  for (int64_t channel = 0; channel < dv.numel() / c.Sk(); ++channel) {
    ref::NeumaierSum keys, queries;
    real mass = 0;
    for (int64_t r = 0; r < c.Sk(); ++r) keys.add(dv[channel * c.Sk() + r]);
    for (int64_t p = 0; p < c.Sq(); ++p) {
      queries.add(dout[channel * c.Sq() + p]);
      mass += std::fabs(dout[channel * c.Sq() + p]);
    }
    RC_ASSERT(std::fabs(keys.value() - queries.value()) <= 12 * eps * mass);
  }
}

real max_difference(const ref::AttentionGrads& x, const ref::AttentionGrads& y) {
  real diff = 0;
  const ref::Tensor* xs[3] = {&x.dq, &x.dk, &x.dv};
  const ref::Tensor* ys[3] = {&y.dq, &y.dk, &y.dv};
  for (int t = 0; t < 3; ++t)
    for (int64_t i = 0; i < xs[t]->numel(); ++i)
      diff = std::max(diff, std::fabs((*xs[t])[i] - (*ys[t])[i]));
  return diff;
}

// The legacy forward equals the spec's exactly in the harmless cases the
// forward law names (reference_attention_test.cpp); there every intermediate
// is the same numbers in the same order, so the gradients are equal too, and
// elsewhere they differ. Self-attention shapes, no zero strides.
RC_GTEST_PROP(BackwardLegacy, DiffersFromTheSpecsGradientExactlyWhereTheForwardsDiffer, ()) {
  Case c = *gen_case();
  RC_PRE(c.axes != Axes::spatiotemporal);
  c.Tk = c.Tq, c.Hk = c.Hq, c.Wk = c.Wq;
  const Inputs in = make_inputs(c, false);
  const ref::AttentionArgs a = in.args(c);
  const bool one_frame = c.Tq == 1, one_key = c.Hq * c.Wq == 1;
  const bool harmless = c.axes == Axes::spatial
                            ? one_frame || one_key || (c.D == 1 && c.Dv == 1) || c.scale == 0
                            : one_frame || one_key;
  RC_CLASSIFY(harmless);
  const real diff = max_difference(ref::attention_backward(a, in.dout->view),
                                   ref::legacy_attention_backward(a, in.dout->view));
  if (harmless)
    RC_ASSERT(diff == 0);
  else
    RC_ASSERT(diff > 0);
}

// A broadcast q (a zero stride on a dimension of size >= 2) still gets its
// full logical gradient, one entry per logical element, equal to the gradient
// of its packed copy: nothing is summed over the broadcast dimension. k, v
// and dout take random layouts, zero strides included, and are compared
// against their packed copies too.
RC_GTEST_PROP(BackwardGradient, BroadcastInputsGetTheFullLogicalGradient, ()) {
  Case c = *gen_case();
  if (c.heads * c.D * c.Tq * c.Hq * c.Wq == 1) c.B = 2;  // something to broadcast over
  Inputs in = make_inputs(c, true);
  Layout expanded = *test::gen_layout(in.q->view.shape(), false);
  std::vector<int> wide;
  for (int d = 0; d < 5; ++d)
    if (expanded.shape[d] >= 2) wide.push_back(d);
  for (int d : *rc::gen::nonEmpty(rc::gen::container<std::vector<int>>(rc::gen::elementOf(wide))))
    expanded.stride[d] = 0;
  RC_TAG(expanded.str());
  in.q = std::make_unique<test::Buffer>(in.q->dtype, expanded, *rc::gen::arbitrary<uint64_t>());
  const ref::AttentionArgs a = in.args(c);
  const ref::Tensor q = ref::contiguous(a.q), k = ref::contiguous(a.k), v = ref::contiguous(a.v);
  const ref::Tensor dout = ref::contiguous(in.dout->view);
  const ref::AttentionArgs packed{c.axes, q.view(), k.view(), v.view(), c.heads, c.scale};
  const ref::AttentionGrads x = ref::attention_backward(a, in.dout->view);
  const ref::AttentionGrads y = ref::attention_backward(packed, dout.view());
  RC_ASSERT(x.dq.shape == a.q.shape());
  RC_ASSERT(max_difference(x, y) == 0);
}

TEST(BackwardGradient, RejectsDoutOfTheWrongShapeNamingIt) {
  float x[256] = {};
  auto view = [&](std::vector<int64_t> s) {
    return ref::View{
        ref::DType::f32, reinterpret_cast<const std::byte*>(x), Layout::compact(s), {}};
  };
  // q (1, 4, 2, 3, 2), v's Cv = 6: out and dout are (1, 6, 2, 3, 2).
  const ref::View q = view({1, 4, 2, 3, 2}), k = view({1, 4, 3, 2, 2}), v = view({1, 6, 3, 2, 2});
  const ref::AttentionArgs a{Axes::spatiotemporal, q, k, v, 2, 1.0};
  EXPECT_NO_THROW(ref::check_dout(a, view({1, 6, 2, 3, 2})));
  Layout expanded = Layout::compact({1, 6, 2, 3, 2});
  expanded.stride = {0, 0, 0, 1, 0};  // broadcast dout: allowed
  EXPECT_NO_THROW(ref::attention_backward(
      a, ref::View{ref::DType::f32, reinterpret_cast<const std::byte*>(x), expanded, {}}));
  const std::pair<std::vector<int64_t>, const char*> bad[] = {
      {{2, 6, 2, 3, 2}, "(B)"},  {{1, 4, 2, 3, 2}, "(Cv)"}, {{1, 6, 3, 3, 2}, "(Tq)"},
      {{1, 6, 2, 2, 2}, "(Hq)"}, {{1, 6, 2, 3, 1}, "(Wq)"}, {{1, 6, 2, 6}, "rank 4"}};
  for (const auto& [shape, field] : bad) {
    for (int entry = 0; entry < 2; ++entry) {
      try {
        if (entry == 0)
          ref::attention_backward(a, view(shape));
        else
          ref::trace_attention_backward(a, view(shape), Wrong::reshape_without_permute);
        ADD_FAILURE() << "no throw for dout " << field;
      } catch (const std::invalid_argument& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("dout"), std::string::npos) << what;
        EXPECT_NE(what.find(field), std::string::npos) << what;
        EXPECT_EQ(what.find('\n'), std::string::npos) << what;
      }
    }
  }
}

}  // namespace
}  // namespace attncheck
