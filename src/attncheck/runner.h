// Calling an implementation on a guarded case: in a forked child by default,
// so that whatever the implementation does (fault, hang, throw, exit, abort,
// close every descriptor, flood its output, exhaust memory) becomes a
// finding about the case instead of reaching the suite's own process.
#pragma once

#include <attncheck/guarded.h>

#include <stdexcept>
#include <string>

namespace attncheck {

// Thrown by an implementation's in-process wrapper (the Python package's
// bridge) to say what the implementation did wrong in its own words ("raised
// ValueError: ..."): the finding is what() as it is, not "threw <type>".
struct ImplementationError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Called around the fork of each forked call, in the order of
// pthread_atfork (before in the parent; then parent, or child in the new
// process first thing). An interpreter in the process (Python) needs these:
// its locks and thread state must be made valid in the child. Null: none.
struct ForkHooks {
  void (*before)() = nullptr;
  void (*parent)() = nullptr;
  void (*child)() = nullptr;
};
void set_fork_hooks(const ForkHooks& hooks);

struct RunOptions {
  // false: call in this process (trusted code: a fault, exit or abort then
  // ends the suite; an exception and a bad status are still findings).
  bool fork = true;
  double timeout_base = 10;  // seconds, plus timeout_per_gflop per GFLOP of the case
  double timeout_per_gflop = 10;
  // Forked calls: the child may map this many GiB beyond what it has at the
  // fork (RLIMIT_AS); 0 = no limit.
  double memory_limit_gib = 8;
  // Forked calls: what the call prints to stdout and stderr is captured
  // (never interleaved into the report), up to this many bytes.
  size_t output_limit = size_t{16} << 20;
};

// The message buffer an implementation gets (message_size); a guard page
// follows it, so a write past its end is a finding.
constexpr size_t kMessageSize = 1000;

struct RunResult {
  int status = ATTNCHECK_FAILED;  // as returned: may be outside attncheck_status (a finding)
  std::string message;  // the implementation's message (declined or failed)
  std::string finding;  // what the implementation did wrong: a fault, a hang, a throw, ...; "" if none
  std::string output;   // forked calls: the last lines the call printed (stdout and stderr), if any
  std::string error;    // the checker could not make the call (fork, mmap failed): not a verdict
  bool hang = false;    // the finding is a hang (the call was killed at its time limit)
  bool ok() const { return error.empty() && finding.empty() && status == ATTNCHECK_OK; }
};

// Calls impl.attention and returns its status as the int it is: a status
// outside the enum (say 42) must be readable, to be reported, not undefined
// behaviour in the caller (UBSan rejects such an enum load).
int call_attention(const attncheck_impl& impl, const attncheck_attention* call, char* message, size_t size);

// The time limit of one call of case c.
double time_limit(const Case& c, const RunOptions& opt);

// Calls impl on g (inputs write-protected during the call), then checks the
// memory around the views. out's contents are left for the caller to read.
RunResult run_call(const attncheck_impl& impl, GuardedCase& g, const RunOptions& opt);

// The same for the backward entry point (ABI's optional backward table).
int call_backward(const attncheck_backward_impl& impl, const attncheck_attention_backward* call, char* message,
                  size_t size);
// Calls impl's backward on a backward case g whose out holds the forward's
// output and is frozen (GuardedCase::freeze_out): inputs, out and dout
// write-protected during the call, then the memory around dq, dk and dv
// checked. CPU implementations only (a device one is the checker's error).
RunResult run_backward_call(const attncheck_backward_impl& impl, GuardedCase& g, const RunOptions& opt);

}  // namespace attncheck
