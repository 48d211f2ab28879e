// The `cuda` kernel (see kernel.h for the schedule). 256 threads as a 16 x 16
// grid: thread (ty, tx) owns queries 4ty..4ty+3 of the tile, keys
// 4tx..4tx+3 of the score tile and value channels 4tx + 64c (+0..3) of the
// output tile, so every shared-memory read in the inner loops is a float4
// that sixteen lanes take side by side.
#include "kernel.h"

#include <attncheck/geometry.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>

namespace attncheck::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int BQ = 64;   // queries per block
constexpr int BK = 64;   // keys per tile
constexpr int DC = 32;   // head-dimension chunk of the score product
constexpr int PAD = 4;   // keeps rows 16-byte aligned and spreads banks
constexpr int LDQ = BQ + PAD, LDK = BK + PAD, LDP = BK + PAD;

template <typename T> __device__ __forceinline__ float to_float(T x);
template <> __device__ __forceinline__ float to_float<float>(float x) { return x; }
template <> __device__ __forceinline__ float to_float<__half>(__half x) { return __half2float(x); }
template <> __device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// Where group n starts and where position p lies, in elements, as the
// spec numbers them (src/attncheck/geometry.h, shared with the host).
__device__ int64_t group_offset(int axes, const Operand& o, int64_t n) {
  return attncheck::Geometry{static_cast<attncheck_axes>(axes), o.T, o.H, o.W}.group_offset(n, o.s);
}
__device__ int64_t position_offset(int axes, const Operand& o, int64_t p) {
  return attncheck::Geometry{static_cast<attncheck_axes>(axes), o.T, o.H, o.W}.position_offset(p, o.s);
}

// Gathers an R x C tile: element (r, c) = src[roff[r] + c*cs] for r < nr and
// c < nc (nothing else is read; 0 stands in), stored at dst[r*dr + c*dc].
template <typename T, int R, int C>
__device__ __forceinline__ void gather(float* dst, int dr, int dc, const T* src, const int64_t* roff,
                                       int64_t cs, int nr, int nc, bool rows_fast) {
  for (int i = threadIdx.x; i < R * C; i += kThreads) {
    const int r = rows_fast ? i % R : i / C, c = rows_fast ? i / R : i % C;
    float x = 0.f;
    if (r < nr && c < nc) x = to_float<T>(src[roff[r] + c * cs]);
    dst[r * dr + c * dc] = x;
  }
}

// The inverse for out: dst[roff[r] + c*cs] = src[r*sr + c] for r < nr, c < nc.
template <typename T, int R, int C>
__device__ __forceinline__ void scatter(T* dst, const int64_t* roff, int64_t cs, const float* src, int sr,
                                        int nr, int nc, bool rows_fast) {
  for (int i = threadIdx.x; i < R * C; i += kThreads) {
    const int r = rows_fast ? i % R : i / C, c = rows_fast ? i / R : i % C;
    if (r < nr && c < nc) dst[roff[r] + c * cs] = from_float<T>(src[r * sr + c]);
  }
}

