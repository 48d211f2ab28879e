// attncheck_cuda_bench: the `cuda` kernel against what a CUDA programmer
// composes from libraries: cuBLAS strided-batched SGEMM (scores), a softmax
// kernel over the materialized Sq x Sk scores, and a second batched SGEMM,
// on the shapes of the CPU benchmark (bench/attention_bench.cpp).
//
// GFLOP/s = 4 * groups * heads * Sq * Sk * D / time, whatever the
// implementation does. The cuBLAS path gets its inputs packed per head
// beforehand (packing not timed), as the CPU benchmark's BLAS peer does; the
// `cuda` kernel reads the (B, C, T, H, W) tensors in place, in three layouts.
// Both compute in float32 FMA (cuBLAS's default math mode: no TF32).
// Prints one table and the two outputs' largest difference (compact layout);
// exits 1 when they disagree or a call fails.
#include "plan.h"
#include "../shapes.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

namespace {

using attncheck::bench::kLayouts;
using attncheck::bench::kShapes;
using attncheck::bench::LayoutKind;
using attncheck::bench::Shape;

#define CHECK_CUDA(x)                                                                       \
  do {                                                                                      \
    cudaError_t e_ = (x);                                                                   \
    if (e_ != cudaSuccess) {                                                                \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                         \
    }                                                                                       \
  } while (0)
#define CHECK_CUBLAS(x)                                                                 \
  do {                                                                                  \
    cublasStatus_t s_ = (x);                                                            \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                  \
      std::fprintf(stderr, "%s:%d: %s: cuBLAS status %d\n", __FILE__, __LINE__, #x, int(s_)); \
      std::exit(1);                                                                     \
    }                                                                                   \
  } while (0)

// Row softmax in place: one block per row of n scores.
__global__ void softmax_rows(float* scores, int64_t n) {
  float* row = scores + static_cast<int64_t>(blockIdx.x) * n;
  __shared__ float red[32];
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, row[j]);
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = m;
  __syncthreads();
  m = -INFINITY;
  for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) m = fmaxf(m, red[w]);
  __syncthreads();
  float s = 0.f;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += (row[j] = expf(row[j] - m));
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = s;
  __syncthreads();
  s = 0.f;
  for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) s += red[w];
  const float inv = 1.f / s;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) row[j] *= inv;
}

// Seconds per call of fn, after a warm-up, over at least 0.2 s.
template <typename F>
double time_it(F&& fn) {
  cudaEvent_t a, b;
  CHECK_CUDA(cudaEventCreate(&a));
  CHECK_CUDA(cudaEventCreate(&b));
  fn();
  CHECK_CUDA(cudaDeviceSynchronize());
  int iters = 1;
  float ms = 0;
  for (;;) {
    CHECK_CUDA(cudaEventRecord(a));
    for (int i = 0; i < iters; ++i) fn();
    CHECK_CUDA(cudaEventRecord(b));
    CHECK_CUDA(cudaEventSynchronize(b));
    CHECK_CUDA(cudaEventElapsedTime(&ms, a, b));
    if (ms >= 200 || iters >= 1 << 14) break;
    iters = std::max(iters * 2, static_cast<int>(iters * 220 / std::max(ms, 1e-3f)));
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms * 1e-3 / iters;
}

// Logical (b, c, t, h, w) values, the same for every layout and for the
// packed copies: q, k, v differ by seed.
float value(int which, int64_t b, int64_t c, int64_t t, int64_t h, int64_t w) {
  uint64_t x = (((((static_cast<uint64_t>(which) * 131 + b) * 4099 + c) * 131 + t) * 8209 + h) * 8209 + w);
  x ^= x >> 33, x *= 0xff51afd7ed558ccdull, x ^= x >> 33, x *= 0xc4ceb9fe1a85ec53ull, x ^= x >> 33;
  return static_cast<float>((x >> 40) * 0x1p-24 * 2 - 1);  // uniform in [-1, 1)
}

struct DeviceTensor {
  std::array<int64_t, 5> shape{}, stride{};
  float* data = nullptr;
  DLTensor dl{};
  DeviceTensor(const Shape& s, const LayoutKind& l, int which) {
    shape = {s.B, s.C, s.T, s.H, s.W};
    int64_t n = 1;
    for (int i = 4; i >= 0; --i) stride[l.order[i]] = n, n *= shape[l.order[i]];
    std::vector<float> host(static_cast<size_t>(n));
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t c = 0; c < s.C; ++c)
        for (int64_t t = 0; t < s.T; ++t)
          for (int64_t h = 0; h < s.H; ++h)
            for (int64_t w = 0; w < s.W; ++w)
              host[b * stride[0] + c * stride[1] + t * stride[2] + h * stride[3] + w * stride[4]] =
                  which < 3 ? value(which, b, c, t, h, w) : 0.f;
    CHECK_CUDA(cudaMalloc(&data, n * sizeof(float)));
    CHECK_CUDA(cudaMemcpy(data, host.data(), n * sizeof(float), cudaMemcpyHostToDevice));
    dl = DLTensor{data, {kDLCUDA, 0}, 5, {kDLFloat, 32, 1}, shape.data(), stride.data(), 0};
  }
  ~DeviceTensor() { cudaFree(data); }
};

