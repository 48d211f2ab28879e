#include <attncheck/runner.h>

#include "process.h"

#ifdef ATTNCHECK_HAVE_CUDA
#include "cuda/device_harness.h"
#endif

#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <iostream>
#include <memory>
#include <new>

namespace attncheck {

namespace {

using process::exception_text;
using process::page_size;

// What a forked child leaves for the parent. It lives in a shared page, not
// a pipe: a call that closes every descriptor cannot lose it.
struct ChildReport {
  enum State : int32_t { none = 0, returned = 1, fault = 2, threw = 3 };
  int32_t state;
  int32_t status;
  char text[1500];  // fault, throw: what happened
};

// [guard][one page: the report at its start, the message buffer flush
// against its end][guard]. Shared with a forked child; the guards make a
// message written past message_size a fault.
class CallPage {
 public:
  explicit CallPage(bool shared) {
    static_assert(sizeof(ChildReport) + kMessageSize <= 4096);
    const size_t p = page_size();
    void* m = mmap(nullptr, 3 * p, PROT_READ | PROT_WRITE, (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS,
                   -1, 0);
    if (m == MAP_FAILED) return;
    base_ = static_cast<std::byte*>(m);
    mprotect(base_, p, PROT_NONE);
    mprotect(base_ + 2 * p, p, PROT_NONE);
  }
  ~CallPage() {
    if (base_) munmap(base_, 3 * page_size());
  }
  CallPage(const CallPage&) = delete;
  CallPage& operator=(const CallPage&) = delete;
  bool ok() const { return base_ != nullptr; }
  ChildReport& report() { return *reinterpret_cast<ChildReport*>(base_ + page_size()); }
  char* message() { return reinterpret_cast<char*>(base_ + 2 * page_size() - kMessageSize); }
  bool in_guard(const void* a) const {
    const auto* b = static_cast<const std::byte*>(a);
    const size_t p = page_size();
    return (b >= base_ && b < base_ + p) || (b >= base_ + 2 * p && b < base_ + 3 * p);
  }
  // The message as the implementation left it: at most message_size bytes.
  std::string message_text() { return std::string(message(), strnlen(message(), kMessageSize)); }

 private:
  std::byte* base_ = nullptr;
};

ForkHooks g_fork_hooks;

// The forked child's state, for its signal and terminate handlers.
GuardedCase* g_case = nullptr;
CallPage* g_page = nullptr;
double g_memory_limit_gib = 0;

void put_text(ChildReport& r, const std::string& s) {
  std::strncpy(r.text, s.c_str(), sizeof r.text - 1);
  r.text[sizeof r.text - 1] = '\0';
}

[[noreturn]] void child_exit_threw(const std::string& what) {
  ChildReport& r = g_page->report();
  r.status = ATTNCHECK_FAILED;
  put_text(r, what);
  r.state = ChildReport::threw;
  _exit(0);
}

std::string memory_exceeded(double gib) {
  char b[96];
  std::snprintf(b, sizeof b, "exceeded the memory limit of %g GiB", gib);
  return b;
}

void on_fault(int sig, siginfo_t* info, void* ctx) {
  bool write_access = false;
#if defined(__x86_64__)
  write_access = (static_cast<ucontext_t*>(ctx)->uc_mcontext.gregs[REG_ERR] & 2) != 0;
#else
  (void)ctx;
#endif
  // describe_address allocates; the child is about to exit and runs nothing
  // else, so a deadlock on the allocator is the only risk, and then the
  // parent reports a hang at the same case.
  std::string what;
  if (g_page->in_guard(info->si_addr))
    what = "fault: " + std::string(write_access ? "wrote" : "read") + " past the end of the message buffer (" +
           std::to_string(kMessageSize) + " bytes, as message_size said)";
  else if (g_case && !(what = g_case->describe_address(info->si_addr, write_access)).empty())
    what = "fault: " + what;
  if (what.empty()) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s at address %p (outside every tensor's mapping)",
                  sig == SIGBUS ? "bus error" : "segmentation fault", info->si_addr);
    what = buf;
  }
  ChildReport& r = g_page->report();
  r.status = ATTNCHECK_FAILED;
  put_text(r, what);
  r.state = ChildReport::fault;
  _exit(0);
}

// An exception that reaches a noexcept frame (a C function between the
// throw and our catch) ends in std::terminate: say what it was.
void on_terminate() {
  std::string what = "called std::terminate";
  if (std::current_exception()) {
    try {
      throw;
    } catch (...) {
      what += " (" + exception_text() + ")";
    }
  }
  child_exit_threw(what);
}

// One call of an implementation's entry point (forward or backward) on
// the case's memory, with its message buffer.
using Call = std::function<int(char* message, size_t size)>;

[[noreturn]] void child(const Call& call, GuardedCase& g, CallPage& page, int output_fd, const RunOptions& opt,
                        size_t address_limit) {
  if (g_fork_hooks.child) g_fork_hooks.child();
  g_case = &g;
  g_page = &page;
  g_memory_limit_gib = opt.memory_limit_gib;
  // Its own process group, so that whatever it starts is killed with it;
  // and it dies with verify (a Ctrl-C no longer reaches its group).
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  // Nothing the call prints reaches the report: it goes to the capture file,
  // bounded by RLIMIT_FSIZE (writes past it fail instead of raising SIGXFSZ).
  dup2(output_fd, 1);
  dup2(output_fd, 2);
  close(output_fd);
  signal(SIGXFSZ, SIG_IGN);
  rlimit fsize{opt.output_limit, opt.output_limit};
  setrlimit(RLIMIT_FSIZE, &fsize);
  if (address_limit) {
    rlimit as{address_limit, address_limit};
    setrlimit(RLIMIT_AS, &as);
  }
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
  std::set_terminate(on_terminate);
  // Whatever happens, this process never returns into the suite.
  try {
    g.protect_inputs(true);
    const int s = call(page.message(), kMessageSize);
    ChildReport& r = page.report();
    r.status = s;
    r.state = ChildReport::returned;
    _exit(0);
  } catch (...) {
    std::string what = exception_text();
    if (address_limit && process::is_bad_alloc()) what = memory_exceeded(opt.memory_limit_gib) + " (" + what + ")";
    child_exit_threw(what);
  }
}

void check_status(RunResult& r) {
  if (r.finding.empty() && r.status != ATTNCHECK_OK && r.status != ATTNCHECK_UNSUPPORTED &&
      r.status != ATTNCHECK_FAILED)
    r.finding = "returned status " + std::to_string(r.status) + ", not one of the ABI's (0, 1, 2)";
}

// A decline or an error must not scribble either.
RunResult finish(GuardedCase& g, RunResult r) {
  check_status(r);
  if (r.finding.empty() && r.error.empty()) r.finding = g.check_memory();
  return r;
}

RunResult run_in_process(const Call& call, GuardedCase& g) {
  RunResult result;
  CallPage page(false);
  if (!page.ok()) {
    result.error = "mmap of the message buffer failed";
    return result;
  }
  g.protect_inputs(true);
  try {
    result.status = call(page.message(), kMessageSize);
    result.message = page.message_text();
  } catch (...) {
    result.status = ATTNCHECK_FAILED;
    result.finding = exception_text();
  }
  g.protect_inputs(false);
  return finish(g, result);
}

RunResult run_forked(const Call& call, GuardedCase& g, const RunOptions& opt) {
  RunResult result;
  CallPage page(true);
  if (!page.ok()) {
    result.error = "mmap of the report page failed";
    return result;
  }
  const int output_fd = static_cast<int>(syscall(SYS_memfd_create, "attncheck-call-output", 1u /* CLOEXEC */));
  if (output_fd < 0) {
    result.error = std::string("memfd_create failed: ") + std::strerror(errno);
    return result;
  }
  const size_t address_limit =
      opt.memory_limit_gib > 0 ? process::mapped_bytes() + static_cast<size_t>(opt.memory_limit_gib * (1ull << 30)) : 0;
  // What the suite has buffered must not be written again by the child.
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  if (g_fork_hooks.before) g_fork_hooks.before();
  const pid_t pid = fork();
  if (pid != 0 && g_fork_hooks.parent) g_fork_hooks.parent();
  if (pid < 0) {
    close(output_fd);
    result.error = std::string("fork failed: ") + std::strerror(errno);
    return result;
  }
  if (pid == 0) child(call, g, page, output_fd, opt, address_limit);
  setpgid(pid, pid);  // as the child does: whichever runs first
  const double limit = time_limit(g.spec(), opt);
  int wstatus = 0;
  rusage usage{};
  const bool returned = process::wait_child(pid, limit, &wstatus, &usage);
  if (!returned) {
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);  // in case it had not made its group yet
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
  }
  kill(-pid, SIGKILL);  // anything it started and left running
  if (!returned) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "hang: no return within %.1f s (killed)", limit);
    result.finding = buf;
    result.hang = true;
    result.output = process::output_tail(output_fd);
    close(output_fd);
    return result;
  }
  result.output = process::output_tail(output_fd);
  // Died with its resident memory near the limit, or saying it ran out.
  const bool out_of_memory =
      address_limit && (static_cast<double>(usage.ru_maxrss) * 1024 >= 0.9 * opt.memory_limit_gib * (1ull << 30) ||
                        process::output_says_out_of_memory(output_fd));
  close(output_fd);
  const ChildReport& r = page.report();
  const bool clean_exit = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
  if (r.state == ChildReport::returned && clean_exit) {
    result.status = r.status;
    result.message = page.message_text();
    return finish(g, result);
  }
  if ((r.state == ChildReport::fault || r.state == ChildReport::threw) && clean_exit) {
    result.finding = std::string(r.text, strnlen(r.text, sizeof r.text));
    return result;
  }
  if (WIFSIGNALED(wstatus)) {
    result.finding = "crashed: killed by signal " + std::to_string(WTERMSIG(wstatus)) + " (" +
                     strsignal(WTERMSIG(wstatus)) + ")";
    if (WTERMSIG(wstatus) == SIGABRT) result.finding += ": it called abort()";
  } else {
    result.finding = "exited with status " + std::to_string(WEXITSTATUS(wstatus)) +
                     " during the call instead of returning (exit, _exit or a fatal error of its own)";
  }
  // A sanitizer's allocator reports running out of memory and exits (its
  // operator new does not throw): say which limit it ran into.
  if (out_of_memory)
    result.finding = memory_exceeded(opt.memory_limit_gib) + ": " + result.finding;
  return result;
}

}  // namespace

