#include <attncheck/generators.h>

#include <cmath>

namespace attncheck::gen {

rc::Gen<int64_t> dim() {
  return rc::gen::weightedOneOf<int64_t>({
      {6, rc::gen::inRange<int64_t>(1, 5)},
      {2, rc::gen::element<int64_t>(5, 7, 11, 13)},
      {1, rc::gen::element<int64_t>(7, 8, 9, 15, 16, 17)},
  });
}

// A long sequence dimension: enough keys to span many tiles of a blocked
// kernel, landing on and around tile boundaries.
static rc::Gen<int64_t> long_dim() {
  return rc::gen::element<int64_t>(31, 32, 33, 63, 64, 65, 127, 128, 129, 257, 300, 511, 512, 513, 1000, 1024);
}

rc::Gen<LayoutRecipe> layout_recipe(bool input) {
  return rc::gen::exec([input] {
    LayoutRecipe r;
    r.order = *rc::gen::weightedOneOf<int>({{4, rc::gen::just(0)},
                                            {1, rc::gen::just(channels_last_order())},
                                            {2, rc::gen::inRange(0, 120)}});
    r.inner = *rc::gen::weightedOneOf<int64_t>({{6, rc::gen::just<int64_t>(1)}, {1, rc::gen::inRange<int64_t>(2, 4)}});
    for (auto& p : r.pad)
      p = *rc::gen::weightedOneOf<int64_t>({{5, rc::gen::just<int64_t>(0)}, {1, rc::gen::inRange<int64_t>(1, 4)}});
    r.offset = *rc::gen::weightedOneOf<int64_t>({{3, rc::gen::just<int64_t>(0)}, {1, rc::gen::inRange<int64_t>(1, 17)}});
    r.misalign = *rc::gen::weightedOneOf<bool>({{3, rc::gen::just(false)}, {1, rc::gen::just(true)}});
    if (input)
      r.broadcast = *rc::gen::weightedOneOf<int>({{8, rc::gen::just(0)}, {1, rc::gen::inRange(1, 32)}});
    r.size1_stride =
        *rc::gen::weightedOneOf<int64_t>({{5, rc::gen::just<int64_t>(0)}, {1, rc::gen::inRange<int64_t>(1, 100)}});
    return r;
  });
}

rc::Gen<ValueRecipe> value_recipe(int role) {
  return rc::gen::exec([role] {
    ValueRecipe v;
    v.kind = *rc::gen::weightedOneOf<ValueKind>({{8, rc::gen::just(ValueKind::normal)},
                                                 {1, rc::gen::just(ValueKind::large)},
                                                 {1, rc::gen::just(ValueKind::ties)},
                                                 {1, rc::gen::just(ValueKind::dominant)},
                                                 {1, rc::gen::just(ValueKind::scaled)},
                                                 {role == kRoleV ? 1u : 0u, rc::gen::just(ValueKind::offset)}});
    v.seed = *rc::gen::noShrink(rc::gen::arbitrary<uint32_t>());
    return v;
  });
}

rc::Gen<Layout> layout(std::vector<int64_t> shape, bool input) {
  return rc::gen::map(layout_recipe(input), [shape](const LayoutRecipe& r) { return make_layout(r, shape); });
}

static Case raw_case(const CaseOptions& opt) {
  Case c;
  c.axes = opt.axes ? *opt.axes
                    : *rc::gen::element(Axes::spatial, Axes::temporal, Axes::spatiotemporal);
  c.dtype = opt.dtype.value_or(DType::f32);
  const auto prop = opt.property;
  // Shape first.
  // head_independence needs another head to compare, so two or more.
  c.heads = prop == Property::head_independence
                ? *rc::gen::inRange<int64_t>(2, 5)
                : *rc::gen::weightedOneOf<int64_t>({{4, rc::gen::just<int64_t>(1)}, {2, rc::gen::inRange<int64_t>(2, 5)}});
  const int64_t D = *rc::gen::weightedOneOf<int64_t>(
      {{5, rc::gen::inRange<int64_t>(1, 5)}, {2, rc::gen::element<int64_t>(7, 8, 9, 16, 17, 32, 64)}});
  const int64_t Dv = *rc::gen::weightedOneOf<int64_t>(
      {{3, rc::gen::just(D)}, {1, rc::gen::inRange<int64_t>(1, 9)}});
  c.C = c.heads * D;
  c.Cv = c.heads * Dv;
  c.B = *rc::gen::weightedOneOf<int64_t>({{4, rc::gen::just<int64_t>(1)}, {1, rc::gen::inRange<int64_t>(2, 4)}});
  c.Tq = *dim(), c.Hq = *dim(), c.Wq = *dim();
  c.Tk = *dim(), c.Hk = *dim(), c.Wk = *dim();
  // Now and then a long key sequence.
  // 16-bit kernels' bugs (sums that stagnate or overflow, a normaliser or
  // a dropped key lost in rounding) show at long sequences: more often there.
  const bool half = c.dtype == DType::f16 || c.dtype == DType::bf16;
  if (*rc::gen::weightedOneOf<bool>({{half ? 3 : 6, rc::gen::just(false)}, {1, rc::gen::just(true)}})) {
    if (c.axes == Axes::temporal) c.Tk = *long_dim();
    else c.Wk = *long_dim();
  }
  if (c.axes == Axes::spatial) c.Tk = c.Tq;
  if (c.axes == Axes::temporal) c.Hk = c.Hq, c.Wk = c.Wq;
  // group_independence needs another group to compare: with one, the
  // batch grows (the smallest change that adds a group in every family).
  if (prop == Property::group_independence && c.groups() < 2) c.B = *rc::gen::inRange<int64_t>(2, 4);
  if (prop == Property::robustness &&
      *rc::gen::weightedOneOf<bool>({{3, rc::gen::just(false)}, {1, rc::gen::just(true)}})) {
    // A single key: out must equal v.
    if (c.axes != Axes::temporal) c.Hk = c.Wk = 1;
    if (c.axes != Axes::spatial) c.Tk = 1;
  }
  // Scale: 1/sqrt(D) most often, but others, negative and large too.
  const double inv = 1 / std::sqrt(static_cast<double>(D));
  c.scale = *rc::gen::weightedOneOf<double>({{6, rc::gen::just(inv)},
                                             {2, rc::gen::element(1.0, 0.5, 2.0, 0.125)},
                                             {1, rc::gen::element(-inv, -1.0)},
                                             {1, rc::gen::element(8.0, 30.0)}});
  // Then memory: sharing, layouts, values.
  const bool metamorphic = prop == Property::group_independence || prop == Property::query_permutation ||
                           prop == Property::key_permutation || prop == Property::head_independence;
  if (!metamorphic) {
    c.share = *rc::gen::weightedOneOf<Share>({{8, rc::gen::just(Share::none)},
                                              {1, rc::gen::just(Share::qk_same)},
                                              {1, rc::gen::just(Share::kv_overlap)}});
    if (c.share == Share::qk_same) {
      c.Tk = c.Tq, c.Hk = c.Hq, c.Wk = c.Wq;
    }
    if (c.share == Share::kv_overlap) c.kv_overlap = *rc::gen::inRange<int64_t>(0, std::min(c.C, c.Cv) + 1);
  }
  c.flush_high = *rc::gen::arbitrary<bool>();
  for (int t = 0; t < 4; ++t) {
    c.layout[t] = *layout_recipe(t != kRoleOut && !metamorphic);
    if (c.share == Share::kv_overlap && t == kRoleK) c.layout[t].broadcast &= ~2;
  }
  for (int t = 0; t < 3; ++t) c.values[t] = *value_recipe(t);
  if (prop == Property::robustness && c.Sk() != 1) {
    c.values[0].kind = *rc::gen::element(ValueKind::large, ValueKind::ties, ValueKind::dominant);
    c.values[1].kind = *rc::gen::element(ValueKind::large, ValueKind::ties, ValueKind::dominant);
  }
  c.normalize();
  return c;
}

rc::Gen<std::shared_ptr<GuardedTensor>> guarded_tensor(std::vector<int64_t> shape, DType dtype) {
  return rc::gen::exec([shape, dtype] {
    const LayoutRecipe r = *layout_recipe(true);
    const ValueRecipe v = *value_recipe();
    const bool high = *rc::gen::arbitrary<bool>();
    return std::make_shared<GuardedTensor>(shape, r, dtype, v, high);
  });
}

rc::Gen<Case> attention_case(CaseOptions opt) {
  return rc::gen::suchThat(rc::gen::exec([opt] { return raw_case(opt); }),
                           [opt](const Case& c) {
                             double elements = 0;
                             for (int t = 0; t < 4; ++t) {
                               double n = 1;
                               for (int64_t d : c.shape(t)) n *= static_cast<double>(d);
                               elements += n;
                             }
                             return c.flops() <= opt.max_flops && elements <= opt.max_elements;
                           });
}

}  // namespace attncheck::gen
