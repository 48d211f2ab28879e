// `attncheck verify`: every property, on every implementation of a target,
// over generated cases; the minimal counterexample, its diagnosis and a
// replay line for each failure; text, JSON and JUnit reports.
#pragma once

#include <attncheck/case.h>
#include <attncheck/properties.h>
#include <attncheck/report.h>
#include <attncheck/suite.h>

#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace attncheck {

struct VerifyOptions {
  std::string target;               // plugin path or builtin:NAME
  std::vector<std::string> impls;   // --impl (all when empty)
  int cases = 30;                   // per property, axes family and dtype
  uint64_t seed = 1;
  std::vector<Axes> axes{Axes::spatial, Axes::temporal, Axes::spatiotemporal};
  std::vector<DType> dtypes{DType::f32};
  // Which properties: the forward's and the backward's (backward.*); the
  // passes below choose among them.
  std::vector<Property> properties = every_property();
  bool forward = true;         // the forward pass's properties
  bool backward = true;        // the backward pass's, where the implementation has a backward
  bool backward_asked = false; // --pass backward: an implementation without one is not verified
  std::optional<std::string> case_text;  // --case: replay one case
  std::string json, junit;
  bool strict = false;
  bool fork = true;
  bool no_declines = false;  // a declined call is a failure
  Precision precision = Precision::fused;  // the precision contract of f16 and bf16 runs
  bool brief = false;        // one line per implementation; the full table only where not all held
  bool progress = false;     // a progress line on stderr
  double timeout_base = 10;  // a call's time limit: this many seconds plus 10 s per GFLOP
  double memory_limit_gib = 8;  // forked calls' address-space limit (GiB beyond the suite's)
  int max_shrinks = 1000;      // cap on RapidCheck's shrink tries per failure
  int max_case_shrinks = 400;  // cap on attncheck's case shrinker's tries
  // An in-process target instead of a library (the Python package): these
  // implementations are verified, `target` names where they come from in the
  // report, and a replay line starts with `replay_command` (the command that
  // runs this target) instead of "attncheck verify TARGET --impl NAME"; a
  // replay_command with "{case}" in it is the whole line, the quoted case there.
  std::vector<attncheck_impl> given;
  std::vector<attncheck_backward_impl> given_backward;  // their backward entry points, by name
  std::string replay_command;
  // Asked before each property run; true stops verify (exit status 2,
  // "interrupted"): the Python package's Ctrl-C.
  std::function<bool()> interrupted;
};



// Runs verify; returns the exit status. The runs, when asked for, go to *runs.
int run_verify(const VerifyOptions& opt, std::ostream& out, std::ostream& err,
               std::vector<VerifyRun>* runs = nullptr);

}  // namespace attncheck
