// The `cpu` backward entry point: validates the call, builds the
// BackwardPlan, and runs its three parallel loops (pack, query tiles, key
// tiles) on the forward's thread pool and instruction set.
#include <attncheck/validate.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backward_plan.h"
#include "cpu_attention.h"
#include "settings.h"

namespace attncheck::cpu {
namespace {

constexpr int64_t kMaxHeadDim = int64_t{1} << 24;
// The packed copy of the inputs is about their size; above this the call is
// declined rather than attempted.
constexpr double kMaxArenaBytes = double(int64_t{1} << 40);

const BackwardKernels& backward_for(const ArchKernels& forward) {
  for (const BackwardKernels* k :
       {&backward_kernels_avx512(), &backward_kernels_avx2(), &backward_kernels_sse2()})
    if (std::strcmp(k->name, forward.name) == 0) return *k;
  return backward_kernels_sse2();
}

// Key tile: 64 keys (the K^T, V^T and K tiles, 3 x 64 x D floats, stay in L2
// up to D = 512), fewer for short sequences. A function of the shape only:
// the row statistics' online softmax depends on it.
int64_t key_tile(int64_t Sk) {
  const int64_t a = BackwardPlan::kKeyAlign;
  return std::min<int64_t>(64, (Sk + a - 1) / a * a);
}

// Query tile: 96 rows (a multiple of the micro-tile's 6), fewer for short
// sequences. No result depends on it.
int64_t query_tile(int64_t Sq) {
  const int64_t r = BackwardPlan::kRows;
  return std::min<int64_t>(96, (Sq + r - 1) / r * r);
}

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

// Memory kept between calls (calls hold the settings lock, one at a time):
// the arena is about the size of the inputs, and touching fresh pages each
// call costs more than the packing itself.
struct Buffers {
  std::unique_ptr<void, FreeDeleter> arena;
  size_t arena_size = 0;
  std::vector<std::unique_ptr<void, FreeDeleter>> scratch;
  size_t scratch_size = 0;

  bool reserve(size_t arena_bytes, int workers, size_t scratch_bytes) {
    arena_bytes = (arena_bytes + 63) / 64 * 64;
    scratch_bytes = (scratch_bytes + 63) / 64 * 64;
    if (arena_bytes > arena_size) {
      arena.reset(std::aligned_alloc(64, arena_bytes));
      arena_size = arena ? arena_bytes : 0;
      if (!arena) return false;
    }
    if (scratch_bytes > scratch_size) scratch.clear(), scratch_size = scratch_bytes;
    while (static_cast<int>(scratch.size()) < workers) {
      scratch.emplace_back(std::aligned_alloc(64, scratch_size));
      if (!scratch.back()) {
        scratch.pop_back();
        return false;
      }
    }
    return true;
  }
};

Buffers& buffers() {
  static Buffers b;
  return b;
}

attncheck_status make_plan(const attncheck_attention_backward* call, BackwardPlan& p,
                           std::string& error) {
  BackwardCallShape bs;
  if (!validate_backward_call(call, &bs, &error)) return ATTNCHECK_FAILED;
  const CallShape& s = bs.forward;
  if (call->q->device.device_type != kDLCPU) {
    error = "cpu: tensors must be on the CPU (kDLCPU)";
    return ATTNCHECK_UNSUPPORTED;
  }
  if (s.D > kMaxHeadDim || s.Dv > kMaxHeadDim) {
    error = "cpu: head dimension above 2^24 (tile index arithmetic would overflow)";
    return ATTNCHECK_UNSUPPORTED;
  }
  const std::string dt = dtype_name(s.dtype);
  p.storage = dt == "f32"    ? Storage::f32
              : dt == "f64"  ? Storage::f64
              : dt == "bf16" ? Storage::bf16
                             : Storage::f16;
  p.heads = s.heads, p.D = s.D, p.Dv = s.Dv;
  p.groups = s.groups, p.Sq = s.Sq, p.Sk = s.Sk;
  p.scale = call->scale;
  p.q = make_view(call->q, s.strides[0], s);
  p.k = make_view(call->k, s.strides[1], s);
  p.v = make_view(call->v, s.strides[2], s);
  p.out = make_view(call->out, s.strides[3], s);
  p.dout = make_view(call->dout, bs.grad_strides[kDout], s);
  p.dq = make_view(call->dq, bs.grad_strides[kDq], s);
  p.dk = make_view(call->dk, bs.grad_strides[kDk], s);
  p.dv = make_view(call->dv, bs.grad_strides[kDv], s);
  p.BQ = query_tile(s.Sq);
  p.BK = key_tile(s.Sk);
  p.q_tiles = (s.Sq + p.BQ - 1) / p.BQ;
  p.k_tiles = (s.Sk + p.BK - 1) / p.BK;
  // In doubles, with every padding: the packed operands and the statistics.
  const double per_gh =
      (s.Sq + 8.0) * (s.D + s.Dv + 16.0) + (s.Sk + 16.0) * (3.0 * s.D + s.Dv + 64.0);
  if (static_cast<double>(s.groups) * s.heads * per_gh * 8 > kMaxArenaBytes) {
    error = "cpu: the packed operands would take above 1 TiB";
    return ATTNCHECK_UNSUPPORTED;
  }
  return ATTNCHECK_OK;
}

}  // namespace

attncheck_status backward(const attncheck_attention_backward* call, char* message,
                          size_t message_size) {
  CallSettings settings = lock_call_settings();
  const BackwardKernels& K = backward_for(*settings.kernels);
  BackwardPlan p;
  std::string error;
  if (const attncheck_status st = make_plan(call, p, error); st != ATTNCHECK_OK) {
    write_message(message, message_size, error);
    return st;
  }
  // Small calls are not worth waking threads for (the result is the same),
  // unless set_threads asked for them (the determinism tests do).
  const double flops = 16.0 * p.gh() * p.Sq * p.Sk * static_cast<double>(std::max(p.D, p.Dv));
  const int threads = flops < 4e6 && !settings.threads_set ? 1 : settings.threads;
  // float64 computes in double; the others in float, falling back to double
  // for the whole call when a logit or a row sum is not finite in float.
  for (bool f32 : {true, false}) {
    if (f32 && p.storage == Storage::f64) continue;
    const int workers =
        static_cast<int>(std::min<int64_t>(threads, p.gh() * std::max(p.q_tiles, p.k_tiles)));
    Buffers& b = buffers();
    if (!b.reserve(K.arena_bytes(p, f32), workers, K.workspace_bytes(p, f32))) {
      write_message(message, message_size, "cpu: out of memory for the backward's packed operands");
      return ATTNCHECK_FAILED;
    }
    void* arena = b.arena.get();
    settings.pool->run(workers, p.gh(),
                       [&](int64_t gh, int w) { K.pack(p, f32, gh, arena, b.scratch[w].get()); });
    std::atomic<bool> finite{true};
    settings.pool->run(workers, p.gh() * p.q_tiles, [&](int64_t item, int w) {
      if (!finite.load(std::memory_order_relaxed)) return;
      if (!K.query_item(p, f32, item, arena, b.scratch[w].get())) finite.store(false);
    });
    if (!finite.load()) continue;
    settings.pool->run(workers, p.gh() * p.k_tiles, [&](int64_t item, int w) {
      K.key_item(p, f32, item, arena, b.scratch[w].get());
    });
    return ATTNCHECK_OK;
  }
  write_message(
      message, message_size,
      "cpu: logits are not finite even in double (non-finite input, or |scale * q.k| above 1e308)");
  return ATTNCHECK_UNSUPPORTED;
}

}  // namespace attncheck::cpu
