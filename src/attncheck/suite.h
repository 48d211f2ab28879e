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
  bool no_declines = false;  // a declined call is a failure
  Precision precision = Precision::fused;  // the contract of 16-bit runs (error_model.h)
  double timeout_base = 10;  // a call's time limit: this many seconds plus 10 s per GFLOP
  double memory_limit_gib = 8;  // forked calls' address-space limit beyond the suite's own
  // Shrinking a failure stops after this many seconds (a hang costs its
  // time limit per try), and hangs are not shrunk at all when false.
  double shrink_seconds = 60;
  bool shrink_hangs = true;
  int max_shrinks = 1000;      // RapidCheck's shrink tries per failure
  int max_case_shrinks = 400;  // attncheck's case shrinker's tries
  int max_size = 100;          // RapidCheck's size: the generated cases grow up to it
  int max_discard_ratio = 10;  // RapidCheck's discards per accepted case
  bool shrink = true;          // false: report the first failing case as it was generated
  // The backward entry point of the implementation under test (the
  // backward properties need it; null: they are the checker's error).
  const attncheck_backward_impl* backward = nullptr;
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
  std::string not_minimal;  // why c may not be minimal (shrinking off, cut short), or ""
};

// Cases checked and cases declined, by layout class, by "axes dtype", and the reasons.
// A tensor counts as "misaligned" only when its data pointer really is
// (Case::layout_classes).
struct Coverage {
  std::map<std::string, std::pair<int, int>> by_class;
  std::map<std::string, std::pair<int, int>> by_axes_dtype;
  std::map<std::string, int> decline_reasons;
  // Per dtype, over passing cases: max error / bound, and (semantics) max
  // error / the error of the contract's literal evaluation (error_model.h).
  std::map<DType, double> worst_bound_ratio;
  std::map<DType, double> worst_literal_ratio;
};

// One property run: (implementation, property, axes, dtype) over generated
// cases. A run is verified only when it checked at least one case and no
// case failed.
struct PropertyOutcome {
  Property property = Property::semantics;
  Axes axes = Axes::spatial;
  DType dtype = DType::f32;
  int checked = 0;   // cases the property compared outputs (or memory) on, and held
  int declined = 0;  // cases where the implementation declined a call
  int vacuous = 0;   // cases with nothing to compare
  int cases = 0;     // calls of the property, shrinking included
  int cases_before_failure = 0;
  std::map<std::string, int> decline_reasons;
  std::optional<Failure> failure;
  std::string error;  // the checker could not run (an internal error): exit 2, never a pass
  bool hung = false;  // the failure is a hang
  Precision contract = Precision::fused;  // the contract the run was checked under (contract_for)
  double worst_bound_ratio = 0;     // max error / bound over its passing cases
  double worst_literal_ratio = -1;  // max error / the literal evaluation's (semantics), -1: not measured
  std::string skipped;  // the run did not happen, and why (no device for it; the case is not the property's)
  double seconds = 0;
  // Why the run verified nothing, or "" when it checked a case (or failed).
  std::string not_verified() const;
};

PropertyOutcome run_property(const attncheck_impl& impl, Property p, Axes axes, DType dtype,
                             const SuiteOptions& opt, Coverage* coverage = nullptr);

// One case, one property: the replay path.
PropertyOutcome run_case(const attncheck_impl& impl, Property p, const Case& c, const SuiteOptions& opt);


}  // namespace attncheck
