// The backward benchmarks: the `cpu` kernel's forward + backward (and its
// backward alone) beside libtorch autograd of the same math attention, on
// the shapes and layouts of shapes.h, in the same run.
//
//   cpu_fwdbwd    cpu::attention then cpu::backward (dout given)
//   cpu_bwd       cpu::backward alone (out computed once beforehand)
//   torch_fwdbwd  q, k, v leaves with requires_grad; bench_torch's path
//                 (permute, reshape, bmm, mul scale, softmax, bmm, reshape,
//                 permute) then out.backward(dout)
//   torch_bwd     the backward of one recorded graph, rerun (retain_graph)
//
// GFLOP/s count 12 * groups * heads * S^2 * D for forward + backward (the
// forward's 4 plus the backward's four products, 8) and 8 * ... for the
// backward alone, whatever the implementation does (the cpu kernel
// recomputes more than that: see src/impls/cpu/backward_kernel.h).
#include "cpu_attention.h"
#include "shapes.h"
#include "strided_tensor.h"

#ifdef ATTNCHECK_BENCH_TORCH
#include <torch/torch.h>
#endif

#include <benchmark/benchmark.h>

#include <cmath>
#include <string>

namespace attncheck::bench {
namespace {

struct BackwardProblem {
  Shape s;
  Tensor q, k, v, out, dout, dq, dk, dv;
  attncheck_attention forward;
  attncheck_attention_backward backward;
  BackwardProblem(const Shape& sh, const LayoutKind& l)
      : s(sh),
        q(sh, l, 1),
        k(sh, l, 2),
        v(sh, l, 3),
        out(sh, l, 4),
        dout(sh, l, 5),
        dq(sh, l, 6),
        dk(sh, l, 7),
        dv(sh, l, 8) {
    const double scale = 1.0 / std::sqrt(static_cast<double>(sh.D()));
    forward = {ATTNCHECK_SPATIAL, &q.dl, &k.dl, &v.dl, &out.dl, sh.heads, scale};
    backward = {ATTNCHECK_SPATIAL, &q.dl, &k.dl, &v.dl, &out.dl, &dout.dl, &dq.dl, &dk.dl, &dv.dl,
                sh.heads,          scale};
  }
};

void rate(benchmark::State& state, const Shape& s, double times_forward) {
  state.counters["GFLOPs"] = benchmark::Counter(times_forward * s.flops() / 1e9,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

void bench_cpu(benchmark::State& state, Shape s, LayoutKind l, bool with_forward) {
  attncheck::cpu::set_threads(threads());
  BackwardProblem p(s, l);
  char msg[256];
  if (attncheck::cpu::attention(&p.forward, msg, sizeof msg) != ATTNCHECK_OK) {
    state.SkipWithError(msg);
    return;
  }
  for (auto _ : state) {
    if ((with_forward && attncheck::cpu::attention(&p.forward, msg, sizeof msg) != ATTNCHECK_OK) ||
        attncheck::cpu::backward(&p.backward, msg, sizeof msg) != ATTNCHECK_OK) {
      state.SkipWithError(msg);
      break;
    }
    benchmark::ClobberMemory();
  }
  rate(state, s, with_forward ? 3.0 : 2.0);
  state.SetLabel(attncheck::cpu::arch());
}

#ifdef ATTNCHECK_BENCH_TORCH
// The math attention of bench_torch on leaves that require grad; returns out
// as (B, C, T, H, W).
torch::Tensor torch_forward(const Shape& s, const torch::Tensor& q, const torch::Tensor& k,
                            const torch::Tensor& v, double scale) {
  const int64_t N = s.B * s.T * s.heads, D = s.D(), S = s.S();
  auto qh = q.permute({0, 2, 1, 3, 4}).reshape({N, D, S}).transpose(1, 2);  // (N, S, D)
  auto kh = k.permute({0, 2, 1, 3, 4}).reshape({N, D, S});                  // (N, D, S)
  auto vh = v.permute({0, 2, 1, 3, 4}).reshape({N, D, S});                  // (N, D, S)
  auto w = torch::bmm(qh, kh).mul(scale).softmax(-1);                       // (N, S, S)
  auto o = torch::bmm(vh, w.transpose(1, 2));                               // (N, D, S)
  return o.reshape({s.B, s.T, s.C, s.H, s.W}).permute({0, 2, 1, 3, 4});
}

void bench_torch(benchmark::State& state, Shape s, LayoutKind l, bool with_forward) {
  at::set_num_threads(threads());
  BackwardProblem p(s, l);
  auto wrap = [](Tensor& t, bool grad) {
    return torch::from_blob(t.data.data(), {t.shape.begin(), t.shape.end()},
                            {t.stride.begin(), t.stride.end()}, torch::kFloat32)
        .requires_grad_(grad);
  };
  torch::Tensor q = wrap(p.q, true), k = wrap(p.k, true), v = wrap(p.v, true),
                dout = wrap(p.dout, false);
  const double scale = p.forward.scale;
  auto clear = [&] {
    for (auto* t : {&q, &k, &v}) t->mutable_grad().reset();
  };
  if (with_forward) {
    for (auto _ : state) {
      clear();
      torch_forward(s, q, k, v, scale).backward(dout);
      benchmark::ClobberMemory();
    }
  } else {
    torch::Tensor out = torch_forward(s, q, k, v, scale);
    for (auto _ : state) {
      clear();
      out.backward(dout, /*retain_graph=*/true);
      benchmark::ClobberMemory();
    }
  }
  rate(state, s, with_forward ? 3.0 : 2.0);
}
#endif

}  // namespace

void register_backward_benchmarks() {
  for (const Shape& s : kShapes)
    for (const LayoutKind& l : kLayouts) {
      const std::string tag = std::string(s.name) + "/" + l.name;
      for (bool fwd : {true, false}) {
        const std::string kind = fwd ? "_fwdbwd/" : "_bwd/";
        benchmark::RegisterBenchmark(("cpu" + kind + tag).c_str(), bench_cpu, s, l, fwd)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
#ifdef ATTNCHECK_BENCH_TORCH
        benchmark::RegisterBenchmark(("torch" + kind + tag).c_str(), bench_torch, s, l, fwd)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
#endif
      }
    }
}

}  // namespace attncheck::bench
