#include "backward_properties.h"

#include <attncheck/gradient_model.h>

#include "property_support.h"

#include <algorithm>
#include <cmath>
#include <functional>

namespace attncheck {

namespace {

constexpr int kGradRoles[3] = {kRoleDq, kRoleDk, kRoleDv};

// dq, dk and dv as the implementation wrote them.
struct Gradients {
  std::array<ref::Tensor, 3> t{ref::Tensor{std::vector<int64_t>{0}}, ref::Tensor{std::vector<int64_t>{0}},
                               ref::Tensor{std::vector<int64_t>{0}}};
};

// The forward call on g (out), then the backward call with out frozen as
// an input. False, with the verdict set, when either gave nothing to check.
bool run_backward(const attncheck_impl& impl, GuardedCase& g, const CheckOptions& opt, Verdict& v, Gradients* grads) {
  if (!opt.backward) {
    v.kind = Verdict::error;
    v.summary = std::string("no backward implementation was given for ") + impl.name;
    return false;
  }
  const RunResult forward = run_call(impl, g, opt.run);
  if (unusable(forward, v, opt)) {
    v.summary = "the forward call (whose out the backward call takes) " +
                std::string(v.kind == Verdict::declined ? "declined: " : "failed: ") + v.summary;
    return false;
  }
  g.freeze_out();
  const RunResult backward = run_backward_call(*opt.backward, g, opt.run);
  if (unusable(backward, v, opt)) return false;
  if (grads)
    for (int i = 0; i < 3; ++i) grads->t[i] = read_out(g.view(kGradRoles[i]));
  return true;
}

std::string contract_text(const Case& c, const CheckOptions& opt) {
  const Precision p = contract_for(c.dtype, opt.precision);
  return std::string("precision contract ") + name_of(p) + ": " + describe_gradients(p, c.dtype);
}

Verdict semantics(const attncheck_impl& impl, const Case& c, const CheckOptions& opt) {
  Verdict v;
  GuardedCase g(c);
  Gradients got;
  if (!run_backward(impl, g, opt, v, &got)) return v;
  const GradientExpectation e = expect_gradients(g, opt.precision);
  for (int i = 0; i < 3; ++i) {
    const Comparison cmp = compare(within_range(got.t[i], e.want[i], e.bound[i], c.dtype), Expectation{e.want[i], e.bound[i]});
    v.worst_ratio = std::max(v.worst_ratio, cmp.worst_ratio);
    if (cmp.ok || v.kind == Verdict::fail) continue;
    const std::string name = role_name(kGradRoles[i]);
    v.kind = Verdict::fail;
    v.wrong_values = true;
    v.summary = std::to_string(cmp.failing) + " of " + std::to_string(e.want[i].numel()) + " " + name +
                " elements differ from the reference gradient";
    v.details.push_back("first at " + name + index_text(cmp.first) + ": expected " + num(cmp.want) + ", got " +
                        num(cmp.got) + ", |error| " + num(std::fabs(cmp.got - cmp.want)) + " > bound " +
                        num(cmp.bound) + " (" + contract_text(c, opt) + ")");
  }
  if (v.kind == Verdict::fail && opt.diagnose) {
    // NaN where the reference has a value: poison read from outside the
    // views gives NaN for every misreading alike. With finite bytes around
    // the views each misreading gives its own values: diagnose that run.
    bool nan = false;
    for (int i = 0; i < 3; ++i)
      for (int64_t j = 0; j < got.t[i].numel() && !nan; ++j) nan = std::isnan(got.t[i][j]) && !std::isnan(e.want[i][j]);
    if (!nan) {
      v.diagnosis = diagnose_gradients(g, got.t, e, opt.precision);
      if (v.diagnosis.empty()) v.diagnosis = gradient_contract_overflow(g, opt.precision);
    } else {
      GuardedCase finite(c);
      finite.refill_around_inputs(kFinitePoison);
      Gradients again;
      Verdict rerun;
      if (run_backward(impl, finite, opt, rerun, &again)) {
        v.diagnosis = diagnose_gradients(finite, again.t, e, opt.precision);
        if (v.diagnosis.empty()) v.diagnosis = gradient_contract_overflow(g, opt.precision);
        bool still = false;
        for (int i = 0; i < 3; ++i)
          for (int64_t j = 0; j < again.t[i].numel() && !still; ++j)
            still = std::isnan(again.t[i][j]) && !std::isnan(e.want[i][j]);
        v.details.push_back(still ? "the NaN stays with finite bytes around the views: the arithmetic made it"
                                  : "the NaN came from poisoned memory outside the views (with finite bytes there, "
                                    "the gradients are finite)");
      }
    }
  }
  return v;
}

Verdict memory(const attncheck_impl& impl, const Case& c, const CheckOptions& opt) {
  Verdict v;
  GuardedCase g(c);
  Gradients got;
  if (!run_backward(impl, g, opt, v, &got)) return v;
  // Poison is NaN: a NaN in a gradient where the reference's is finite came
  // from a read outside the views if it goes away with finite bytes around
  // them (else the arithmetic made it: backward.semantics' business).
  const GradientExpectation e = expect_gradients(g, opt.precision);
  for (int i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < got.t[i].numel(); ++j) {
      if (!std::isnan(got.t[i][j]) || std::isnan(e.want[i][j])) continue;
      GuardedCase finite(c);
      finite.refill_around_inputs(kFinitePoison);
      Gradients again;
      Verdict rerun;
      const std::string at = role_name(kGradRoles[i]) + index_text(flat_index(j, got.t[i].shape));
      if (!run_backward(impl, finite, opt, rerun, &again)) {
        v.kind = Verdict::fail;
        v.summary = "NaN in " + at + ", and the rerun with finite bytes around the views gave " + rerun.summary;
        return v;
      }
      if (std::isnan(again.t[i][j])) break;  // the arithmetic's: not a memory failure
      v.kind = Verdict::fail;
      v.summary = "NaN in " + at + ": poisoned memory outside the views was read";
      v.details.push_back("with finite bytes around the views instead of NaN, that element is finite");
      return v;
    }
  }
  // The call again, from outputs holding the second canary: an element
  // holding the first canary after the call and the second after this one
  // was not written, and a gradient must not depend on what its memory held
  // before the call (an implementation that accumulates into memory it did
  // not zero: the first canary is -2.9e-16 as f32, the second 1.5e16).
  std::array<std::vector<int64_t>, 3> first;
  for (int i = 0; i < 3; ++i) first[i] = g.unwritten(kGradRoles[i]);
  g.reset_outputs(kOutCanary2);
  const RunResult again = run_backward_call(*opt.backward, g, opt.run);
  if (unusable(again, v, opt)) {
    v.summary = "the call again, from outputs holding another canary: " + v.summary;
    return v;
  }
  for (int i = 0; i < 3; ++i) {
    const std::vector<int64_t> second = g.unwritten(kGradRoles[i]);
    for (int64_t j : first[i])
      if (std::binary_search(second.begin(), second.end(), j)) {
        v.kind = Verdict::fail;
        v.summary = "did not write " + std::string(role_name(kGradRoles[i])) +
                    index_text(flat_index(j, c.shape(kGradRoles[i])));
        char b[160];
        std::snprintf(b, sizeof b,
                      "it held the canary 0x%02x after the call and 0x%02x after a rerun that started from it",
                      kOutCanary, kOutCanary2);
        v.details.push_back(b);
        return v;
      }
  }
  for (int i = 0; i < 3; ++i) {
    const ref::Tensor rerun = read_out(g.view(kGradRoles[i]));
    for (int64_t j = 0; j < rerun.numel(); ++j) {
      const long double x = got.t[i][j], y = rerun[j];
      if ((std::isnan(x) && std::isnan(y)) || x == y) continue;
      if (std::fabs(x - y) <= 2 * e.bound[i][j]) continue;
      v.kind = Verdict::fail;
      const std::string at = role_name(kGradRoles[i]) + index_text(flat_index(j, rerun.shape));
      v.summary = at + " depends on what its memory held before the call (accumulated into memory it did not zero?)";
      char b[200];
      std::snprintf(b, sizeof b, "%s from memory of bytes 0x%02x, %s from 0x%02x", num(x).c_str(), kOutCanary,
                    num(y).c_str(), kOutCanary2);
      v.details.push_back(b);
      return v;
    }
  }
  return v;
}

// Compares the gradients of two runs element by element where `claimed`
// says the second's element should equal the first's: bitwise in strict
// mode (when `bitwise_when_strict`), else within twice the bound.
void compare_runs(const Gradients& a, const Gradients& b, const GradientExpectation& e, bool bitwise,
                  const std::function<bool(int grad, const std::array<int64_t, 5>&)>& claimed,
                  const std::string& what, const std::string& second_name, Verdict& v, int64_t* compared) {
  for (int i = 0; i < 3 && v.kind != Verdict::fail; ++i) {
    int64_t flat = 0;
    ref::for_each_index(a.t[i].shape, [&](std::span<const int64_t> idx) {
      const int64_t j = flat++;
      if (v.kind == Verdict::fail) return;
      const std::array<int64_t, 5> at{idx[0], idx[1], idx[2], idx[3], idx[4]};
      if (!claimed(i, at)) return;
      ++*compared;
      const long double x = a.t[i][j], y = b.t[i][j];
      // Equal values are equal (two infinities too: |x - y| would be NaN).
      const bool same = bitwise
                            ? ((x == y && std::signbit(x) == std::signbit(y)) || (std::isnan(x) && std::isnan(y)))
                            : x == y || std::fabs(x - y) <= 2 * e.bound[i][j] || (std::isnan(x) && std::isnan(y));
      if (same) return;
      v.kind = Verdict::fail;
      v.summary = what;
      v.details.push_back(std::string(role_name(kGradRoles[i])) + index_text(at) + ": " + num(x) +
                          " in the case, " + num(y) + " in " + second_name +
                          (bitwise ? " (bitwise, strict mode)" : ", bound " + num(2 * e.bound[i][j])));
    });
  }
}

Verdict layout_invariance(const attncheck_impl& impl, const Case& c, const CheckOptions& opt) {
  // The same values in other layouts, dout's included: compact where the
  // case is not, else channels-last with padding, an offset and
  // misalignment. Broadcast masks are values, and stay.
  Case alt = c;
  bool any_noncompact = false;
  for (LayoutRecipe r : c.layout) {
    r.broadcast = 0;
    any_noncompact |= !r.is_compact();
  }
  for (auto& r : alt.layout) {
    const int bc = r.broadcast;
    r = LayoutRecipe{};
    r.broadcast = bc;
    if (!any_noncompact) {
      r.order = channels_last_order();
      r.pad = {1, 0, 2, 0, 1};
      r.offset = 3;
      r.misalign = true;
      r.inner = 2;
    }
  }
  alt.flush_high = !c.flush_high;
  alt.normalize();
  Verdict v;
  GuardedCase a(c), b(alt);
  Gradients ga, gb;
  if (!run_backward(impl, a, opt, v, &ga)) return v;
  if (!run_backward(impl, b, opt, v, &gb)) {
    if (v.kind == Verdict::declined) v.summary = "declined the other layout: " + v.summary;
    return v;
  }
  int64_t compared = 0;
  compare_runs(ga, gb, expect_gradients(a, opt.precision), opt.strict,
               [](int, const std::array<int64_t, 5>&) { return true; },
               opt.strict ? "gradients for the same values in two layouts are not bitwise equal"
                          : "gradients for the same values in two layouts differ beyond the bound",
               alt.to_text(), v, &compared);
  return v;
}

// Changes the queries of one group (head) and checks that the gradients of
// every other group (head) stay.
Verdict independence(const attncheck_impl& impl, const Case& c, const CheckOptions& opt, bool heads) {
  const uint64_t h = mix(std::hash<std::string>{}(c.to_text()));
  const Geometry qg = c.geometry(kRoleQ), kg = c.geometry(kRoleK);
  const int64_t D = c.D(), Dv = c.Dv();
  const int64_t chosen = static_cast<int64_t>(h % static_cast<uint64_t>(heads ? c.heads : c.groups()));
  const IndexTransform change = [&](int role, std::array<int64_t, 5>& i) {
    if (role != kRoleQ) return true;
    return heads ? i[1] / D != chosen : qg.group(i) != chosen;
  };
  Verdict v;
  GuardedCase a(c), b(c, change);
  Gradients ga, gb;
  if (!run_backward(impl, a, opt, v, &ga)) return v;
  if (!run_backward(impl, b, opt, v, &gb)) return v;
  const std::string what = std::string("changing the queries of ") + (heads ? "head " : "group ") +
                           std::to_string(chosen) + " changed the gradients of another " + (heads ? "head" : "group");
  int64_t compared = 0;
  compare_runs(ga, gb, expect_gradients(a, opt.precision), opt.strict,
               [&](int grad, const std::array<int64_t, 5>& at) {
                 if (heads) return at[1] / (grad == 2 ? Dv : D) != chosen;
                 return (grad == 0 ? qg : kg).group(at) != chosen;
               },
               what, "the changed case", v, &compared);
  if (compared == 0 && v.kind == Verdict::pass) {
    v.kind = Verdict::vacuous;
    v.summary = "nothing to compare: " + what;
  }
  return v;
}

}  // namespace

Verdict check_backward_property(Property p, const attncheck_impl& impl, const Case& c, const CheckOptions& opt) {
  switch (p) {
    case Property::backward_semantics: return semantics(impl, c, opt);
    case Property::backward_memory: return memory(impl, c, opt);
    case Property::backward_layout_invariance: return layout_invariance(impl, c, opt);
    case Property::backward_group_independence: return independence(impl, c, opt, false);
    case Property::backward_head_independence: return independence(impl, c, opt, true);
    default: break;
  }
  Verdict v;
  v.kind = Verdict::error;
  v.summary = std::string(name_of(p)) + " is not a backward property";
  return v;
}

}  // namespace attncheck