struct Row {
  double cuda[3] = {0, 0, 0};
  double cublas = 0;
  float max_diff = 0;
};

Row run_shape(const Shape& s, cublasHandle_t handle) {
  Row row;
  const int64_t G = s.groups() * s.heads, S = s.S(), D = s.D();
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  std::vector<float> cuda_out;
  for (int li = 0; li < 3; ++li) {
    DeviceTensor q(s, kLayouts[li], 0), k(s, kLayouts[li], 1), v(s, kLayouts[li], 2), out(s, kLayouts[li], 3);
    attncheck_attention call{ATTNCHECK_SPATIAL, &q.dl, &k.dl, &v.dl, &out.dl, s.heads, scale};
    attncheck::cuda::Params p;
    std::string why;
    if (attncheck::cuda::plan(&call, &p, &why) != ATTNCHECK_OK) {
      std::fprintf(stderr, "cuda declined %s: %s\n", s.name, why.c_str());
      std::exit(1);
    }
    row.cuda[li] = s.flops() / time_it([&] { CHECK_CUDA(attncheck::cuda::launch(p, nullptr)); }) * 1e-9;
    if (li == 0) {
      cuda_out.resize(static_cast<size_t>(s.B * s.C * s.T * s.H * s.W));
      CHECK_CUDA(cudaMemcpy(cuda_out.data(), out.data, cuda_out.size() * sizeof(float), cudaMemcpyDeviceToHost));
    }
  }

  // cuBLAS: per (group, head) Q, K, V packed (S x D row-major), scores G x S x S.
  std::vector<float> hq(G * S * D), hk(G * S * D), hv(G * S * D);
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t t = 0; t < s.T; ++t)
      for (int64_t g = 0; g < s.heads; ++g)
        for (int64_t i = 0; i < S; ++i)
          for (int64_t d = 0; d < D; ++d) {
            const int64_t at = (((b * s.T + t) * s.heads + g) * S + i) * D + d;
            const int64_t c = g * D + d, h = i / s.W, w = i % s.W;
            hq[at] = value(0, b, c, t, h, w), hk[at] = value(1, b, c, t, h, w), hv[at] = value(2, b, c, t, h, w);
          }
  float *dq, *dk, *dv, *dsc, *dout;
  CHECK_CUDA(cudaMalloc(&dq, hq.size() * 4));
  CHECK_CUDA(cudaMalloc(&dk, hk.size() * 4));
  CHECK_CUDA(cudaMalloc(&dv, hv.size() * 4));
  CHECK_CUDA(cudaMalloc(&dout, hv.size() * 4));
  CHECK_CUDA(cudaMalloc(&dsc, static_cast<size_t>(G * S * S) * 4));
  CHECK_CUDA(cudaMemcpy(dq, hq.data(), hq.size() * 4, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(dk, hk.data(), hk.size() * 4, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(dv, hv.data(), hv.size() * 4, cudaMemcpyHostToDevice));
  const float alpha = static_cast<float>(scale), one = 1.f, zero = 0.f;
  auto composed = [&] {
    // Column-major: scores^T (S x S) = K^T(as D x S)^T * Q(as D x S): row-major Q K^T.
    CHECK_CUBLAS(cublasSgemmStridedBatched(handle, CUBLAS_OP_T, CUBLAS_OP_N, S, S, D, &alpha, dk, D, S * D, dq, D,
                                           S * D, &zero, dsc, S, S * S, G));
    softmax_rows<<<static_cast<unsigned>(G * S), 256>>>(dsc, S);
    // out^T (D x S) = V^T (D x S) * P^T (S x S): row-major P V.
    CHECK_CUBLAS(cublasSgemmStridedBatched(handle, CUBLAS_OP_N, CUBLAS_OP_N, D, S, S, &one, dv, D, S * D, dsc, S,
                                           S * S, &zero, dout, D, S * D, G));
  };
  row.cublas = s.flops() / time_it(composed) * 1e-9;
  CHECK_CUDA(cudaGetLastError());
  std::vector<float> ho(hv.size());
  CHECK_CUDA(cudaMemcpy(ho.data(), dout, ho.size() * 4, cudaMemcpyDeviceToHost));
  // Compact (B, C, T, H, W) output of `cuda` against the packed cuBLAS one.
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t t = 0; t < s.T; ++t)
      for (int64_t g = 0; g < s.heads; ++g)
        for (int64_t i = 0; i < S; ++i)
          for (int64_t d = 0; d < D; ++d) {
            const float want = ho[(((b * s.T + t) * s.heads + g) * S + i) * D + d];
            const int64_t c = g * D + d;
            const float got = cuda_out[(((b * s.C + c) * s.T + t) * s.H + i / s.W) * s.W + i % s.W];
            row.max_diff = std::max(row.max_diff, std::fabs(got - want));
          }
  cudaFree(dq), cudaFree(dk), cudaFree(dv), cudaFree(dout), cudaFree(dsc);
  return row;
}

}  // namespace

