#include <attncheck/runner.h>

#ifdef ATTNCHECK_HAVE_CUDA
#include "cuda/device_harness.h"
#endif

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

namespace attncheck {

namespace {

struct ChildReport {
  int32_t status;
  int32_t fault;  // 1 when the message describes a fault
  char message[1000];
};

// The child's fault handler needs the case and the pipe.
GuardedCase* g_case = nullptr;
int g_pipe = -1;

void report_and_exit(const ChildReport& r, int code) {
  ssize_t n = write(g_pipe, &r, sizeof r);
  (void)n;
  _exit(code);
}

void on_fault(int sig, siginfo_t* info, void* ctx) {
  ChildReport r{};
  r.status = ATTNCHECK_FAILED;
  r.fault = 1;
  bool write_access = false;
#if defined(__x86_64__)
  write_access = (static_cast<ucontext_t*>(ctx)->uc_mcontext.gregs[REG_ERR] & 2) != 0;
#else
  (void)ctx;
#endif
  // describe_address allocates; the child is about to exit and runs nothing
  // else, so a deadlock on the allocator is the only risk, and then the
  // parent reports a hang at the same case.
  std::string what = g_case ? g_case->describe_address(info->si_addr, write_access) : "";
  if (what.empty()) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s at address %p (outside every tensor's mapping)",
                  sig == SIGBUS ? "bus error" : "segmentation fault", info->si_addr);
    what = buf;
  } else {
    what = "fault: " + what;
  }
  std::strncpy(r.message, what.c_str(), sizeof r.message - 1);
  report_and_exit(r, 3);
}

// A decline or an error must not scribble either.
RunResult finish(GuardedCase& g, RunResult r) {
  if (r.finding.empty()) r.finding = g.check_memory();
  return r;
}

}  // namespace

RunResult run_call(const attncheck_impl& impl, GuardedCase& g, const RunOptions& opt) {
  RunResult result;
  if (impl.device_type == kDLCUDA) {
    // Tensors in device memory, called in-process: src/check/cuda/.
#ifdef ATTNCHECK_HAVE_CUDA
    result = cuda_harness::run_call(impl, g, opt);
    return result.finding.empty() ? finish(g, result) : result;
#else
    result.finding = "no CUDA device is present (this build of attncheck has no CUDA support)";
    return result;
#endif
  }
  if (!opt.fork) {
    char message[1000] = "";
    g.protect_inputs(true);
    result.status = impl.attention(g.call(), message, sizeof message);
    g.protect_inputs(false);
    message[sizeof message - 1] = '\0';
    result.message = message;
    return finish(g, result);
  }
  int fds[2];
  if (pipe(fds) != 0) {
    result.finding = "internal: pipe failed";
    return result;
  }
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]), close(fds[1]);
    result.finding = "internal: fork failed";
    return result;
  }
  if (pid == 0) {
    close(fds[0]);
    g_case = &g;
    g_pipe = fds[1];
    static char altstack[1 << 16];
    stack_t ss{};
    ss.ss_sp = altstack;
    ss.ss_size = sizeof altstack;
    sigaltstack(&ss, nullptr);
    struct sigaction sa {};
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, nullptr);
    sigaction(SIGBUS, &sa, nullptr);
    g.protect_inputs(true);
    ChildReport r{};
    r.status = impl.attention(g.call(), r.message, sizeof r.message);
    r.message[sizeof r.message - 1] = '\0';
    report_and_exit(r, 0);
  }
  close(fds[1]);
  const double limit = opt.timeout_base + opt.timeout_per_gflop * g.spec().flops() * 1e-9;
  const auto start = std::chrono::steady_clock::now();
  ChildReport r{};
  size_t got = 0;
  bool hang = false;
  while (got < sizeof r) {
    const double left = limit - std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (left <= 0) {
      hang = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(left * 1000) + 1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) continue;
    const ssize_t n = read(fds[0], reinterpret_cast<char*>(&r) + got, sizeof r - got);
    if (n <= 0) break;  // the child closed the pipe without a full report
    got += static_cast<size_t>(n);
  }
  close(fds[0]);
  if (hang) kill(pid, SIGKILL);
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (hang) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "hang: no return within %.1f s (killed)", limit);
    result.finding = buf;
    return result;
  }
  if (got < sizeof r) {
    if (WIFSIGNALED(wstatus))
      result.finding = "crashed: killed by signal " + std::to_string(WTERMSIG(wstatus)) + " (" +
                       strsignal(WTERMSIG(wstatus)) + ")";
    else
      result.finding = "exited with status " + std::to_string(WEXITSTATUS(wstatus)) +
                       " during the call instead of returning";
    return result;
  }
  result.status = static_cast<attncheck_status>(r.status);
  result.message = r.message;
  if (r.fault) {
    result.finding = r.message;
    result.message.clear();
    return result;
  }
  if (r.status != ATTNCHECK_OK && r.status != ATTNCHECK_UNSUPPORTED && r.status != ATTNCHECK_FAILED)
    result.finding = "returned status " + std::to_string(r.status) + ", not one of the ABI's";
  return finish(g, result);
}

}  // namespace attncheck
