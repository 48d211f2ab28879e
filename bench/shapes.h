// The benchmark shapes and memory layouts shared by the CPU benchmark
// (bench/attention_bench.cpp) and the CUDA one (bench/cuda/cuda_bench.cu), so
// the two tables measure the same problems.
#pragma once

#include <array>
#include <cstdint>

namespace attncheck::bench {

// Spatial attention on a (B, C, T, H, W) tensor, Dv = D.
struct Shape {
  const char* name;
  int64_t B, C, T, H, W, heads;
  int64_t groups() const { return B * T; }
  int64_t S() const { return H * W; }
  int64_t D() const { return C / heads; }
  // GFLOP/s is counted from this, whatever the implementation does.
  double flops() const { return 4.0 * groups() * heads * S() * S() * D(); }
};

inline constexpr Shape kShapes[] = {
    {"vae_mid_T5", 1, 512, 5, 32, 32, 1},  // Open-Sora-Plan VAE mid block
    {"vae_mid_T9", 1, 512, 9, 32, 32, 1},
    {"8heads_d64", 2, 512, 4, 32, 32, 8},
    {"c128_64x64", 1, 128, 4, 64, 64, 1},
    {"c512_16x16", 4, 512, 4, 16, 16, 1},
};

// Memory order of the five logical dims (B, C, T, H, W), outermost first.
struct LayoutKind {
  const char* name;
  std::array<int, 5> order;
};
inline constexpr LayoutKind kLayouts[] = {
    {"compact", {0, 1, 2, 3, 4}},        // (B, C, T, H, W)
    {"channels_last", {0, 2, 3, 4, 1}},  // (B, T, H, W, C): channels_last_3d
    {"t_outer", {2, 0, 1, 3, 4}},        // (T, B, C, H, W)
};

}  // namespace attncheck::bench