int main() {
  int dev = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
    std::fprintf(stderr, "attncheck_cuda_bench: no CUDA device\n");
    return 2;
  }
  cublasHandle_t handle;
  CHECK_CUBLAS(cublasCreate(&handle));
  std::printf("attncheck_cuda_bench on %s (sm_%d%d); GFLOP/s = 4*groups*heads*Sq*Sk*D / time, float32\n",
              prop.name, prop.major, prop.minor);
  std::printf("%-12s %9s %9s %9s %9s  %12s %10s\n", "shape", "compact", "ch_last", "t_outer", "cublas+sm",
              "cuda/cublas", "max|diff|");
  bool ok = true;
  double log_ratio = 0;
  int n = 0;
  for (const Shape& s : kShapes) {
    const Row r = run_shape(s, handle);
    const double ratio = r.cuda[0] / r.cublas;
    std::printf("%-12s %9.1f %9.1f %9.1f %9.1f  %11.2fx %10.2e\n", s.name, r.cuda[0], r.cuda[1], r.cuda[2], r.cublas,
                ratio, r.max_diff);
    log_ratio += std::log(ratio), ++n;
    if (!(r.max_diff < 1e-3f)) {
      std::printf("  MISMATCH: cuda and cuBLAS+softmax differ by %.3g on %s\n", r.max_diff, s.name);
      ok = false;
    }
  }
  std::printf("geometric mean cuda/cublas (compact): %.2fx\n", std::exp(log_ratio / n));
  cublasDestroy(handle);
  return ok ? 0 : 1;
}
