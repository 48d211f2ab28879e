// The reports room: what a verify found, as text (the table, coverage,
// failures, what was not verified), JSON and JUnit, and the replay lines,
// fed by one result structure (VerifyRun). `attncheck verify`, the
// GoogleTest integration and the Python package all print through here, so
// their reports cannot drift apart.
#pragma once

#include <attncheck/suite.h>

#include <ostream>
#include <string>
#include <vector>

namespace attncheck {

// One property run (implementation, property, axes family, dtype) and the
// replay line of its failure.
struct VerifyRun {
  std::string impl;
  PropertyOutcome outcome;
  std::string replay;  // the replay line of its failure, or ""
};

// The exit statuses (the spec's command-line contract).
enum ExitStatus {
  kExitPassed = 0,       // every requested run checked at least one case and held
  kExitFailed = 1,       // a property failed (wins over everything else)
  kExitError = 2,        // could not run: usage, a library that does not load, a checker error
  kExitNotVerified = 3,  // nothing failed, but some requested run checked no case
};
// PASSED, FAILED, ERROR, NOT VERIFIED.
const char* exit_word(int status);

// A run's result word in the table: ok, FAILED, ERROR, NOT VERIFIED.
const char* run_result(const PropertyOutcome& o);
// "semantics spatial f32".
std::string run_name(const PropertyOutcome& o);

struct Totals {
  int runs = 0, failed = 0, errors = 0, not_verified = 0, checked = 0, declined = 0;
  int exit_status() const;
  const char* word() const { return exit_word(exit_status()); }
};
// Over the runs of `impl` (all runs when impl is "").
Totals totals(const std::vector<VerifyRun>& runs, const std::string& impl = "");
// "24 property runs, 2 failed; 640 cases checked, 80 calls declined"
std::string totals_text(const Totals& t);

// The text report's parts, for the runs of one implementation.
void print_table(std::ostream& out, const std::string& impl, const std::vector<VerifyRun>& runs);
void print_coverage(std::ostream& out, const Coverage& cov, Precision precision);
// The runs not verified or not run, one line per reason, and the options
// that verify only what the implementation serves (of those requested).
void print_unverified(std::ostream& out, const std::string& impl, const std::vector<VerifyRun>& runs,
                      const std::vector<Axes>& axes, const std::vector<DType>& dtypes);
// A failure: what failed, the first differing element, the diagnosis, the
// minimal case with every layout in CuTe notation, and the replay line.
void print_failure(std::ostream& out, const PropertyOutcome& r, const std::string& replay);

// The machine-readable reports; false when the file cannot be written.
struct ReportHeader {
  std::string target;
  uint64_t seed = 1;
  Precision precision = Precision::fused;
};
bool write_json(const std::string& path, const ReportHeader& h, const std::vector<VerifyRun>& runs,
                const Totals& t, double secs);
bool write_junit(const std::string& path, const std::vector<VerifyRun>& runs, const Totals& t, double secs);

// Replay lines: the options a replay must repeat.
struct ReplayOptions {
  bool strict = false;
  bool no_declines = false;
  bool fork = true;
  Precision precision = Precision::fused;
};
// `attncheck verify`'s (and `python3 -m attncheck verify`'s): command, then
// " --property P", the options, " --case 'TEXT'"; a command with "{case}"
// in it is the whole line, the quoted case there (a pytest item).
std::string verify_replay(const std::string& command, Property p, const Case& c, const ReplayOptions& o);
// The GoogleTest integration's: ATTNCHECK_CASE=... binary --gtest_filter=...
std::string gtest_replay(const std::string& binary, const std::string& filter, const Case& c,
                         const ReplayOptions& o);

std::string shell_quote(const std::string& s);

}  // namespace attncheck
