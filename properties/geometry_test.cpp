// The spec's geometry, written once in src/attncheck/geometry.h, against the
// reference's independent statement of it: permute -> reshape into
// (groups, heads, channel, position) and back (reference/attention.cpp).
// Elements carry their own flat index as their value, so the reference's
// grouped tensors say exactly which element went where.
#include <attncheck/geometry.h>
#include <attncheck/reference/attention.h>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <vector>

namespace attncheck {
namespace {

using ref::Axes;
using ref::real;

int64_t flat(const Index5& i, const std::vector<int64_t>& shape) {
  int64_t f = 0;
  for (int d = 0; d < 5; ++d) f = f * shape[d] + i[d];
  return f;
}

ref::Tensor numbered(const std::vector<int64_t>& shape) {
  ref::Tensor t(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = static_cast<real>(i);
  return t;
}

RC_GTEST_PROP(Geometry, GroupsAndPositionsAreTheReferencesPermuteThenReshape, ()) {
  const Axes axes = *rc::gen::element(Axes::spatial, Axes::temporal, Axes::spatiotemporal);
  const int64_t B = *rc::gen::inRange(1, 4), heads = *rc::gen::inRange(1, 4);
  const int64_t D = *rc::gen::inRange(1, 3), Dv = *rc::gen::inRange(1, 3);
  const int64_t T = *rc::gen::inRange(1, 5), H = *rc::gen::inRange(1, 5), W = *rc::gen::inRange(1, 5);
  // k and v share the group axes with q and have positions of their own.
  const int64_t Tk = axes == Axes::spatial ? T : *rc::gen::inRange(1, 5);
  const int64_t Hk = axes == Axes::temporal ? H : *rc::gen::inRange(1, 4);
  const int64_t Wk = axes == Axes::temporal ? W : *rc::gen::inRange(1, 4);
  const std::vector<int64_t> qs{B, heads * D, T, H, W}, ks{B, heads * D, Tk, Hk, Wk}, vs{B, heads * Dv, Tk, Hk, Wk};
  const ref::Tensor q = numbered(qs), k = numbered(ks), v = numbered(vs);
  const ref::AttentionArgs args{axes, q.view(), k.view(), v.view(), heads, 1};
  const ref::AttentionTrace tr = ref::trace_attention(args);

  const auto a = static_cast<attncheck_axes>(axes);
  const Geometry gq = geometry_of(a, qs.data()), gk = geometry_of(a, ks.data());
  RC_ASSERT(gq.groups(B) == gk.groups(B));
  const int64_t N = gq.groups(B), Sq = gq.positions(), Sk = gk.positions();
  RC_ASSERT(tr.q.shape() == (std::vector<int64_t>{N, heads, D, Sq}));
  RC_ASSERT(tr.k.shape() == (std::vector<int64_t>{N, heads, D, Sk}));
  RC_ASSERT(tr.v.shape() == (std::vector<int64_t>{N, heads, Dv, Sk}));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < heads; ++g) {
      for (int64_t d = 0; d < D; ++d) {
        for (int64_t p = 0; p < Sq; ++p) {
          const Index5 i = gq.index(n, g * D + d, p);
          RC_ASSERT(tr.q.at(std::vector<int64_t>{n, g, d, p}) == static_cast<real>(flat(i, qs)));
          RC_ASSERT(gq.group(i) == n && gq.position(i) == p);
        }
        for (int64_t r = 0; r < Sk; ++r)
          RC_ASSERT(tr.k.at(std::vector<int64_t>{n, g, d, r}) == static_cast<real>(flat(gk.index(n, g * D + d, r), ks)));
      }
      for (int64_t e = 0; e < Dv; ++e)
        for (int64_t r = 0; r < Sk; ++r)
          RC_ASSERT(tr.v.at(std::vector<int64_t>{n, g, e, r}) == static_cast<real>(flat(gk.index(n, g * Dv + e, r), vs)));
    }

  // Back: a grouped (N, heads, Dv, Sq) tensor whose elements say (group,
  // channel, position) lands in out at the element the geometry names.
  ref::Tensor grouped({N, heads, Dv, Sq});
  const int64_t Cv = heads * Dv;
  for (int64_t n = 0, f = 0; n < N; ++n)
    for (int64_t g = 0; g < heads; ++g)
      for (int64_t e = 0; e < Dv; ++e)
        for (int64_t p = 0; p < Sq; ++p) grouped[f++] = static_cast<real>((n * Cv + g * Dv + e) * Sq + p);
  const ref::Tensor out = ref::ungroup(grouped.view(), args);
  RC_ASSERT(out.shape == (std::vector<int64_t>{B, Cv, T, H, W}));
  int64_t f = 0;
  ref::for_each_index(out.shape, [&](std::span<const int64_t> s) {
    const Index5 i{s[0], s[1], s[2], s[3], s[4]};
    RC_ASSERT(out[f++] == static_cast<real>((gq.group(i) * Cv + i[1]) * Sq + gq.position(i)));
  });
}

// The unfixed AttnBlock3D's numbering (the bug planted on purpose) is the
// reference's named legacy semantics.
RC_GTEST_PROP(Geometry, LegacySpatialIndexIsTheReferencesReshapeWithoutPermute, ()) {
  const int64_t B = *rc::gen::inRange(1, 4), heads = *rc::gen::inRange(1, 3), D = *rc::gen::inRange(1, 3);
  const int64_t T = *rc::gen::inRange(1, 5), H = *rc::gen::inRange(1, 4), W = *rc::gen::inRange(1, 4);
  const std::vector<int64_t> qs{B, heads * D, T, H, W};
  const ref::Tensor q = numbered(qs);
  const ref::AttentionArgs args{Axes::spatial, q.view(), q.view(), q.view(), heads, 1};
  const ref::AttentionTrace tr = ref::trace_attention(args, ref::Wrong::reshape_without_permute);
  for (int64_t n = 0; n < B * T; ++n)
    for (int64_t g = 0; g < heads; ++g)
      for (int64_t d = 0; d < D; ++d)
        for (int64_t p = 0; p < H * W; ++p)
          RC_ASSERT(tr.q.at(std::vector<int64_t>{n, g, d, p}) ==
                    static_cast<real>(flat(legacy_spatial_index(qs.data(), n, g * D + d, p), qs)));
}

TEST(Geometry, OffsetsAreTheIndexUnderStrides) {
  const int64_t strides[5] = {1000, 100, 17, 5, 1};
  for (auto a : {ATTNCHECK_SPATIAL, ATTNCHECK_TEMPORAL, ATTNCHECK_SPATIOTEMPORAL}) {
    const Geometry g{a, 3, 4, 5};
    for (int64_t n = 0; n < g.groups(2); ++n)
      for (int64_t p = 0; p < g.positions(); ++p) {
        const Index5 i = g.index(n, 7, p);
        const int64_t want = i[0] * 1000 + i[1] * 100 + i[2] * 17 + i[3] * 5 + i[4];
        EXPECT_EQ(g.group_offset(n, strides) + 7 * strides[1] + g.position_offset(p, strides), want);
      }
  }
}

}  // namespace
}  // namespace attncheck
