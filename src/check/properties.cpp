#include <attncheck/diagnosis.h>
#include <attncheck/error_model.h>
#include <attncheck/properties.h>

#include "backward_properties.h"
#include "property_support.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace attncheck {

const char* name_of(Property p) {
  switch (p) {
    case Property::semantics: return "semantics";
    case Property::layout_invariance: return "layout_invariance";
    case Property::memory: return "memory";
    case Property::group_independence: return "group_independence";
    case Property::query_permutation: return "query_permutation";
    case Property::key_permutation: return "key_permutation";
    case Property::head_independence: return "head_independence";
    case Property::robustness: return "robustness";
    case Property::backward_semantics: return "backward.semantics";
    case Property::backward_layout_invariance: return "backward.layout_invariance";
    case Property::backward_memory: return "backward.memory";
    case Property::backward_group_independence: return "backward.group_independence";
    case Property::backward_head_independence: return "backward.head_independence";
  }
  return "?";
}

bool is_backward(Property p) { return static_cast<int>(p) >= kPropertyCount; }

std::vector<Property> every_property() {
  std::vector<Property> v = all_properties();
  for (Property p : backward_properties()) v.push_back(p);
  return v;
}

std::vector<Property> backward_properties() {
  std::vector<Property> v;
  for (int i = 0; i < kBackwardPropertyCount; ++i) v.push_back(static_cast<Property>(kPropertyCount + i));
  return v;
}

std::vector<Property> all_properties() {
  std::vector<Property> v;
  for (int i = 0; i < kPropertyCount; ++i) v.push_back(static_cast<Property>(i));
  return v;
}

Property parse_property(const std::string& name) {
  for (Property p : all_properties())
    if (name == name_of(p)) return p;
  for (Property p : backward_properties())
    if (name == name_of(p)) return p;
  throw std::invalid_argument("unknown property '" + name + "'");
}

bool property_accepts(Property p, const Case& c) {
  // A backward property takes backward cases, a forward one forward cases.
  if (is_backward(p) != c.backward) return false;
  switch (p) {
    case Property::group_independence:
    case Property::query_permutation:
    case Property::key_permutation:
    case Property::head_independence: {
      // Values are moved by logical index: inputs must not share memory or
      // repeat along broadcast dimensions.
      const bool unshared = c.share == Share::none && c.layout[0].broadcast == 0 &&
                            c.layout[1].broadcast == 0 && c.layout[2].broadcast == 0;
      // With one head (one group) there is no other head (group) to compare.
      if (p == Property::head_independence) return unshared && c.heads >= 2;
      if (p == Property::group_independence) return unshared && c.groups() >= 2;
      return unshared;
    }
    case Property::robustness:
      return c.Sk() == 1 || c.values[0].kind != ValueKind::normal || c.values[1].kind != ValueKind::normal;
    case Property::backward_group_independence:
    case Property::backward_head_independence: {
      const bool unshared = c.share == Share::none && c.layout[kRoleQ].broadcast == 0 &&
                            c.layout[kRoleK].broadcast == 0 && c.layout[kRoleV].broadcast == 0 &&
                            c.layout[kRoleDout].broadcast == 0;
      return unshared && (p == Property::backward_head_independence ? c.heads >= 2 : c.groups() >= 2);
    }
    default:
      return true;
  }
}

namespace {

// A permutation of n elements from a seed (Fisher-Yates over splitmix).
std::vector<int64_t> permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(n);
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    seed = mix(seed + 0x9e3779b97f4a7c15ull);
    std::swap(p[i], p[seed % static_cast<uint64_t>(i + 1)]);
  }
  return p;
}

struct Outcome {
  RunResult run;
  ref::Tensor out{std::vector<int64_t>{0}};
};

Outcome run_once(const attncheck_impl& impl, GuardedCase& g, const CheckOptions& opt) {
  Outcome o;
  o.run = run_call(impl, g, opt.run);
  if (o.run.finding.empty() && o.run.status == ATTNCHECK_OK) o.out = read_out(g.view(kRoleOut));
  return o;
}

