// A (B, C, T, H, W) float tensor of a benchmark shape stored in one of the
// benchmark layouts, filled with N(0, 1) values; shared by the forward and
// backward benchmarks.
#pragma once

#include <attncheck/plugin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "shapes.h"

namespace attncheck::bench {

// Threads for every implementation: ATTNCHECK_CPU_THREADS, else the hardware's.
inline int threads() {
  if (const char* e = std::getenv("ATTNCHECK_CPU_THREADS"); e && std::atoi(e) > 0)
    return std::atoi(e);
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

struct Tensor {
  std::array<int64_t, 5> shape{}, stride{};
  std::vector<float> data;
  DLTensor dl{};
  Tensor(const Shape& s, const LayoutKind& l, uint64_t seed) {
    shape = {s.B, s.C, s.T, s.H, s.W};
    int64_t n = 1;
    for (int i = 4; i >= 0; --i) {
      stride[l.order[i]] = n;
      n *= shape[l.order[i]];
    }
    data.resize(static_cast<size_t>(n));
    std::mt19937 rng(static_cast<uint32_t>(seed));
    std::normal_distribution<float> dist;
    for (auto& x : data) x = dist(rng);
    dl = DLTensor{data.data(), {kDLCPU, 0}, 5, {kDLFloat, 32, 1}, shape.data(), stride.data(), 0};
  }
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;
};

// Registers the backward benchmarks (backward_bench.cpp).
void register_backward_benchmarks();

}  // namespace attncheck::bench
