#include <attncheck/generators.h>
#include <attncheck/shrink.h>
#include <attncheck/suite.h>

#include <rapidcheck/detail/Configuration.h>
#include <rapidcheck/detail/TestListener.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <stdexcept>

namespace attncheck {

namespace {

class Listener : public rc::detail::TestListener {
 public:
  void onTestCaseFinished(const rc::detail::CaseDescription&) override {}
  void onShrinkTried(const rc::detail::CaseDescription&, bool) override { ++shrinks; }
  void onTestFinished(const rc::detail::TestMetadata&, const rc::detail::TestResult&) override {}
  int shrinks = 0;
};

void count(Coverage* cov, const Case& c, const Verdict& v) {
  if (!cov) return;
  const std::string ad = std::string(ref::name_of(c.axes)) + " " + ref::name_of(c.dtype);
  const bool declined = v.kind == Verdict::declined;
  if (v.kind != Verdict::pass && !declined) return;  // neither checked nor declined
  auto add = [&](std::pair<int, int>& n) { declined ? ++n.second : ++n.first; };
  add(cov->by_axes_dtype[ad]);
  for (const auto& cls : c.layout_classes()) add(cov->by_class[cls]);
  if (declined) cov->decline_reasons[v.summary]++;
  if (v.kind == Verdict::pass) {
    double& bound = cov->worst_bound_ratio[c.dtype];
    bound = std::max(bound, v.worst_ratio);
    if (v.literal_ratio >= 0) {
      auto [it, fresh] = cov->worst_literal_ratio.emplace(c.dtype, v.literal_ratio);
      if (!fresh) it->second = std::max(it->second, v.literal_ratio);
    }
  }
}

// RapidCheck prints "Using configuration: ..." to stderr when it first
// loads RC_PARAMS; attncheck reports its own seed, so load it quietly (after
// checking it: RapidCheck exits the process on a malformed one).
void load_rapidcheck_configuration_quietly() {
  static const bool loaded = [] {
    rapidcheck_params_from_env();
    auto* saved = std::cerr.rdbuf(nullptr);
    rc::detail::configuration();
    std::cerr.rdbuf(saved);
    return true;
  }();
  (void)loaded;
}

CheckOptions check_options(const SuiteOptions& opt) {
  CheckOptions c;
  c.run.fork = opt.fork;
  c.run.timeout_base = opt.timeout_base;
  c.run.memory_limit_gib = opt.memory_limit_gib;
  c.strict = opt.strict;
  c.no_declines = opt.no_declines;
  c.precision = opt.precision;
  c.backward = opt.backward;
  return c;
}

}  // namespace

RapidCheckParams rapidcheck_params_from_env() {
  const char* text = std::getenv("RC_PARAMS");
  RapidCheckParams r;
  if (!text || !*text) return r;
  // Parsed twice with different defaults: a key RC_PARAMS names has the
  // same value in both.
  rc::detail::Configuration a, b;
  a.testParams = {1, 1, 1, 1, false};
  b.testParams = {2, 2, 2, 2, true};
  try {
    a = rc::detail::configFromString(text, a);
    b = rc::detail::configFromString(text, b);
  } catch (const std::exception& e) {
    throw std::invalid_argument(std::string("RC_PARAMS: ") + e.what());
  }
  const rc::detail::TestParams &x = a.testParams, &y = b.testParams;
  auto at_least = [](const char* key, int v, int min) {
    if (v < min)
      throw std::invalid_argument(std::string("RC_PARAMS: ") + key + " must be at least " + std::to_string(min) +
                                  ", not " + std::to_string(v));
    return v;
  };
  if (x.maxSuccess == y.maxSuccess) r.max_success = at_least("max_success", x.maxSuccess, 1);
  if (x.seed == y.seed) r.seed = x.seed;
  if (x.maxSize == y.maxSize) r.max_size = x.maxSize;  // RapidCheck refuses negative ones
  if (x.maxDiscardRatio == y.maxDiscardRatio) r.max_discard_ratio = x.maxDiscardRatio;
  if (x.disableShrinking == y.disableShrinking) r.noshrink = x.disableShrinking;
  return r;
}

std::string PropertyOutcome::not_verified() const {
  if (failure || !error.empty() || checked > 0) return "";
  if (!skipped.empty()) return skipped;
  if (declined > 0 && vacuous == 0) {
    // The most frequent reason.
    std::string why;
    int most = 0;
    for (const auto& [reason, n] : decline_reasons)
      if (n > most) most = n, why = reason;
    return "every call declined: " + why;
  }
  if (vacuous > 0 && declined == 0) return "nothing to compare in any case";
  if (cases == 0) return "no case was generated";
  return "no case checked (" + std::to_string(declined) + " declined, " + std::to_string(vacuous) +
         " with nothing to compare)";
}

PropertyOutcome run_property(const attncheck_impl& impl, Property p, Axes axes, DType dtype,
                             const SuiteOptions& opt, Coverage* cov) {
  using clock = std::chrono::steady_clock;
  load_rapidcheck_configuration_quietly();
  PropertyOutcome r;
  r.property = p, r.axes = axes, r.dtype = dtype;
  r.contract = contract_for(dtype, opt.precision);
  const auto start = clock::now();
  gen::CaseOptions g;
  g.axes = axes;
  g.dtype = dtype;
  g.property = p;
  CheckOptions search = check_options(opt);
  search.compare_literal = p == Property::semantics;
  search.diagnose = false;  // only the minimal case is diagnosed
  bool failed = false;
  int seen = 0;
  clock::time_point shrink_deadline = clock::time_point::max();
  Listener listener;
  // A check that throws is the checker's error, never a verdict.
  auto check = [&](const Case& c, const CheckOptions& o) -> std::optional<Verdict> {
    try {
      Verdict v = check_property(p, impl, c, o);
      if (v.kind == Verdict::error && r.error.empty()) r.error = v.summary;
      if (v.kind == Verdict::error) return std::nullopt;
      return v;
    } catch (const std::exception& e) {
      if (r.error.empty()) r.error = std::string("the checker threw: ") + e.what() + " (case " + c.to_text() + ")";
    } catch (...) {
      if (r.error.empty()) r.error = "the checker threw an unknown exception (case " + c.to_text() + ")";
    }
    return std::nullopt;
  };
  auto shrinking_allowed = [&] {
    return clock::now() < shrink_deadline && (!r.hung || opt.shrink_hangs);
  };
  auto body = [&] {
    const Case c =
        *rc::gen::suchThat(gen::attention_case(g), [p](const Case& x) { return property_accepts(p, x); });
    if (!r.error.empty()) RC_SUCCEED("stopped: checker error");
    if (failed && (listener.shrinks > opt.max_shrinks || !shrinking_allowed())) RC_SUCCEED("shrink budget spent");
    const std::optional<Verdict> v = check(c, search);
    if (!v) RC_SUCCEED("stopped: checker error");
    ++r.cases;
    if (!failed) {
      ++seen;
      count(cov, c, *v);
      if (v->kind == Verdict::pass) {
        ++r.checked;
        r.worst_bound_ratio = std::max(r.worst_bound_ratio, v->worst_ratio);
        r.worst_literal_ratio = std::max(r.worst_literal_ratio, v->literal_ratio);
      }
      if (v->kind == Verdict::declined) ++r.declined, ++r.decline_reasons[v->summary];
      if (v->kind == Verdict::vacuous) ++r.vacuous;
      if (opt.progress) opt.progress(seen, opt.cases);
    }
    if (v->kind == Verdict::fail) {
      if (!failed) {
        r.cases_before_failure = seen - 1;
        r.hung = v->hang;
        shrink_deadline = clock::now() + std::chrono::milliseconds(static_cast<int64_t>(opt.shrink_seconds * 1000));
      }
      failed = true;
      r.failure = Failure{c, *v, ""};
      RC_FAIL(v->summary);
    }
  };
  rc::detail::TestParams params;
  params.seed = opt.seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(p) * 1000003 +
                static_cast<uint64_t>(axes) * 7919 + static_cast<uint64_t>(dtype) * 104729;
  params.maxSuccess = opt.cases;
  params.maxSize = opt.max_size;
  params.maxDiscardRatio = opt.max_discard_ratio;
  params.disableShrinking = !opt.shrink;
  rc::detail::TestMetadata meta;
  meta.id = std::string(impl.name) + "/" + name_of(p);
  const rc::detail::TestResult result = rc::detail::checkTestable(body, meta, params, listener);
  // RapidCheck's own verdict must agree with what the body saw: a failure
  // it found that the body did not record (an exception that escaped the
  // body), giving up on discards, or an error of its own, is the checker's
  // error, never a pass.
  rc::detail::FailureResult rc_failure;
  rc::detail::GaveUpResult gave_up;
  rc::detail::Error rc_error;
  if (r.error.empty()) {
    if (result.match(rc_failure) && !r.failure)
      r.error = "RapidCheck reported a failure the checker did not record: " + rc_failure.description;
    else if (result.match(gave_up))
      r.error = "RapidCheck gave up (" + gave_up.description + ") after " + std::to_string(gave_up.numSuccess) +
                " cases";
    else if (result.match(rc_error))
      r.error = "RapidCheck: " + rc_error.description;
  }
  if (r.failure && r.error.empty()) {
    if (!opt.shrink) r.failure->not_minimal = "not shrunk: shrinking is off";
    else if (r.hung && !opt.shrink_hangs)
      r.failure->not_minimal = "not shrunk: hangs are shrunk once per implementation, each try costs the time limit";
    if (opt.shrink && shrinking_allowed())
      r.failure->c = shrink_case(
          r.failure->c,
          [&](const Case& c) {
            if (!shrinking_allowed() || !property_accepts(p, c)) return false;
            const auto v = check(c, search);
            return v && v->kind == Verdict::fail;
          },
          opt.max_case_shrinks);
    if (opt.shrink && r.failure->not_minimal.empty() && clock::now() >= shrink_deadline)
      r.failure->not_minimal = "shrinking stopped after its " + std::to_string(static_cast<int>(opt.shrink_seconds)) +
                               " s budget";
    CheckOptions d = check_options(opt);
    d.compare_literal = true;
    if (const auto v = check(r.failure->c, d); v && v->kind == Verdict::fail) r.failure->v = *v;
  }
  r.seconds = std::chrono::duration<double>(clock::now() - start).count();
  return r;
}

PropertyOutcome run_case(const attncheck_impl& impl, Property p, const Case& c, const SuiteOptions& opt) {
  PropertyOutcome r;
  r.property = p, r.axes = c.axes, r.dtype = c.dtype;
  r.contract = contract_for(c.dtype, opt.precision);
  CheckOptions d = check_options(opt);
  d.compare_literal = true;
  const auto start = std::chrono::steady_clock::now();
  try {
    const Verdict v = check_property(p, impl, c, d);
    r.cases = 1;
    if (v.kind == Verdict::pass) r.checked = 1, r.worst_bound_ratio = v.worst_ratio, r.worst_literal_ratio = v.literal_ratio;
    if (v.kind == Verdict::declined) r.declined = 1, r.decline_reasons[v.summary] = 1;
    if (v.kind == Verdict::vacuous) r.vacuous = 1;
    if (v.kind == Verdict::error) r.error = v.summary;
    if (v.kind == Verdict::fail) r.failure = Failure{c, v, ""}, r.hung = v.hang;
  } catch (const std::exception& e) {
    r.error = std::string("the checker threw: ") + e.what();
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace attncheck