// The largest error of the contract's literal evaluation (error_model.h).
double literal_error(const ref::AttentionTrace& tr, const GuardedCase& g, const Expectation& e, Precision p) {
  const ref::Tensor lit = literal(tr, reference_args(g), g.spec().dtype, p);
  long double m = 0;
  for (int64_t i = 0; i < lit.numel(); ++i) m = std::max(m, std::fabs(lit[i] - e.want[i]));
  return static_cast<double>(m);
}

Verdict semantics(const attncheck_impl& impl, const Case& c, const CheckOptions& opt) {
  Verdict v;
  GuardedCase g(c);
  const Outcome o = run_once(impl, g, opt);
  if (unusable(o.run, v, opt)) return v;
  const ref::AttentionTrace tr = ref::trace_attention(reference_args(g));
  const Expectation e = expect(tr, reference_args(g), c.dtype, opt.precision);
  const Comparison cmp = compare(o.out, e);
  v.worst_ratio = cmp.worst_ratio;
  if (opt.compare_literal) {
    // The denominator is floored at one unit roundoff of the output's
    // magnitude and at 2^-10 of the largest bound: the literal evaluation
    // is often exact on small cases, and a ratio to an error of 0 (or of
    // 1e-300, where out is all 0) says nothing.
    const double base = literal_error(tr, g, e, opt.precision);
    long double biggest = 0, widest = 0;
    for (int64_t i = 0; i < e.want.numel(); ++i)
      biggest = std::max(biggest, std::fabs(e.want[i])), widest = std::max(widest, e.bound[i]);
    const double floor = std::max({unit_roundoff(c.dtype) * static_cast<double>(biggest),
                                   static_cast<double>(widest) * 0x1p-10, std::numeric_limits<double>::min()});
    v.literal_ratio = static_cast<double>(cmp.max_error) / std::max(base, floor);
  }
  if (cmp.ok) return v;
  v.kind = Verdict::fail;
  v.wrong_values = true;
  v.summary = std::to_string(cmp.failing) + " of " + std::to_string(e.want.numel()) +
              " output elements differ from the reference";
  v.details.push_back("first at out" + index_text(cmp.first) + ": expected " + num(cmp.want) + ", got " +
                      num(cmp.got) + ", |error| " + num(std::fabs(cmp.got - cmp.want)) + " > bound " +
                      num(cmp.bound) + " (precision contract " + name_of(contract_for(c.dtype, opt.precision)) +
                      ": " + describe(contract_for(c.dtype, opt.precision), c.dtype) + ")");
  if (opt.diagnose) {
    // Where out has NaN, misreadings that all read poison all give NaN and
    // look alike: a candidate must also give the output of the rerun with
    // finite memory around the views, where each gives its own values.
    const NanSource nan = nan_source(impl, g, o.out, e.want, opt.run);
    const bool rerun = nan.kind == NanSource::poison || nan.kind == NanSource::arithmetic;
    v.diagnosis = rerun ? diagnose(g, o.out, nan.finite_out, e, opt.precision) : diagnose(g, o.out, e, opt.precision);
    if (v.diagnosis.empty()) v.diagnosis = nan_diagnosis(nan, g, opt.precision);
    // An inf (not NaN) from a contract that overflows f16 on this case.
    if (v.diagnosis.empty()) v.diagnosis = contract_overflow(reference_args(g), c.dtype, opt.precision);
  }
  return v;
}

