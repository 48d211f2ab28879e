// The attention definitions against an independent formulation written
// straight from the spec's formula, and the law of the legacy semantics.
#include "support.h"

#include <attncheck/reference/attention.h>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cmath>

namespace attncheck {
namespace {

using ref::Axes;
using ref::real;

struct Case {
  Axes axes;
  int64_t B, C, Cv, heads, Tq, Hq, Wq, Tk, Hk, Wk;
  double scale;
};

void showValue(const Case& c, std::ostream& os) {
  os << ref::name_of(c.axes) << " B=" << c.B << " C=" << c.C << " Cv=" << c.Cv << " heads=" << c.heads
     << " q=" << c.Tq << "x" << c.Hq << "x" << c.Wq << " k=" << c.Tk << "x" << c.Hk << "x" << c.Wk
     << " scale=" << c.scale;
}

rc::Gen<Case> gen_case() {
  return rc::gen::exec([] {
    Case c{};
    c.axes = *rc::gen::element(Axes::spatial, Axes::temporal, Axes::spatiotemporal);
    c.heads = *rc::gen::inRange<int64_t>(1, 4);
    c.C = c.heads * *rc::gen::inRange<int64_t>(1, 4);
    c.Cv = c.heads * *rc::gen::inRange<int64_t>(1, 4);
    c.B = *rc::gen::inRange<int64_t>(1, 3);
    c.Tq = *rc::gen::inRange<int64_t>(1, 4);
    c.Hq = *rc::gen::inRange<int64_t>(1, 4);
    c.Wq = *rc::gen::inRange<int64_t>(1, 4);
    c.Tk = c.axes == Axes::spatial ? c.Tq : *rc::gen::inRange<int64_t>(1, 4);
    c.Hk = c.axes == Axes::temporal ? c.Hq : *rc::gen::inRange<int64_t>(1, 4);
    c.Wk = c.axes == Axes::temporal ? c.Wq : *rc::gen::inRange<int64_t>(1, 4);
    c.scale = *rc::gen::element(1.0 / std::sqrt(double(c.C / c.heads)), 1.0, -0.7, 3.0, 0.0);
    return c;
  });
}

// out[b, g*Dv+e, t, h, w] by the spec's formula, one output element at a
// time: groups and positions enumerated exactly as the spec numbers them.
real formula(const Case& c, const ref::View& q, const ref::View& k, const ref::View& v,
             int64_t b, int64_t oc, int64_t t, int64_t h, int64_t w) {
  const int64_t D = c.C / c.heads, Dv = c.Cv / c.heads, g = oc / Dv;
  // The query's coordinates and the list of key coordinates of its group.
  std::vector<std::array<int64_t, 3>> keys;
  for (int64_t kt = 0; kt < c.Tk; ++kt)
    for (int64_t kh = 0; kh < c.Hk; ++kh)
      for (int64_t kw = 0; kw < c.Wk; ++kw) {
        const bool same_group = c.axes == Axes::spatial    ? kt == t
                                : c.axes == Axes::temporal ? (kh == h && kw == w)
                                                           : true;
        if (same_group) keys.push_back({kt, kh, kw});
      }
  std::vector<real> logit(keys.size());
  real m = -INFINITY;
  for (size_t r = 0; r < keys.size(); ++r) {
    real dot = 0;
    for (int64_t d = 0; d < D; ++d) {
      const int64_t qi[5] = {b, g * D + d, t, h, w};
      const int64_t ki[5] = {b, g * D + d, keys[r][0], keys[r][1], keys[r][2]};
      dot += q.at(qi) * k.at(ki);
    }
    logit[r] = c.scale * dot;
    m = std::max(m, logit[r]);
  }
  real den = 0, num = 0;
  for (size_t r = 0; r < keys.size(); ++r) {
    const int64_t vi[5] = {b, oc, keys[r][0], keys[r][1], keys[r][2]};
    const real p = std::exp(logit[r] - m);
    den += p;
    num += p * v.at(vi);
  }
  return num / den;
}

struct Inputs {
  std::unique_ptr<test::Buffer> q, k, v;
  ref::AttentionArgs args(const Case& c) const {
    return {c.axes, q->view, k->view, v->view, c.heads, c.scale};
  }
};

Inputs make_inputs(const Case& c, bool random_layouts, bool zero_strides = true) {
  const ref::DType dt = *test::gen_dtype();
  auto make = [&](std::vector<int64_t> shape) {
    const Layout l = random_layouts ? *test::gen_layout(shape, zero_strides) : Layout::compact(shape);
    return std::make_unique<test::Buffer>(dt, l, *rc::gen::arbitrary<uint64_t>());
  };
  Inputs in;
  in.q = make({c.B, c.C, c.Tq, c.Hq, c.Wq});
  in.k = make({c.B, c.C, c.Tk, c.Hk, c.Wk});
  in.v = make({c.B, c.Cv, c.Tk, c.Hk, c.Wk});
  return in;
}

RC_GTEST_PROP(Attention, EqualsTheSpecFormula, ()) {
  const Case c = *gen_case();
  RC_TAG(ref::name_of(c.axes));
  const Inputs in = make_inputs(c, true);
  const ref::Tensor out = ref::attention(in.args(c));
  RC_ASSERT(out.shape == (std::vector<int64_t>{c.B, c.Cv, c.Tq, c.Hq, c.Wq}));
  ref::for_each_index(out.shape, [&](std::span<const int64_t> i) {
    const real want = formula(c, in.q->view, in.k->view, in.v->view, i[0], i[1], i[2], i[3], i[4]);
    // Both are long double evaluations of the same sums in other orders.
    RC_ASSERT(std::fabs(out.at(i) - want) <= 1e-15L * (1 + std::fabs(want)));
  });
}

RC_GTEST_PROP(Attention, ReadsAnyLayoutLikeItsPackedCopy, ()) {
  const Case c = *gen_case();
  const Inputs in = make_inputs(c, true);
  const ref::AttentionArgs a = in.args(c);
  ref::AttentionArgs packed = a;
  const ref::Tensor q = ref::contiguous(a.q), k = ref::contiguous(a.k), v = ref::contiguous(a.v);
  packed.q = q.view(), packed.k = k.view(), packed.v = v.view();
  const ref::Tensor x = ref::attention(a), y = ref::attention(packed);
  for (int64_t i = 0; i < x.numel(); ++i) RC_ASSERT(x[i] == y[i]);
}

// Spatial: reshape(B*T, C, H*W) without the permute reinterprets the flat
// (c, t) index as (t', c'), keeping each row of H*W positions whole. That is
// harmless exactly when T = 1 (nothing moves), when there is one key (the
// output is v, reshaped and reshaped back), when every head has one channel
// in q, k and v (C = Cv = heads: whole (head, frame) rows are only relabeled,
// and relabeled back), or when scale = 0 (uniform weights average each row,
// which the reshape keeps whole). Temporal's twin reshape(B*H*W, C, T) cuts
// rows across (h, w): harmless exactly when T = 1 or H*W = 1. Inputs without
// zero strides, so no accidental symmetry hides the difference.
RC_GTEST_PROP(Legacy, EqualsSpecExactlyWhenItCannotMixAxes, ()) {
  Case c = *gen_case();
  RC_PRE(c.axes != Axes::spatiotemporal);
  c.Tk = c.Tq, c.Hk = c.Hq, c.Wk = c.Wq;  // self-attention shapes
  const Inputs in = make_inputs(c, true, false);
  const ref::Tensor spec = ref::attention(in.args(c));
  const ref::Tensor legacy = ref::legacy_attention(in.args(c));
  const bool one_frame = c.Tq == 1, one_key = c.Hq * c.Wq == 1;
  const bool harmless =
      c.axes == Axes::spatial
          ? one_frame || one_key || (c.C == c.heads && c.Cv == c.heads) || c.scale == 0
          : one_frame || one_key;
  RC_CLASSIFY(harmless);
  real diff = 0;
  for (int64_t i = 0; i < spec.numel(); ++i) diff = std::max(diff, std::fabs(spec[i] - legacy[i]));
  if (harmless) RC_ASSERT(diff == 0);
  else RC_ASSERT(diff > 0);
}

TEST(Attention, RejectsShapesThatDoNotFit) {
  float x[64] = {};
  auto view = [&](std::vector<int64_t> s) {
    return ref::View{ref::DType::f32, reinterpret_cast<const std::byte*>(x), Layout::compact(s), {}};
  };
  ref::AttentionArgs a{Axes::spatial, view({1, 4, 2, 2, 2}), view({1, 4, 2, 2, 2}),
                       view({1, 4, 2, 2, 2}), 2, 1.0};
  EXPECT_NO_THROW(ref::check_args(a));
  auto bad = a;
  bad.heads = 3;
  EXPECT_THROW(ref::check_args(bad), std::invalid_argument);
  bad = a;
  bad.k = view({1, 4, 1, 2, 2});  // spatial shares T
  EXPECT_THROW(ref::check_args(bad), std::invalid_argument);
  bad = a;
  bad.v = view({1, 4, 2, 2, 1});  // v has k's positions
  EXPECT_THROW(ref::check_args(bad), std::invalid_argument);
  bad = a;
  bad.q = view({1, 4, 2, 2});
  EXPECT_THROW(ref::check_args(bad), std::invalid_argument);
  bad = a;
  bad.axes = Axes::temporal;
  bad.k = view({1, 4, 3, 2, 1});
  bad.v = view({1, 4, 3, 2, 1});  // temporal shares H and W
  EXPECT_THROW(ref::check_args(bad), std::invalid_argument);
}

}  // namespace
}  // namespace attncheck