void set_fork_hooks(const ForkHooks& hooks) { g_fork_hooks = hooks; }

int call_attention(const attncheck_impl& impl, const attncheck_attention* call, char* message, size_t size) {
  // The same ABI (an enum is an int in C); read as int.
  using Raw = int (*)(const attncheck_attention*, char*, size_t);
  return reinterpret_cast<Raw>(reinterpret_cast<void (*)()>(impl.attention))(call, message, size);
}

double time_limit(const Case& c, const RunOptions& opt) {
  return opt.timeout_base + opt.timeout_per_gflop * c.flops() * 1e-9;
}

RunResult run_call(const attncheck_impl& impl, GuardedCase& g, const RunOptions& opt) {
  if (impl.device_type == kDLCUDA) {
    // Tensors in device memory, called in-process: src/check/cuda/.
#ifdef ATTNCHECK_HAVE_CUDA
    RunResult result = cuda_harness::run_call(impl, g, opt);
    return result.finding.empty() && result.error.empty() ? finish(g, result) : result;
#else
    RunResult result;
    result.error = "no CUDA device is present (this build of attncheck has no CUDA support)";
    return result;
#endif
  }
  const Call call = [&](char* message, size_t size) { return call_attention(impl, g.call(), message, size); };
  return opt.fork ? run_forked(call, g, opt) : run_in_process(call, g);
}

int call_backward(const attncheck_backward_impl& impl, const attncheck_attention_backward* call, char* message,
                  size_t size) {
  using Raw = int (*)(const attncheck_attention_backward*, char*, size_t);
  return reinterpret_cast<Raw>(reinterpret_cast<void (*)()>(impl.backward))(call, message, size);
}

RunResult run_backward_call(const attncheck_backward_impl& impl, GuardedCase& g, const RunOptions& opt) {
  if (impl.device_type != kDLCPU) {
    RunResult result;
    result.error = "backward calls on a device are not supported by this build of attncheck (CPU only)";
    return result;
  }
  const Call call = [&](char* message, size_t size) {
    return call_backward(impl, g.backward_call(), message, size);
  };
  return opt.fork ? run_forked(call, g, opt) : run_in_process(call, g);
}

}  // namespace attncheck