// Max and sum over the sixteen lanes of one half-warp (one query row). The
// xor butterfly gives every lane the same bits: each step adds the same two
// values, only in swapped order, and float addition commutes.
__device__ __forceinline__ float row_max(float x) {
  for (int o = 8; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
__device__ __forceinline__ float row_sum(float x) {
  for (int o = 8; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

template <int DVC>
constexpr size_t smem_bytes() {
  // Ps [BQ][LDP], then one region shared by Qs+Ks (score phase), Vs (value
  // phase) and Os (the final tile).
  return sizeof(float) * (BQ * LDP + std::max(DC * LDQ + DC * LDK, BQ * (DVC + PAD)));
}

template <typename T, int DVC>
__global__ void __launch_bounds__(kThreads) attention_kernel(Params p, int64_t nqt, int64_t ndvc, int64_t njobs) {
  constexpr int LDV = DVC + PAD;
  constexpr int NC = DVC / 64;  // float4 column groups per thread
  extern __shared__ float4 smem4[];
  float* const Ps = reinterpret_cast<float*>(smem4);
  float* const U = Ps + BQ * LDP;
  float* const Qs = U;             // [DC][LDQ], channel-major
  float* const Ks = U + DC * LDQ;  // [DC][LDK]
  float* const Vs = U;             // [BK][LDV], key-major; then Os [BQ][LDV]
  __shared__ int64_t qoff[BQ], ooff[BQ], koff[BK], voff[BK];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const T* const qdata = static_cast<const T*>(p.q.base);
  const T* const kdata = static_cast<const T*>(p.k.base);
  const T* const vdata = static_cast<const T*>(p.v.base);
  T* const odata = static_cast<T*>(const_cast<void*>(p.out.base));

  for (int64_t job = blockIdx.x; job < njobs; job += gridDim.x) {
    // Value chunks fastest, so blocks that share a query tile run together.
    const int64_t chunk = job % ndvc;
    int64_t rest = job / ndvc;
    const int64_t qt = rest % nqt;
    rest /= nqt;
    const int64_t head = rest % p.heads, n = rest / p.heads;
    const int64_t q0 = qt * BQ, dv0 = chunk * DVC;
    const int nq = static_cast<int>(min(int64_t{BQ}, p.Sq - q0));
    const int ndv = static_cast<int>(min(int64_t{DVC}, p.Dv - dv0));
    const T* const qg = qdata + group_offset(p.axes, p.q, n) + head * p.D * p.q.s[1];
    const T* const kg = kdata + group_offset(p.axes, p.k, n) + head * p.D * p.k.s[1];
    const T* const vg = vdata + group_offset(p.axes, p.v, n) + (head * p.Dv + dv0) * p.v.s[1];
    T* const og = odata + group_offset(p.axes, p.out, n) + (head * p.Dv + dv0) * p.out.s[1];

    __syncthreads();  // the previous job is done with shared memory
    if (tid < BQ) {
      qoff[tid] = tid < nq ? position_offset(p.axes, p.q, q0 + tid) : 0;
      ooff[tid] = tid < nq ? position_offset(p.axes, p.out, q0 + tid) : 0;
    }
    float m[4], l[4], acc[4][4 * NC];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      m[i] = -INFINITY, l[i] = 0.f;
#pragma unroll
      for (int c = 0; c < 4 * NC; ++c) acc[i][c] = 0.f;
    }

    for (int64_t k0 = 0; k0 < p.Sk; k0 += BK) {
      const int nk = static_cast<int>(min(int64_t{BK}, p.Sk - k0));
      __syncthreads();  // the previous tile is done with Ps, Vs and the offsets
      if (tid < BK) {
        koff[tid] = tid < nk ? position_offset(p.axes, p.k, k0 + tid) : 0;
        voff[tid] = tid < nk ? position_offset(p.axes, p.v, k0 + tid) : 0;
      }
      // Scores: s[i][j] = q[4ty+i] . k[4tx+j], the head dimension in chunks.
      float s[4][4];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) s[i][j] = 0.f;
      for (int64_t d0 = 0; d0 < p.D; d0 += DC) {
        const int nd = static_cast<int>(min(int64_t{DC}, p.D - d0));
        __syncthreads();
        gather<T, BQ, DC>(Qs, 1, LDQ, qg + d0 * p.q.s[1], qoff, p.q.s[1], nq, nd, p.q.rows_fast);
        gather<T, BK, DC>(Ks, 1, LDK, kg + d0 * p.k.s[1], koff, p.k.s[1], nk, nd, p.k.rows_fast);
        __syncthreads();
#pragma unroll 4
        for (int d = 0; d < nd; ++d) {
          const float4 a = *reinterpret_cast<const float4*>(Qs + d * LDQ + 4 * ty);
          const float4 b = *reinterpret_cast<const float4*>(Ks + d * LDK + 4 * tx);
          const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
          for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j) s[i][j] = fmaf(av[i], bv[j], s[i][j]);
        }
      }
      // Online softmax: new running max, rescale what was summed so far,
      // probabilities of this tile into Ps.
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        float mx = -INFINITY;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          s[i][j] = 4 * tx + j < nk ? s[i][j] * p.scale : -INFINITY;
          mx = fmaxf(mx, s[i][j]);
        }
        const float mnew = fmaxf(m[i], row_max(mx));
        const float mref = mnew == -INFINITY ? 0.f : mnew;  // no (-inf) - (-inf)
        const float alpha = expf(m[i] - mref);
        float sum = 0.f;
#pragma unroll
        for (int j = 0; j < 4; ++j) sum += (s[i][j] = expf(s[i][j] - mref));
        l[i] = l[i] * alpha + row_sum(sum);
        m[i] = mnew;
#pragma unroll
        for (int c = 0; c < 4 * NC; ++c) acc[i][c] *= alpha;
        *reinterpret_cast<float4*>(Ps + (4 * ty + i) * LDP + 4 * tx) =
            make_float4(s[i][0], s[i][1], s[i][2], s[i][3]);
      }
      __syncthreads();  // Ps written; Qs and Ks free for Vs
      gather<T, BK, DVC>(Vs, LDV, 1, vg, voff, p.v.s[1], nk, ndv, p.v.rows_fast);
      __syncthreads();
      // acc[i][.] += sum_j P[4ty+i][j] * V[j][.], keys in ascending order.
#pragma unroll 2
      for (int j = 0; j < nk; ++j) {
        float pr[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) pr[i] = Ps[(4 * ty + i) * LDP + j];
#pragma unroll
        for (int c = 0; c < NC; ++c) {
          const float4 v = *reinterpret_cast<const float4*>(Vs + j * LDV + 64 * c + 4 * tx);
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            acc[i][4 * c + 0] = fmaf(pr[i], v.x, acc[i][4 * c + 0]);
            acc[i][4 * c + 1] = fmaf(pr[i], v.y, acc[i][4 * c + 1]);
            acc[i][4 * c + 2] = fmaf(pr[i], v.z, acc[i][4 * c + 2]);
            acc[i][4 * c + 3] = fmaf(pr[i], v.w, acc[i][4 * c + 3]);
          }
        }
      }
    }
    // Normalize into Os, then write out through its strides.
    __syncthreads();
    float* const Os = U;
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int c = 0; c < NC; ++c)
        *reinterpret_cast<float4*>(Os + (4 * ty + i) * LDV + 64 * c + 4 * tx) =
            make_float4(acc[i][4 * c] / l[i], acc[i][4 * c + 1] / l[i], acc[i][4 * c + 2] / l[i],
                        acc[i][4 * c + 3] / l[i]);
    __syncthreads();
    scatter<T, BQ, DVC>(og, ooff, p.out.s[1], Os, LDV, nq, ndv, p.out.rows_fast);
  }
}

