#include "property_support.h"

#include <cstdio>
#include <sstream>

namespace attncheck {

uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

// Turns a run that did not produce an output into a verdict, or returns
// false when the output is there to check.
bool unusable(const RunResult& run, Verdict& v, const CheckOptions& opt) {
  if (!run.error.empty()) {
    v.kind = Verdict::error;
    v.summary = "the checker could not make the call: " + run.error;
    return true;
  }
  if (!run.finding.empty()) {
    v.kind = Verdict::fail;
    v.summary = run.finding;
    v.hang = run.hang;
    // What the call printed, after the finding (never into the report's flow).
    if (!run.output.empty()) {
      std::istringstream lines(run.output);
      std::string line;
      std::getline(lines, line);
      v.details.push_back("the call " + line);
      while (std::getline(lines, line)) v.details.push_back("| " + line);
    }
    return true;
  }
  if (run.status == ATTNCHECK_UNSUPPORTED) {
    const std::string why = run.message.empty() ? "declined" : run.message;
    if (opt.no_declines) {
      v.kind = Verdict::fail;
      v.summary = "declined a valid call (--no-declines): " + why;
      return true;
    }
    v.kind = Verdict::declined;
    v.summary = why;
    return true;
  }
  if (run.status == ATTNCHECK_FAILED) {
    v.kind = Verdict::fail;
    v.summary = "returned ATTNCHECK_FAILED on a valid call: " + run.message;
    return true;
  }
  return false;
}

std::string num(long double x) {
  char b[64];
  std::snprintf(b, sizeof b, "%.9Lg", x);
  return b;
}

std::array<int64_t, 5> flat_index(int64_t flat, const std::vector<int64_t>& shape) {
  std::array<int64_t, 5> at{};
  for (int d = 4; d >= 0; --d) at[d] = flat % shape[d], flat /= shape[d];
  return at;
}

}  // namespace attncheck
