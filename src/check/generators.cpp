#include <attncheck/generators.h>
#include <rapidcheck/detail/FrequencyMap.h>

#include <cmath>

namespace attncheck::gen {

namespace detail {
rc::Gen<std::size_t> shrinking_index(std::vector<std::size_t> weights) {
  const rc::detail::FrequencyMap map(weights);
  if (map.sum() == 0) throw std::invalid_argument("shrinking_index: the weights sum to 0");
  return [map](const rc::Random& random, int) {
    // RapidCheck's own draw (gen::weightedElement, gen::element), so a
    // seed generates the same cases it did before the choice could shrink.
    const std::size_t i = map.lookup(rc::Random(random).next() % map.sum());
    return rc::shrinkable::shrinkRecur(
        i, [](std::size_t x) { return rc::shrink::towards<std::size_t>(x, 0); });
  };
}
}  // namespace detail

rc::Gen<int64_t> dim() {
  // Mostly 1 to 4, then primes and tile boundaries (7 is in both lists).
  return weighted_element<int64_t>(
      {{18, 1}, {18, 2}, {18, 3}, {18, 4}, {6, 5}, {8, 7}, {2, 8}, {2, 9}, {6, 11}, {6, 13}, {2, 15}, {2, 16}, {2, 17}});
}

// A long sequence dimension: enough keys to span many tiles of a blocked
// kernel, landing on and around tile boundaries.
static rc::Gen<int64_t> long_dim() {
  return element<int64_t>(
      {31, 32, 33, 63, 64, 65, 127, 128, 129, 257, 300, 511, 512, 513, 1000, 1024});
}

rc::Gen<LayoutRecipe> layout_recipe(bool input) {
  return rc::gen::exec([input] {
    LayoutRecipe r;
    r.order = *one_of<int>({{4, rc::gen::just(0)},
                            {1, rc::gen::just(channels_last_order())},
                            {2, rc::gen::inRange(0, 120)}});
    r.inner =
        *one_of<int64_t>({{6, rc::gen::just<int64_t>(1)}, {1, rc::gen::inRange<int64_t>(2, 4)}});
    for (auto& p : r.pad)
      p = *one_of<int64_t>({{5, rc::gen::just<int64_t>(0)}, {1, rc::gen::inRange<int64_t>(1, 4)}});
    r.offset =
        *one_of<int64_t>({{3, rc::gen::just<int64_t>(0)}, {1, rc::gen::inRange<int64_t>(1, 17)}});
    r.misalign = *one_of<bool>({{3, rc::gen::just(false)}, {1, rc::gen::just(true)}});
    if (input) r.broadcast = *one_of<int>({{8, rc::gen::just(0)}, {1, rc::gen::inRange(1, 32)}});
    r.size1_stride =
        *one_of<int64_t>({{5, rc::gen::just<int64_t>(0)}, {1, rc::gen::inRange<int64_t>(1, 100)}});
    return r;
  });
}

rc::Gen<ValueRecipe> value_recipe(int role) {
  return rc::gen::exec([role] {
    ValueRecipe v;
    v.kind = *one_of<ValueKind>({{8, rc::gen::just(ValueKind::normal)},
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
  return rc::gen::map(layout_recipe(input),
                      [shape](const LayoutRecipe& r) { return make_layout(r, shape); });
}

static Case raw_case(const CaseOptions& opt) {
  Case c;
  c.axes =
      opt.axes ? *opt.axes : *element<Axes>({Axes::spatial, Axes::temporal, Axes::spatiotemporal});
  c.dtype = opt.dtype.value_or(DType::f32);
  const auto prop = opt.property;
  // Shape first.
  // head_independence needs another head to compare, so two or more.
  const bool backward = prop && is_backward(*prop);
  const bool head_pair = prop == Property::head_independence || prop == Property::backward_head_independence;
  const bool group_pair = prop == Property::group_independence || prop == Property::backward_group_independence;
  c.heads = head_pair
                ? *rc::gen::inRange<int64_t>(2, 5)
                : *one_of<int64_t>(
                      {{4, rc::gen::just<int64_t>(1)}, {2, rc::gen::inRange<int64_t>(2, 5)}});
  // 1 to 4 five times in seven, then a few tile-shaped sizes.
  const int64_t D = *weighted_element<int64_t>(
      {{35, 1}, {35, 2}, {35, 3}, {35, 4}, {8, 7}, {8, 8}, {8, 9}, {8, 16}, {8, 17}, {8, 32}, {8, 64}});
  const int64_t Dv =
      *one_of<int64_t>({{3, rc::gen::just(D)}, {1, rc::gen::inRange<int64_t>(1, 9)}});
  c.C = c.heads * D;
  c.Cv = c.heads * Dv;
  c.B = *one_of<int64_t>({{4, rc::gen::just<int64_t>(1)}, {1, rc::gen::inRange<int64_t>(2, 4)}});
  // Every choice that decides a key dimension is drawn before it, and no
  // draw is overwritten later: RapidCheck shrinks the draws in order and
  // never returns to an earlier one, so a value that a later draw replaces
  // (a dimension, then a long one in its place) cannot shrink.
  // Now and then a long key sequence.
  // 16-bit kernels' bugs (sums that stagnate or overflow, a normaliser or
  // a dropped key lost in rounding) show at long sequences: more often there.
  const bool half = c.dtype == DType::f16 || c.dtype == DType::bf16;
  const bool long_keys =
      *one_of<bool>({{half ? 3 : 6, rc::gen::just(false)}, {1, rc::gen::just(true)}});
  // robustness: now and then a single key (out must equal v).
  const bool single_key = prop == Property::robustness &&
                          *one_of<bool>({{3, rc::gen::just(false)}, {1, rc::gen::just(true)}});
  c.Tq = *dim(), c.Hq = *dim(), c.Wq = *dim();
  const auto key_dim = [&](bool is_long) {
    return single_key ? int64_t{1} : is_long ? *long_dim() : *dim();
  };
  c.Tk = c.axes == Axes::spatial ? c.Tq : key_dim(long_keys && c.axes == Axes::temporal);
  c.Hk = c.axes == Axes::temporal ? c.Hq : key_dim(false);
  c.Wk = c.axes == Axes::temporal ? c.Wq : key_dim(long_keys);
  // group_independence needs another group to compare: with one, the
  // batch grows (the smallest change that adds a group in every family).
  if (group_pair && c.groups() < 2)
    c.B = *rc::gen::inRange<int64_t>(2, 4);
  // Scale: 1/sqrt(D) most often, but others, negative and large too.
  const double inv = 1 / std::sqrt(static_cast<double>(D));
  c.scale = *one_of<double>({{6, rc::gen::just(inv)},
                             {2, element<double>({1.0, 0.5, 2.0, 0.125})},
                             {1, element<double>({-inv, -1.0})},
                             {1, element<double>({8.0, 30.0})}});
  // Then memory: sharing, layouts, values.
  const bool metamorphic = head_pair || group_pair ||
                           prop == Property::query_permutation ||
                           prop == Property::key_permutation || prop == Property::head_independence;
  if (!metamorphic) {
    c.share = *one_of<Share>({{8, rc::gen::just(Share::none)},
                              {1, rc::gen::just(Share::qk_same)},
                              {1, rc::gen::just(Share::kv_overlap)}});
    if (c.share == Share::qk_same) {
      c.Tk = c.Tq, c.Hk = c.Hq, c.Wk = c.Wq;
    }
    if (c.share == Share::kv_overlap)
      c.kv_overlap = *rc::gen::inRange<int64_t>(0, std::min(c.C, c.Cv) + 1);
  }
  c.flush_high = *rc::gen::arbitrary<bool>();
  for (int t = 0; t < 4; ++t) {
    c.layout[t] = *layout_recipe(t != kRoleOut && !metamorphic);
    if (c.share == Share::kv_overlap && t == kRoleK) c.layout[t].broadcast &= ~2;
  }
  for (int t = 0; t < 3; ++t) c.values[t] = *value_recipe(t);
  if (prop == Property::robustness && c.Sk() != 1) {
    c.values[0].kind =
        *element<ValueKind>({ValueKind::large, ValueKind::ties, ValueKind::dominant});
    c.values[1].kind =
        *element<ValueKind>({ValueKind::large, ValueKind::ties, ValueKind::dominant});
  }
  if (backward) {
    // dout in a layout of its own (zero strides allowed), or in out's or
    // q's: the real bugs read dout with out's strides (flash-attention
    // #355) or assume it packed (#325, an expanded dout).
    c.backward = true;
    const int like = *one_of<int>({{6, rc::gen::just(0)}, {1, rc::gen::just(1)}, {1, rc::gen::just(2)}});
    c.layout[kRoleDout] = like == 1   ? c.layout[kRoleOut]
                          : like == 2 ? c.layout[kRoleQ]
                                      : *layout_recipe(!metamorphic);
    for (int t : {kRoleDq, kRoleDk, kRoleDv}) c.layout[t] = *layout_recipe(false);
    c.values[3] = *value_recipe(kRoleDout);
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
  return rc::gen::suchThat(rc::gen::exec([opt] { return raw_case(opt); }), [opt](const Case& c) {
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