template <typename T, int DVC>
cudaError_t launch_as(const Params& p, cudaStream_t stream) {
  const int64_t nqt = (p.Sq + BQ - 1) / BQ, ndvc = (p.Dv + DVC - 1) / DVC;
  const int64_t njobs = p.groups * p.heads * nqt * ndvc;
  constexpr size_t smem = smem_bytes<DVC>();
  if (smem > 48 * 1024) {
    const cudaError_t e =
        cudaFuncSetAttribute(attention_kernel<T, DVC>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (e != cudaSuccess) return e;
  }
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(njobs, int64_t{1} << 30));
  attention_kernel<T, DVC><<<blocks, kThreads, smem, stream>>>(p, nqt, ndvc, njobs);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_dtype(const Params& p, cudaStream_t stream) {
  // Narrow value heads get a 64-channel output tile; wider ones 256, so a
  // head of 512 channels recomputes its scores once, not seven times.
  return p.Dv <= 64 ? launch_as<T, 64>(p, stream) : launch_as<T, 256>(p, stream);
}

}  // namespace

cudaError_t launch(const Params& p, cudaStream_t stream) {
  switch (p.elem) {
    case Elem::f32: return launch_dtype<float>(p, stream);
    case Elem::f16: return launch_dtype<__half>(p, stream);
    case Elem::bf16: return launch_dtype<__nv_bfloat16>(p, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace attncheck::cuda
