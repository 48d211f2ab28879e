// The `cuda` kernel's parameters and launch: plain data shared by the host
// entry point (attention.cpp, g++) and the kernel (kernel.cu, nvcc).
//
// The schedule, flash-attention style: one thread block per (group, head,
// tile of 64 queries, chunk of value channels). It streams the keys in tiles
// of 64 through shared memory, the head dimension in chunks of 32, and keeps
// a running maximum and normalizer per query (online softmax), so nothing of
// size Sq x Sk is ever stored. Tiles are gathered through the caller's
// strides (the unit-stride index walked fastest, so reads coalesce); every
// sum runs in a fixed order that depends on the logical indices only, so the
// result is bitwise the same in every layout and no atomics are used.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace attncheck::cuda {

enum class Elem : int { f32 = 0, f16 = 1, bf16 = 2 };

// One tensor as the kernel sees it: element (b, c, t, h, w) is
// base[b*s[0] + c*s[1] + t*s[2] + h*s[3] + w*s[4]] (in elements of the
// call's dtype); T, H, W are the extents its positions run over.
struct Operand {
  const void* base = nullptr;  // data + byte_offset
  int64_t s[5] = {};
  int64_t T = 1, H = 1, W = 1;
  bool rows_fast = false;  // positions are closer in memory than channels: walk them fastest
};

struct Params {
  int axes = 0;  // attncheck_axes
  Elem elem = Elem::f32;
  Operand q, k, v, out;
  int64_t groups = 0, heads = 0, D = 0, Dv = 0, Sq = 0, Sk = 0;
  float scale = 1;
};

// Enqueues the kernel on stream; returns the launch's error (cudaSuccess
// when it was enqueued). Params must come from plan() (attention.cpp).
cudaError_t launch(const Params& p, cudaStream_t stream);

}  // namespace attncheck::cuda
