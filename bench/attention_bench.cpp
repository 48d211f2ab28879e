// attncheck_bench: the `cpu` kernel beside its peers, on video-VAE shapes
// and three memory layouts. Run through ci/bench, which prints one table.
//
// Every benchmark reports GFLOP/s counted as 4 * groups * heads * Sq * Sk * D
// (D = Dv here), whatever the implementation does. Peers:
//   reference_f32  the plain loops (when the target exists; slow, so only the
//                  smallest shape, compact layout)
//   torch          what a PyTorch user writes: permute, reshape, bmm,
//                  softmax, bmm, reshape, permute (when libtorch is found)
//   blas           OpenBLAS SGEMM + softmax on inputs packed beforehand
//                  (packing not timed), S x S scores materialized
//   sgemm          OpenBLAS SGEMM 2048^3, the practical ceiling
// All use the same thread count (ATTNCHECK_CPU_THREADS, else the hardware's).
#include "cpu_attention.h"
#include "shapes.h"
#include "strided_tensor.h"

#ifdef ATTNCHECK_BENCH_REFERENCE
#include <impls/reference_f32/reference_f32.h>
#endif
#ifdef ATTNCHECK_BENCH_TORCH
#include <torch/torch.h>
#endif

#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

extern "C" void openblas_set_num_threads(int);