Verdict memory(const attncheck_impl& impl, const Case& c, const CheckOptions& opt) {
  Verdict v;
  GuardedCase g(c);
  const Outcome o = run_once(impl, g, opt);
  if (unusable(o.run, v, opt)) return v;
  // Poison is NaN: a NaN in out where the reference has a value came from
  // a read outside the views if it goes away with finite bytes around them
  // (else the arithmetic made it: semantics' and robustness' business).
  const ref::Tensor want = ref::attention(reference_args(g));
  const NanSource nan = nan_source(impl, g, o.out, want, opt.run);
  if (nan.kind == NanSource::poison || nan.kind == NanSource::unknown) {
    v.kind = Verdict::fail;
    v.summary = "NaN in out" + index_text(nan.at) + ": poisoned memory outside the views was read";
    if (nan.kind == NanSource::unknown)
      v.summary += " (not confirmed: the rerun with finite bytes around the views gave " + nan.rerun + ")";
    else
      v.details.push_back("with finite bytes around the views instead of NaN, that element is finite");
    return v;
  }
  // An element still holding the canary may be a written value that equals
  // it (f16's 0xa5a5 is -0.0226): it is unwritten only if a rerun with the
  // second canary leaves that one there too.
  const std::vector<int64_t> first = g.unwritten();
  if (first.empty()) return v;
  g.reset_outputs(kOutCanary2);
  const Outcome again = run_once(impl, g, opt);
  if (unusable(again.run, v, opt)) {
    if (v.kind == Verdict::fail) v.summary = "rerun to confirm an unwritten element: " + v.summary;
    return v;
  }
  const std::vector<int64_t> second = g.unwritten();
  for (int64_t i : first)
    if (std::binary_search(second.begin(), second.end(), i)) {
      v.kind = Verdict::fail;
      v.summary = "did not write out" + index_text(flat_index(i, want.shape));
      char b[160];
      std::snprintf(b, sizeof b, "it held the canary 0x%02x after the call and 0x%02x after a rerun that started from it",
                    kOutCanary, kOutCanary2);
      v.details.push_back(b);
      break;
    }
  return v;
}

// Runs the case plain and transformed, and compares the outputs where
// `expected_index(out_index)` says the transformed output should equal the
// plain one (-1 where nothing is claimed).
Verdict compare_transformed(const attncheck_impl& impl, const Case& c, const CheckOptions& opt,
                            const IndexTransform& transform, bool bitwise_when_strict,
                            const std::function<bool(std::array<int64_t, 5>&)>& source_of,
                            const std::string& what) {
  Verdict v;
  GuardedCase a(c);
  const Outcome oa = run_once(impl, a, opt);
  if (unusable(oa.run, v, opt)) return v;
  GuardedCase b(c, transform);
  const Outcome ob = run_once(impl, b, opt);
  if (unusable(ob.run, v, opt)) return v;
  const Expectation e = expect(a, opt.precision);
  const bool bitwise = opt.strict && bitwise_when_strict;
  int64_t flat = 0, compared = 0;
  const auto& shape = oa.out.shape;
  ref::for_each_index(shape, [&](std::span<const int64_t> idx) {
    const int64_t i = flat++;
    if (v.kind == Verdict::fail) return;
    std::array<int64_t, 5> src{idx[0], idx[1], idx[2], idx[3], idx[4]};
    if (!source_of(src)) return;
    ++compared;
    int64_t j = 0;
    for (int d = 0; d < 5; ++d) j = j * shape[d] + src[d];
    const long double x = ob.out[i], y = oa.out[j];
    // Bitwise for values read from a 16-, 32- or 64-bit dtype: equal with the
    // same sign (+0 and -0 differ), or both NaN. (Not memcmp of the long
    // doubles: their padding bytes are not values.)
    const bool same = bitwise ? ((x == y && std::signbit(x) == std::signbit(y)) || (std::isnan(x) && std::isnan(y)))
                              : x == y || std::fabs(x - y) <= 2 * e.bound[j];
    if (!same) {
      v.kind = Verdict::fail;
      v.summary = what;
      std::array<int64_t, 5> at{idx[0], idx[1], idx[2], idx[3], idx[4]};
      v.details.push_back("out" + index_text(at) + " of the changed case is " + num(x) +
                          ", expected out" + index_text(src) + " = " + num(y) + " of the original" +
                          (bitwise ? " (bitwise, strict mode)" : ", bound " + num(2 * e.bound[j])));
    }
  });
  if (compared == 0) {
    v.kind = Verdict::vacuous;
    v.summary = "nothing to compare: " + what;
  }
  return v;
}

