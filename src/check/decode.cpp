#include <attncheck/decode.h>

#include <FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>

namespace attncheck {

namespace {

// The same size families as gen::dim(): small, primes, tile boundaries.
int64_t pick_dim(FuzzedDataProvider& in) {
  static constexpr int64_t kSpecial[] = {5, 7, 11, 13, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129};
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0:
    case 1: return in.ConsumeIntegralInRange<int64_t>(1, 4);
    case 2: return in.PickValueInArray(kSpecial);
    default: return in.ConsumeIntegralInRange<int64_t>(1, 300);
  }
}

LayoutRecipe pick_layout(FuzzedDataProvider& in, bool input) {
  LayoutRecipe r;
  r.order = in.ConsumeBool() ? 0 : in.ConsumeIntegralInRange<int>(0, 119);
  r.inner = in.ConsumeBool() ? 1 : in.ConsumeIntegralInRange<int64_t>(1, 4);
  for (auto& p : r.pad) p = in.ConsumeBool() ? 0 : in.ConsumeIntegralInRange<int64_t>(0, 3);
  r.offset = in.ConsumeBool() ? 0 : in.ConsumeIntegralInRange<int64_t>(0, 17);
  r.misalign = in.ConsumeBool();
  r.broadcast = input && in.ConsumeBool() ? in.ConsumeIntegralInRange<int>(0, 31) : 0;
  r.size1_stride = in.ConsumeBool() ? 0 : in.ConsumeIntegralInRange<int64_t>(0, 100);
  return r;
}

}  // namespace

Case decode_case(const uint8_t* data, size_t size, const DecodeOptions& opt) {
  FuzzedDataProvider in(data, size);
  Case c;
  c.axes = static_cast<Axes>(in.ConsumeIntegralInRange<int>(0, 2));
  c.dtype = in.PickValueInArray({DType::f32, DType::f32, DType::f32, DType::f64, DType::f16, DType::bf16});
  c.heads = in.ConsumeIntegralInRange<int64_t>(1, 4);
  const int64_t D = in.ConsumeBool() ? in.ConsumeIntegralInRange<int64_t>(1, 4)
                                     : in.PickValueInArray<int64_t>({7, 8, 9, 16, 17, 32, 64});
  const int64_t Dv = in.ConsumeBool() ? D : in.ConsumeIntegralInRange<int64_t>(1, 8);
  c.C = c.heads * D;
  c.Cv = c.heads * Dv;
  c.B = in.ConsumeIntegralInRange<int64_t>(1, 3);
  c.Tq = pick_dim(in), c.Hq = pick_dim(in), c.Wq = pick_dim(in);
  c.Tk = pick_dim(in), c.Hk = pick_dim(in), c.Wk = pick_dim(in);
  if (c.axes == Axes::spatial) c.Tk = c.Tq;
  if (c.axes == Axes::temporal) c.Hk = c.Hq, c.Wk = c.Wq;
  const double inv = 1 / std::sqrt(static_cast<double>(D));
  switch (in.ConsumeIntegralInRange<int>(0, 4)) {
    case 0: case 1: c.scale = inv; break;
    case 2: c.scale = in.PickValueInArray({1.0, 0.5, 2.0, 0.125}); break;
    case 3: c.scale = in.PickValueInArray({-inv, -1.0}); break;
    default: c.scale = in.PickValueInArray({8.0, 30.0}); break;
  }
  const auto prop = opt.property;
  const bool metamorphic = prop == Property::group_independence || prop == Property::query_permutation ||
                           prop == Property::key_permutation || prop == Property::head_independence ||
                           prop == Property::backward_group_independence ||
                           prop == Property::backward_head_independence;
  if (!metamorphic) {
    c.share = static_cast<Share>(in.ConsumeIntegralInRange<int>(0, 2));
    if (c.share == Share::qk_same) c.Tk = c.Tq, c.Hk = c.Hq, c.Wk = c.Wq;
    if (c.share == Share::kv_overlap) c.kv_overlap = in.ConsumeIntegralInRange<int64_t>(0, std::min(c.C, c.Cv));
  }
  c.flush_high = in.ConsumeBool();
  for (int t = 0; t < 4; ++t) c.layout[t] = pick_layout(in, t != kRoleOut && !metamorphic);
  if (c.share == Share::kv_overlap) c.layout[kRoleK].broadcast &= ~2;
  for (int t = 0; t < 3; ++t) {
    c.values[t].kind = static_cast<ValueKind>(in.ConsumeIntegralInRange<int>(0, 3));
    c.values[t].seed = in.ConsumeIntegral<uint32_t>();
  }
  // The value kinds added later (scaled; offset for v) are chosen by the
  // input's last byte, read after everything else, so inputs saved before
  // them (corpus, regressions) still decode to the same cases: 0 (and an
  // input with no byte left) changes nothing.
  switch (in.ConsumeIntegralInRange<int>(0, 7)) {
    case 1: c.values[0].kind = ValueKind::scaled; break;
    case 2: c.values[1].kind = ValueKind::scaled; break;
    case 3: c.values[2].kind = ValueKind::scaled; break;
    case 4: c.values[2].kind = ValueKind::offset; break;
    case 5: c.values[0].kind = c.values[1].kind = ValueKind::scaled, c.values[2].kind = ValueKind::offset; break;
    default: break;
  }
  if (prop == Property::robustness && c.values[0].kind == ValueKind::normal &&
      c.values[1].kind == ValueKind::normal)
    c.values[1].kind = ValueKind::large;
  if ((prop && is_backward(*prop)) || (opt.backward_allowed && in.ConsumeBool())) {
    // dout in its own layout, or in out's or q's (flash-attention #355 read
    // dout with out's strides), and the gradients' layouts.
    c.backward = true;
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
      case 1: c.layout[kRoleDout] = c.layout[kRoleOut]; break;
      case 2: c.layout[kRoleDout] = c.layout[kRoleQ]; break;
      default: c.layout[kRoleDout] = pick_layout(in, !metamorphic); break;
    }
    for (int t : {kRoleDq, kRoleDk, kRoleDv}) c.layout[t] = pick_layout(in, false);
    c.values[3].kind = static_cast<ValueKind>(in.ConsumeIntegralInRange<int>(0, 4));
    c.values[3].seed = in.ConsumeIntegral<uint32_t>();
  }
  // Cut sizes down (largest first) until the case is cheap enough.
  while (c.flops() > opt.max_flops) {
    int64_t* dims[] = {&c.B, &c.Tq, &c.Hq, &c.Wq, &c.Tk, &c.Hk, &c.Wk};
    int64_t** biggest = std::max_element(std::begin(dims), std::end(dims),
                                         [](int64_t* a, int64_t* b) { return *a < *b; });
    if (**biggest == 1) {
      c.C = c.heads, c.Cv = c.heads;
      if (c.flops() > opt.max_flops) c.heads = c.C = c.Cv = 1;
      break;
    }
    **biggest = (**biggest + 1) / 2;
    if (c.axes == Axes::spatial) c.Tk = c.Tq = std::min(c.Tq, c.Tk);
    if (c.axes == Axes::temporal) c.Hk = c.Hq = std::min(c.Hq, c.Hk), c.Wk = c.Wq = std::min(c.Wq, c.Wk);
    if (c.share == Share::qk_same) c.Tk = c.Tq, c.Hk = c.Hq, c.Wk = c.Wq;
  }
  // Channels cut down above: the overlap of k and v cannot exceed them.
  c.kv_overlap = std::min(c.kv_overlap, std::min(c.C, c.Cv));
  c.normalize();
  return c;
}

}  // namespace attncheck