namespace {

using attncheck::bench::kLayouts;
using attncheck::bench::kShapes;
using attncheck::bench::LayoutKind;
using attncheck::bench::Shape;

using attncheck::bench::Tensor;
using attncheck::bench::threads;

struct Problem {
  Shape s;
  Tensor q, k, v, out;
  attncheck_attention call;
  Problem(const Shape& sh, const LayoutKind& l)
      : s(sh), q(sh, l, 1), k(sh, l, 2), v(sh, l, 3), out(sh, l, 4) {
    call = {ATTNCHECK_SPATIAL, &q.dl, &k.dl, &v.dl, &out.dl, sh.heads,
            1.0 / std::sqrt(static_cast<double>(sh.D()))};
  }
};

void finish(benchmark::State& state, const Shape& s) {
  state.counters["GFLOPs"] =
      benchmark::Counter(s.flops() / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

void bench_cpu(benchmark::State& state, Shape s, LayoutKind l) {
  attncheck::cpu::set_threads(threads());
  Problem p(s, l);
  char msg[256];
  for (auto _ : state) {
    if (attncheck::cpu::attention(&p.call, msg, sizeof msg) != ATTNCHECK_OK) {
      state.SkipWithError(msg);
      break;
    }
    benchmark::ClobberMemory();
  }
  finish(state, s);
  state.counters["ws_KiB"] = static_cast<double>(attncheck::cpu::workspace_bytes(&p.call)) / 1024;
  state.SetLabel(attncheck::cpu::arch());
}

#ifdef ATTNCHECK_BENCH_REFERENCE
void bench_reference(benchmark::State& state, Shape s, LayoutKind l) {
  Problem p(s, l);
  char msg[256];
  for (auto _ : state) {
    if (attncheck::reference_f32::attention(&p.call, msg, sizeof msg) != ATTNCHECK_OK) {
      state.SkipWithError(msg);
      break;
    }
    benchmark::ClobberMemory();
  }
  finish(state, s);
}
#endif

#ifdef ATTNCHECK_BENCH_TORCH
// The path of a PyTorch user (Open-Sora-Plan's AttnBlock3D, fixed, with
// heads): (B, C, T, H, W) -> (B*T*heads, D, H*W), scores, softmax, weighted
// sum, back to (B, C, T, H, W), written into out.
void bench_torch(benchmark::State& state, Shape s, LayoutKind l) {
  torch::NoGradGuard no_grad;
  at::set_num_threads(threads());
  Problem p(s, l);
  auto wrap = [](Tensor& t) {
    return torch::from_blob(t.data.data(), {t.shape.begin(), t.shape.end()},
                            {t.stride.begin(), t.stride.end()}, torch::kFloat32);
  };
  torch::Tensor q = wrap(p.q), k = wrap(p.k), v = wrap(p.v), out = wrap(p.out);
  const int64_t N = s.B * s.T * s.heads, D = s.D(), S = s.S();
  const double scale = p.call.scale;
  for (auto _ : state) {
    auto qh = q.permute({0, 2, 1, 3, 4}).reshape({N, D, S}).transpose(1, 2);  // (N, S, D)
    auto kh = k.permute({0, 2, 1, 3, 4}).reshape({N, D, S});                  // (N, D, S)
    auto vh = v.permute({0, 2, 1, 3, 4}).reshape({N, D, S});                  // (N, D, S)
    auto w = torch::bmm(qh, kh).mul_(scale).softmax(-1);                      // (N, S, S)
    auto o = torch::bmm(vh, w.transpose(1, 2));                               // (N, D, S)
    out.copy_(o.reshape({s.B, s.T, s.C, s.H, s.W}).permute({0, 2, 1, 3, 4}));
    benchmark::ClobberMemory();
  }
  finish(state, s);
}
#endif

// SGEMM + softmax per (group, head) on inputs packed beforehand as
// Q (S x D), K (S x D), V (S x D) row-major; groups split over threads, each
// calling single-threaded OpenBLAS.
void bench_blas(benchmark::State& state, Shape s) {
  const int64_t G = s.groups() * s.heads, S = s.S(), D = s.D();
  std::vector<float> q(G * S * D), k(G * S * D), v(G * S * D), o(G * S * D);
  std::mt19937 rng(5);
  std::normal_distribution<float> dist;
  for (auto* b : {&q, &k, &v})
    for (auto& x : *b) x = dist(rng);
  const int nt = static_cast<int>(std::min<int64_t>(threads(), G));
  std::vector<std::vector<float>> scores(nt, std::vector<float>(S * S));
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  openblas_set_num_threads(1);
  auto work = [&](int t) {
    float* w = scores[t].data();
    for (int64_t g = t; g < G; g += nt) {
      const float* qg = q.data() + g * S * D;
      const float* kg = k.data() + g * S * D;
      const float* vg = v.data() + g * S * D;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, S, S, D, scale, qg, D, kg, D, 0.0f, w, S);
      for (int64_t i = 0; i < S; ++i) {
        float* row = w + i * S;
        const float m = *std::max_element(row, row + S);
        float sum = 0;
        for (int64_t j = 0; j < S; ++j) sum += (row[j] = std::exp(row[j] - m));
        const float inv = 1 / sum;
        for (int64_t j = 0; j < S; ++j) row[j] *= inv;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, S, D, S, 1.0f, w, S, vg, D, 0.0f,
                  o.data() + g * S * D, D);
    }
  };
  for (auto _ : state) {
    std::vector<std::thread> pool;
    for (int t = 1; t < nt; ++t) pool.emplace_back(work, t);
    work(0);
    for (auto& th : pool) th.join();
    benchmark::ClobberMemory();
  }
  openblas_set_num_threads(threads());
  finish(state, s);
}

void bench_sgemm(benchmark::State& state) {
  const int n = 2048;
  std::vector<float> a(size_t{n} * n, 0.5f), b(size_t{n} * n, 0.25f), c(size_t{n} * n);
  openblas_set_num_threads(threads());
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
                0.0f, c.data(), n);
    benchmark::ClobberMemory();
  }
  state.counters["GFLOPs"] =
      benchmark::Counter(2.0 * n * n * n / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RegisterBenchmark("sgemm/2048", bench_sgemm)->Unit(benchmark::kMillisecond)->UseRealTime();
  for (const Shape& s : kShapes) {
    for (const LayoutKind& l : kLayouts) {
      const std::string tag = std::string(s.name) + "/" + l.name;
      benchmark::RegisterBenchmark(("cpu/" + tag).c_str(), bench_cpu, s, l)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
#ifdef ATTNCHECK_BENCH_TORCH
      benchmark::RegisterBenchmark(("torch/" + tag).c_str(), bench_torch, s, l)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
#endif
    }
#ifdef ATTNCHECK_BENCH_REFERENCE
    // The plain loops take seconds per call: the smallest shape only.
    if (std::strcmp(s.name, "c512_16x16") == 0)
      benchmark::RegisterBenchmark(("reference_f32/" + std::string(s.name) + "/compact").c_str(),
                                   bench_reference, s, kLayouts[0])
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->Iterations(1);
#endif
    benchmark::RegisterBenchmark(("blas/" + std::string(s.name) + "/packed").c_str(), bench_blas, s)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  attncheck::bench::register_backward_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
