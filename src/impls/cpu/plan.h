// The arch-independent description of one call to the `cpu` kernel: where
// each tensor's elements lie, how positions and groups map to memory, and the
// tile sizes. Built once per call by attention.cpp, read by every work item.
#pragma once

#include <attncheck/plugin.h>

#include <cstddef>
#include <cstdint>

// Profiling builds (-DATTNCHECK_CPU_PROFILE) keep the packing and the
// micro-kernels out of line so that perf attributes time to each; normal
// builds flatten the work item (see pack.h for why).
#ifdef ATTNCHECK_CPU_PROFILE
#define ATTNCHECK_CPU_NOINLINE [[gnu::noinline]]
#define ATTNCHECK_CPU_FLATTEN
#else
#define ATTNCHECK_CPU_NOINLINE
#define ATTNCHECK_CPU_FLATTEN [[gnu::flatten]]
#endif

namespace attncheck::cpu {

// Storage types the kernel reads and writes; compute is float or double.
enum class Storage { f32, f64, bf16, f16 };

// An index space of up to three dimensions (row-major numbering) with a
// stride per dimension, in elements. Positions inside a group and the groups
// themselves are both described this way, so the three axes families share
// one code path: spatial positions are (H, W), temporal ones (T),
// spatiotemporal ones (T, H, W); groups are (B, T), (B, H, W) or (B).
struct IndexMap {
  int n = 0;
  int64_t size[3] = {1, 1, 1};
  int64_t stride[3] = {0, 0, 0};

  // Element offset of index i (0 <= i < size[0]*size[1]*size[2]).
  int64_t offset(int64_t i) const {
    int64_t off = 0;
    for (int d = n - 1; d > 0; --d) {
      off += (i % size[d]) * stride[d];
      i /= size[d];
    }
    return n > 0 ? off + i * stride[0] : 0;
  }
};

// One tensor as the kernel reads (or writes) it.
struct View {
  char* base = nullptr;  // data + byte_offset
  int64_t channel_stride = 0;
  IndexMap group;
  IndexMap position;
};

struct Plan {
  Storage storage = Storage::f32;
  int64_t heads = 1, D = 1, Dv = 1;
  int64_t groups = 1, Sq = 1, Sk = 1;
  double scale = 1.0;
  View q, k, v, out;

  // Tiles: BQ query rows per work item, BK keys per inner step. BK fixes the
  // reduction order of every output element, so it depends only on the
  // shape (never on the thread count or the layouts).
  int64_t BQ = 1, BK = 1;
  int64_t q_tiles = 1;  // ceil(Sq / BQ)
  // Orientation of the packed K and V tiles (key-major when the source's
  // channels are closer together than its positions). Only speed depends on
  // it: K and V are broadcast operands.
  bool k_key_major = false, v_key_major = false;
  int64_t items() const { return groups * heads * q_tiles; }
};

// Per-arch entry points (kernel_<arch>.cpp). `workspace_bytes` is what one
// thread needs for one work item of `plan` computed in float (f32 == true)
// or double; `run_item` computes one work item with that workspace (aligned
// to 64 bytes) and returns false when a logit row was not finite in the
// compute type (the caller then recomputes the call in double).
struct ArchKernels {
  const char* name;
  size_t (*workspace_bytes)(const Plan& plan, bool f32);
  bool (*run_item)(const Plan& plan, bool f32, int64_t item, void* workspace);
  int64_t (*query_block)();  // queries per micro-tile; BQ is a multiple of it
};

const ArchKernels& kernels_avx512();
const ArchKernels& kernels_avx2();
const ArchKernels& kernels_sse2();

}  // namespace attncheck::cpu
