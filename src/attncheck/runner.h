// Calling an implementation on a guarded case: in a forked child by default,
// so that a fault or a hang becomes a finding about the case instead of a
// crash of the suite.
#pragma once

#include <attncheck/guarded.h>

#include <string>

namespace attncheck {

struct RunOptions {
  bool fork = true;          // false: call in this process (trusted code; a fault then crashes)
  double timeout_base = 10;  // seconds, plus timeout_per_gflop per GFLOP of the case
  double timeout_per_gflop = 10;
};

struct RunResult {
  attncheck_status status = ATTNCHECK_FAILED;
  std::string message;  // the implementation's message (declined or failed)
  std::string finding;  // a fault, a hang, a crash, or a memory violation; "" if none
  bool ok() const { return finding.empty() && status == ATTNCHECK_OK; }
};

// Calls impl on g (inputs write-protected during the call), then checks the
// memory around the views. out's contents are left for the caller to read.
RunResult run_call(const attncheck_impl& impl, GuardedCase& g, const RunOptions& opt);

}  // namespace attncheck
