// The arch-independent description of one backward call to the `cpu`
// kernel: the views of the eight tensors, the tiles, and where each
// (group, head)'s packed operands lie in the call's arena. Built once per
// call by backward.cpp, read by every work item of backward_kernel.h.
#pragma once

#include <cstddef>
#include <cstdint>

#include "plan.h"

namespace attncheck::cpu {

struct BackwardPlan {
  Storage storage = Storage::f32;
  int64_t heads = 1, D = 1, Dv = 1;
  int64_t groups = 1, Sq = 1, Sk = 1;
  double scale = 1.0;
  View q, k, v, out, dout, dq, dk, dv;

  // Tiles: BQ queries (a multiple of kRows) by BK keys (a multiple of
  // kKeyAlign). Every gradient element is one FMA chain over all queries (dk,
  // dv) or all keys (dq), so no result depends on the tiles except the row
  // statistics, whose online softmax runs BK keys at a time: BK is a
  // function of the shape only.
  static constexpr int64_t kRows = 6;       // micro-tile rows (every arch)
  static constexpr int64_t kKeyAlign = 16;  // a whole number of vectors on every arch
  int64_t BQ = kRows, BK = kKeyAlign;
  int64_t q_tiles = 1, k_tiles = 1;
  int64_t gh() const { return groups * heads; }
};

// Per-arch entry points (backward_<arch>.cpp), computing in float (f32 ==
// true) or double. The call runs three parallel loops: `pack` for every
// (group, head) gh; then `query_item` for every (gh, query tile): row
// statistics, the row term and dq; then `key_item` for every (gh, key tile):
// dk and dv. Each gradient element is written by exactly one item.
// `arena_bytes` is the whole call's packed data, `workspace_bytes` one
// thread's scratch (both 64-byte aligned by the caller).
struct BackwardKernels {
  const char* name;
  size_t (*arena_bytes)(const BackwardPlan& plan, bool f32);
  size_t (*workspace_bytes)(const BackwardPlan& plan, bool f32);
  void (*pack)(const BackwardPlan& plan, bool f32, int64_t gh, void* arena, void* workspace);
  // False when a logit or a row sum is not finite in the compute type (the
  // caller then recomputes the call in double).
  bool (*query_item)(const BackwardPlan& plan, bool f32, int64_t item, void* arena,
                     void* workspace);
  void (*key_item)(const BackwardPlan& plan, bool f32, int64_t item, void* arena, void* workspace);
};

const BackwardKernels& backward_kernels_avx512();
const BackwardKernels& backward_kernels_avx2();
const BackwardKernels& backward_kernels_sse2();

}  // namespace attncheck::cpu
