// One property, checked over generated cases on one implementation: the
// loop shared by `attncheck verify` and the GoogleTest integration
// (attncheck/gtest.h). RapidCheck generates the cases and shrinks a
// failure, attncheck's case shrinker finishes the job, and the minimal case
// is diagnosed.
#pragma once

#include <attncheck/case.h>
#include <attncheck/properties.h>

#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <string>

namespace attncheck {

struct SuiteOptions {
  int cases = 30;     // generated cases per (property, axes, dtype)
  uint64_t seed = 1;  // the same seed gives the same cases
  bool strict = false;
  bool fork = true;
  int max_shrinks = 1000;      // RapidCheck's shrink tries per failure
  int max_case_shrinks = 400;  // attncheck's case shrinker's tries
  int max_size = 100;          // RapidCheck's size: the generated cases grow up to it
  int max_discard_ratio = 10;  // RapidCheck's discards per accepted case
  bool shrink = true;          // false: report the first failing case as it was generated
  // Called after each generated case (for a progress line), may be empty.
  std::function<void(int done, int total)> progress;
};

// RapidCheck's own parameters as RC_PARAMS sets them (RapidCheck's syntax,
// e.g. RC_PARAMS="max_success=200 max_size=50 noshrink=1"): only the keys
// RC_PARAMS names. Throws std::invalid_argument ("RC_PARAMS: ...") when it
// does not parse or a value is out of range. A malformed RC_PARAMS would
// otherwise make RapidCheck exit the process on its first use.
struct RapidCheckParams {
  std::optional<int> max_success;
  std::optional<uint64_t> seed;
  std::optional<int> max_size;
  std::optional<int> max_discard_ratio;
  std::optional<bool> noshrink;
};
RapidCheckParams rapidcheck_params_from_env();

struct Failure {
  Case c;     // the minimal case
  Verdict v;  // its verdict, diagnosed
};

// Cases run and declined, by layout class, by "axes dtype", and the reasons.
struct Coverage {
  std::map<std::string, std::pair<int, int>> by_class;
  std::map<std::string, std::pair<int, int>> by_axes_dtype;
  std::map<std::string, int> decline_reasons;
  double worst_bound_ratio = 0;  // max error / bound over passing cases
  double worst_f32_ratio = -1;   // max error / reference_f32's error (semantics)
};

struct PropertyOutcome {
  Property property = Property::semantics;
  Axes axes = Axes::spatial;
  DType dtype = DType::f32;
  int passed = 0, declined = 0, cases = 0;
  int cases_before_failure = 0;
  std::optional<Failure> failure;
  double seconds = 0;
};

PropertyOutcome run_property(const attncheck_impl& impl, Property p, Axes axes, DType dtype,
                             const SuiteOptions& opt, Coverage* coverage = nullptr);

// One case, one property: the replay path.
PropertyOutcome run_case(const attncheck_impl& impl, Property p, const Case& c, const SuiteOptions& opt);

// The report of a failure: what failed, the first differing element, the
// diagnosis, the minimal case with every layout in CuTe notation, and the
// replay line (made by the caller: it knows how the user runs things).
void print_failure(std::ostream& out, const PropertyOutcome& r, const std::string& replay);

std::string shell_quote(const std::string& s);

}  // namespace attncheck
