// Implementations that misbehave as processes, not as kernels: each must end
// in a finding that names what happened (or, where what it does is no
// fault of the result, in a verdict unharmed by it), and none may reach
// verify's own process. properties/CMakeLists.txt pins the exit status and
// the text for each (the `contained.*` tests).
#include "../mutants/skeleton.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace {

using mutant::Bug;

attncheck_status correct(const attncheck_attention* call, char* message, size_t size) {
  return mutant::attention<Bug::none>(call, message, size);
}

attncheck_status throws(const attncheck_attention*, char*, size_t) {
  throw std::runtime_error("kernel exploded");
}

attncheck_status throws_int(const attncheck_attention*, char*, size_t) { throw 42; }

attncheck_status exits(const attncheck_attention*, char*, size_t) { std::exit(3); }

attncheck_status underscore_exits(const attncheck_attention*, char*, size_t) { _exit(0); }

attncheck_status aborts(const attncheck_attention*, char*, size_t) { std::abort(); }

// Closes every descriptor it has (the report's way home, if it had one),
// then computes the right answer: the verdict must be the answer's.
attncheck_status closes_fds(const attncheck_attention* call, char* message, size_t size) {
  rlimit r{};
  getrlimit(RLIMIT_NOFILE, &r);
  const long n = r.rlim_cur == RLIM_INFINITY || r.rlim_cur > 65536 ? 65536 : static_cast<long>(r.rlim_cur);
  for (long fd = 0; fd < n; ++fd) close(static_cast<int>(fd));
  return correct(call, message, size);
}

void flood() {
  static const char line[] = "noise noise noise noise noise noise noise noise noise noise noise\n";
  for (int i = 0; i < 40000; ++i) {  // ~2.6 MB each to stdout and stderr
    std::fputs(line, stdout);
    std::fputs(line, stderr);
  }
  std::fflush(stdout);
}

// Megabytes on stdout and stderr, then the right answer: none of it may
// reach the report, and the verdict is the answer's.
attncheck_status floods(const attncheck_attention* call, char* message, size_t size) {
  flood();
  return correct(call, message, size);
}

// Megabytes, a last word, then a throw: the finding shows the last lines.
attncheck_status floods_then_throws(const attncheck_attention*, char*, size_t) {
  flood();
  std::fprintf(stderr, "kernel: giving up at tile 7\n");
  std::fflush(stderr);
  throw std::runtime_error("tile 7");
}

attncheck_status bad_status(const attncheck_attention*, char*, size_t) {
  return static_cast<attncheck_status>(42);
}

// Writes its message 64 bytes past message_size.
attncheck_status message_overflow(const attncheck_attention*, char* message, size_t size) {
  std::memset(message, 'x', size + 64);
  return ATTNCHECK_UNSUPPORTED;
}

// Allocates (and touches) memory until the allocator gives up.
attncheck_status eats_memory(const attncheck_attention*, char*, size_t) {
  std::vector<std::vector<char>> hoard;
  for (;;) hoard.emplace_back(size_t{64} << 20, 'x');
}

volatile int g_spin = 1;

attncheck_status hangs(const attncheck_attention*, char*, size_t) {
  while (g_spin) {
  }
  return ATTNCHECK_OK;
}

// Serves compact tensors only: layout_invariance can then check nothing.
attncheck_status compact_only(const attncheck_attention* call, char* message, size_t size) {
  for (const DLTensor* t : {call->q, call->k, call->v, static_cast<const DLTensor*>(call->out)}) {
    bool compact = t->byte_offset == 0;
    if (t->strides) {
      int64_t x = 1;
      for (int d = 4; d >= 0; --d) {
        compact &= t->shape[d] == 1 || t->strides[d] == x;
        x *= t->shape[d];
      }
    }
    if (!compact) {
      std::snprintf(message, size, "compact tensors only");
      return ATTNCHECK_UNSUPPORTED;
    }
  }
  return correct(call, message, size);
}

const attncheck_impl kImpls[] = {
    {"throws", kDLCPU, throws},
    {"throws_int", kDLCPU, throws_int},
    {"exits", kDLCPU, exits},
    {"underscore_exits", kDLCPU, underscore_exits},
    {"aborts", kDLCPU, aborts},
    {"closes_fds", kDLCPU, closes_fds},
    {"floods", kDLCPU, floods},
    {"floods_then_throws", kDLCPU, floods_then_throws},
    {"bad_status", kDLCPU, bad_status},
    {"message_overflow", kDLCPU, message_overflow},
    {"eats_memory", kDLCPU, eats_memory},
    {"hangs", kDLCPU, hangs},
    {"compact_only", kDLCPU, compact_only},
    {"correct", kDLCPU, correct},
    {"on_gpu", kDLCUDA, correct},
};

}  // namespace

extern "C" const attncheck_impl* attncheck_impls(int abi_version, size_t* count) {
  if (abi_version != ATTNCHECK_ABI_VERSION) return nullptr;
  *count = sizeof kImpls / sizeof kImpls[0];
  return kImpls;
}