Verdict layout_invariance(const attncheck_impl& impl, const Case& c, const CheckOptions& opt) {
  // The same values in other layouts: compact if the case is not, else
  // channels-last with padding, an offset and misalignment. Broadcast masks
  // stay (they are part of the values), sharing stays.
  Case alt = c;
  bool any_noncompact = false;
  for (LayoutRecipe r : c.layout) {
    r.broadcast = 0;  // a broadcast mask is part of the values, not of the layout
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
  const Outcome oa = run_once(impl, a, opt);
  if (unusable(oa.run, v, opt)) return v;
  const Outcome ob = run_once(impl, b, opt);
  if (unusable(ob.run, v, opt)) {
    if (v.kind == Verdict::declined) v.summary = "declined the other layout: " + v.summary;
    return v;
  }
  const Expectation e = expect(a, opt.precision);
  for (int64_t i = 0; i < oa.out.numel(); ++i) {
    const long double x = oa.out[i], y = ob.out[i];
    const bool same = opt.strict ? (x == y || (std::isnan(x) && std::isnan(y)))
                                 : x == y || std::fabs(x - y) <= 2 * e.bound[i];
    if (!same) {
      v.kind = Verdict::fail;
      v.summary = opt.strict ? "outputs for the same values in two layouts are not bitwise equal"
                             : "outputs for the same values in two layouts differ beyond the bound";
      v.details.push_back("out" + index_text(flat_index(i, oa.out.shape)) + ": " + num(x) + " in the case's layout, " + num(y) +
                          " in " + alt.to_text());
      return v;
    }
  }
  return v;
}

}  // namespace

Verdict check_property(Property p, const attncheck_impl& impl, const Case& c, const CheckOptions& opt) {
  if (is_backward(p)) return check_backward_property(p, impl, c, opt);
  const uint64_t h = mix(std::hash<std::string>{}(c.to_text()));
  switch (p) {
    case Property::semantics:
    case Property::robustness:
      return semantics(impl, c, opt);
    case Property::memory:
      return memory(impl, c, opt);
    case Property::layout_invariance:
      return layout_invariance(impl, c, opt);
    case Property::group_independence: {
      const Geometry qc = c.geometry(kRoleQ);
      const int64_t n0 = static_cast<int64_t>(h % static_cast<uint64_t>(c.groups()));
      return compare_transformed(
          impl, c, opt,
          [&](int role, std::array<int64_t, 5>& i) { return !(role == kRoleQ && qc.group(i) == n0); }, true,
          [&](std::array<int64_t, 5>& o) { return qc.group(o) != n0; },
          "changing the queries of group " + std::to_string(n0) + " changed the output of another group");
    }
    case Property::head_independence: {
      const int64_t g0 = static_cast<int64_t>(h % static_cast<uint64_t>(c.heads));
      const int64_t D = c.D(), Dv = c.Dv();
      return compare_transformed(
          impl, c, opt,
          [&](int role, std::array<int64_t, 5>& i) { return !(role == kRoleQ && i[1] / D == g0); }, true,
          [&](std::array<int64_t, 5>& o) { return o[1] / Dv != g0; },
          "changing the queries of head " + std::to_string(g0) + " changed the output of another head");
    }
    case Property::query_permutation: {
      const Geometry qc = c.geometry(kRoleQ);
      const auto pi = permutation(qc.positions(), h);
      // The changed case's query at position p holds the original's query pi[p].
      return compare_transformed(
          impl, c, opt,
          [&](int role, std::array<int64_t, 5>& i) {
            if (role == kRoleQ) qc.set_position(i, pi[qc.position(i)]);
            return true;
          },
          false,
          [&](std::array<int64_t, 5>& o) {
            qc.set_position(o, pi[qc.position(o)]);
            return true;
          },
          "permuting the query positions did not permute the output the same way");
    }
    case Property::key_permutation: {
      const Geometry kc = c.geometry(kRoleK);
      const auto pi = permutation(kc.positions(), h);
      return compare_transformed(
          impl, c, opt,
          [&](int role, std::array<int64_t, 5>& i) {
            if (role == kRoleK || role == kRoleV) kc.set_position(i, pi[kc.position(i)]);
            return true;
          },
          false, [](std::array<int64_t, 5>&) { return true; },
          "permuting keys and values jointly changed the output");
    }
    default:  // the backward properties: above
      break;
  }
  return {};
}

}  // namespace attncheck
