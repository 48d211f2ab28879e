// The `cpu` entry point: validates the call, builds the Plan (strides per
// axes family, tile sizes), picks the instruction set, and runs the work
// items on the thread pool.
#include "cpu_attention.h"

#include "plan.h"
#include "settings.h"
#include "thread_pool.h"

#include <attncheck/validate.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

namespace attncheck::cpu {
namespace {

// Largest workspace one thread may need; more is declined. The tiles shrink
// to MR rows and one vector of keys before this is reached, so only a head
// dimension in the millions gets here.
constexpr int64_t kMaxWorkspaceBytes = int64_t{1} << 30;
// Head dimensions above this are declined so that tile-size products stay far
// from int64 overflow.
constexpr int64_t kMaxHeadDim = int64_t{1} << 24;

struct Settings {
  std::mutex mutex;  // one call at a time, and settings changes between calls
  int threads = 0;
  const ArchKernels* forced = nullptr;
  ThreadPool pool;
};

Settings& settings() {
  static Settings s;
  return s;
}

// xsimd 8.1's detector reads CPUID only; GCC's also checks that the OS saves
// the wide registers (XCR0), which an AVX-512 CPU under an old kernel or a
// restricted VM may not.
bool supports(const ArchKernels& k) {
  __builtin_cpu_init();
  if (&k == &kernels_avx512())
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
           __builtin_cpu_supports("fma");
  if (&k == &kernels_avx2()) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return true;  // sse2 is part of x86-64
}

const ArchKernels* by_name(const char* name) {
  for (const ArchKernels* k : {&kernels_avx512(), &kernels_avx2(), &kernels_sse2()})
    if (std::strcmp(name, k->name) == 0) return k;
  return nullptr;
}

const ArchKernels& best() {
  static const ArchKernels* chosen = [] {
    if (const char* env = std::getenv("ATTNCHECK_CPU_ARCH"); env && *env) {
      const ArchKernels* k = by_name(env);
      if (k && supports(*k)) return k;
    }
    for (const ArchKernels* k : {&kernels_avx512(), &kernels_avx2()})
      if (supports(*k)) return k;
    return &kernels_sse2();
  }();
  return *chosen;
}

int default_threads() {
  if (const char* env = std::getenv("ATTNCHECK_CPU_THREADS"); env && *env) {
    const int n = std::atoi(env);
    if (n >= 1) return n;
  }
  const unsigned hc = std::thread::hardware_concurrency();
  return hc >= 1 ? static_cast<int>(hc) : 1;
}

IndexMap map(std::initializer_list<std::pair<int64_t, int64_t>> dims) {
  IndexMap m;
  for (auto [size, stride] : dims) {
    m.size[m.n] = size;
    m.stride[m.n] = stride;
    ++m.n;
  }
  return m;
}

}  // namespace

View make_view(const DLTensor* t, const std::array<int64_t, 5>& st, const CallShape& s) {
  const int64_t T = t->shape[2], H = t->shape[3], W = t->shape[4];
  View v;
  v.base = static_cast<char*>(t->data) + t->byte_offset;
  v.channel_stride = st[1];
  switch (s.axes) {
    case ATTNCHECK_SPATIAL:
      v.group = map({{s.B, st[0]}, {T, st[2]}});
      v.position = map({{H, st[3]}, {W, st[4]}});
      break;
    case ATTNCHECK_TEMPORAL:
      v.group = map({{s.B, st[0]}, {H, st[3]}, {W, st[4]}});
      v.position = map({{T, st[2]}});
      break;
    case ATTNCHECK_SPATIOTEMPORAL:
      v.group = map({{s.B, st[0]}});
      v.position = map({{T, st[2]}, {H, st[3]}, {W, st[4]}});
      break;
  }
  return v;
}

namespace {

// Builds the view of tensor `which` (0 q, 1 k, 2 v, 3 out) for the axes.
View view_of(const attncheck_attention* call, const CallShape& s, int which) {
  const DLTensor* t = which == 0 ? call->q : which == 1 ? call->k : which == 2 ? call->v : call->out;
  return make_view(t, s.strides[which], s);
}

// Key tile: fixes every output's reduction order, so a function of the shape
// only. Up to 128 keys, with the K and V tiles (BK x (D + Dv)) within
// 256 KiB so that they, the Q and O tiles and the logits share a 1 MiB L2.
int64_t key_tile(const CallShape& s) {
  int64_t bk = 128;
  while (bk > 16 && bk * (s.D + s.Dv) * 4 > (int64_t{1} << 18)) bk /= 2;
  return std::min(bk, s.Sk);
}

// Query tile: amortizes packing K and V (done once per query tile); the Q
// and O tiles (BQ x (D + Dv)) get up to 1.25 MiB, more than L2 at D = 512,
// which measured faster than halving BQ and packing K and V twice as often.
// A multiple of the micro-tile's queries (mr). Any value gives the same result; it is shrunk so every
// thread has a few items.
int64_t query_tile(const CallShape& s, int64_t mr, int threads) {
  int64_t bq = 256;
  while (bq > mr && bq * (s.D + s.Dv) * 4 > (int64_t{5} << 18)) bq /= 2;
  const int64_t per_group = s.groups * s.heads;
  while (bq > 32 && per_group * ((s.Sq + bq - 1) / bq) < 4 * int64_t{threads}) bq /= 2;
  bq = std::max<int64_t>(mr, bq / mr * mr);
  return std::min(bq, (s.Sq + mr - 1) / mr * mr);
}

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

// Validates the call and fills the plan (tiles included) for `threads`
// threads and the given kernels. Returns the status to report when not OK.
attncheck_status make_plan(const attncheck_attention* call, const ArchKernels& K, int threads,
                           Plan& p, std::string& error) {
  CallShape s;
  if (!validate_call(call, &s, &error)) return ATTNCHECK_FAILED;
  if (call->q->device.device_type != kDLCPU) {
    error = "cpu: tensors must be on the CPU (kDLCPU)";
    return ATTNCHECK_UNSUPPORTED;
  }
  if (s.D > kMaxHeadDim || s.Dv > kMaxHeadDim) {
    error = "cpu: head dimension above 2^24 (tile index arithmetic would overflow)";
    return ATTNCHECK_UNSUPPORTED;
  }
  const std::string dt = dtype_name(s.dtype);
  p.storage = dt == "f32" ? Storage::f32 : dt == "f64" ? Storage::f64 : dt == "bf16" ? Storage::bf16 : Storage::f16;
  p.heads = s.heads;
  p.D = s.D;
  p.Dv = s.Dv;
  p.groups = s.groups;
  p.Sq = s.Sq;
  p.Sk = s.Sk;
  p.scale = call->scale;
  p.q = view_of(call, s, 0);
  p.k = view_of(call, s, 1);
  p.v = view_of(call, s, 2);
  p.out = view_of(call, s, 3);
  auto key_major = [](const View& v) {
    const int64_t pos_step = v.position.stride[v.position.n - 1];
    return v.channel_stride <= pos_step;
  };
  p.k_key_major = key_major(p.k);
  p.v_key_major = key_major(p.v);
  p.BK = key_tile(s);
  p.BQ = query_tile(s, K.query_block(), threads);
  p.q_tiles = (p.Sq + p.BQ - 1) / p.BQ;
  if (p.groups > INT64_MAX / p.heads || p.groups * p.heads > INT64_MAX / p.q_tiles) {
    error = "cpu: work item count overflows int64";
    return ATTNCHECK_UNSUPPORTED;
  }
  const bool f32 = p.storage != Storage::f64;
  if (K.workspace_bytes(p, f32) > static_cast<size_t>(kMaxWorkspaceBytes)) {
    error = "cpu: per-thread workspace above 1 GiB (head dimension too large)";
    return ATTNCHECK_UNSUPPORTED;
  }
  return ATTNCHECK_OK;
}

int threads_for(const Plan& p, int configured) {
  // Small calls are not worth waking threads for (the result is the same).
  const double flops = 2.0 * p.groups * p.heads * p.Sq * p.Sk * static_cast<double>(p.D + p.Dv);
  return flops < 2e6 ? 1 : configured;
}

}  // namespace

CallSettings lock_call_settings() {
  std::unique_lock<std::mutex> lock(settings().mutex);
  const ArchKernels& K = settings().forced ? *settings().forced : best();
  const int threads = settings().threads >= 1 ? settings().threads : default_threads();
  return CallSettings{std::move(lock), &K, threads, settings().threads >= 1, &settings().pool};
}

void set_threads(int n) {
  std::lock_guard<std::mutex> lock(settings().mutex);
  settings().threads = n >= 1 ? n : 0;
}

bool set_arch(const char* name) {
  std::lock_guard<std::mutex> lock(settings().mutex);
  if (name == nullptr || *name == '\0') {
    settings().forced = nullptr;
    return true;
  }
  const ArchKernels* k = by_name(name);
  if (k == nullptr || !supports(*k)) return false;
  settings().forced = k;
  return true;
}

const char* arch() {
  std::lock_guard<std::mutex> lock(settings().mutex);
  return settings().forced ? settings().forced->name : best().name;
}

size_t workspace_bytes(const attncheck_attention* call) {
  std::lock_guard<std::mutex> lock(settings().mutex);
  const ArchKernels& K = settings().forced ? *settings().forced : best();
  const int threads = settings().threads >= 1 ? settings().threads : default_threads();
  Plan p;
  std::string error;
  if (make_plan(call, K, threads, p, error) != ATTNCHECK_OK) return 0;
  return K.workspace_bytes(p, p.storage != Storage::f64);
}

attncheck_status attention(const attncheck_attention* call, char* message, size_t message_size) {
  std::lock_guard<std::mutex> lock(settings().mutex);
  const ArchKernels& K = settings().forced ? *settings().forced : best();
  const int configured = settings().threads >= 1 ? settings().threads : default_threads();
  Plan p;
  std::string error;
  // The plan's tiles depend on the thread count only through BQ, which no
  // result depends on; planning with the configured count is enough.
  if (const attncheck_status st = make_plan(call, K, configured, p, error); st != ATTNCHECK_OK) {
    write_message(message, message_size, error);
    return st;
  }
  const int threads = threads_for(p, configured);

  // float64 computes in double; the others in float, falling back to double
  // for the whole call when a logit row is not finite in float.
  for (bool f32 : {true, false}) {
    if (f32 && p.storage == Storage::f64) continue;
    const size_t bytes = K.workspace_bytes(p, f32);
    if (bytes > static_cast<size_t>(kMaxWorkspaceBytes)) {
      write_message(message, message_size, "cpu: per-thread workspace above 1 GiB (head dimension too large)");
      return ATTNCHECK_UNSUPPORTED;
    }
    const int workers = static_cast<int>(std::min<int64_t>(threads, p.items()));
    std::vector<std::unique_ptr<void, FreeDeleter>> ws;
    for (int w = 0; w < workers; ++w) {
      void* mem = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
      if (mem == nullptr) {
        write_message(message, message_size, "cpu: out of memory for the workspace");
        return ATTNCHECK_FAILED;
      }
      ws.emplace_back(mem);
    }
    std::atomic<bool> finite{true};
    settings().pool.run(workers, p.items(), [&](int64_t item, int worker) {
      if (!finite.load(std::memory_order_relaxed)) return;
      if (!K.run_item(p, f32, item, ws[worker].get())) finite.store(false);
    });
    if (finite.load()) return ATTNCHECK_OK;
    if (!f32) break;
  }
  write_message(message, message_size,
                "cpu: logits are not finite even in double (non-finite input, or |scale * q.k| above 1e308)");
  return ATTNCHECK_UNSUPPORTED;
}

}  // namespace attncheck::cpu
