// The spec's geometry, written once: how a (B, C, T, H, W) tensor's
// elements fall into groups and positions (shared/spec/plugin-abi.md).
//
//   SPATIAL         groups (b, t):     n = b*T + t;         positions (h, w):    p = h*W + w
//   TEMPORAL        groups (b, h, w):  n = (b*H + h)*W + w; positions t:         p = t
//   SPATIOTEMPORAL  groups b:          n = b;               positions (t, h, w): p = (t*H + h)*W + w
//
// Every part of attncheck that numbers groups or positions uses this: the
// case model (groups, Sq, Sk), guarded memory (value synthesis), the
// properties (group and position permutations), the call index that
// implementations use (call_index.h) and the test kernels. The reference
// states the same numbering independently, as permute -> reshape
// (reference/attention.cpp); properties/geometry_test.cpp checks the two
// against each other.
//
// Plain C++ (17) over the ABI's attncheck_axes: implementations may use it,
// on the host and in CUDA device code.
#pragma once

#include <attncheck/plugin.h>

#include <array>
#include <cstdint>

// Host and device (the CUDA kernel uses it too).
#if defined(__CUDACC__)
#define ATTNCHECK_HD __host__ __device__
#else
#define ATTNCHECK_HD
#endif

namespace attncheck {

using Index5 = std::array<int64_t, 5>;  // (b, c, t, h, w)

// The geometry of one tensor: the attended axes and its (T, H, W) extents.
struct Geometry {
  attncheck_axes axes = ATTNCHECK_SPATIAL;
  int64_t T = 1, H = 1, W = 1;

  // Groups of a tensor with batch B.
  ATTNCHECK_HD constexpr int64_t groups(int64_t B) const {
    switch (axes) {
      case ATTNCHECK_SPATIAL: return B * T;
      case ATTNCHECK_TEMPORAL: return B * H * W;
      case ATTNCHECK_SPATIOTEMPORAL: return B;
    }
    return B;
  }
  // Positions per group.
  ATTNCHECK_HD constexpr int64_t positions() const {
    switch (axes) {
      case ATTNCHECK_SPATIAL: return H * W;
      case ATTNCHECK_TEMPORAL: return T;
      case ATTNCHECK_SPATIOTEMPORAL: return T * H * W;
    }
    return 1;
  }

  // The group and the position of an element (I: Index5 or int64_t[5]).
  template <typename I>
  ATTNCHECK_HD constexpr int64_t group(const I& i) const {
    switch (axes) {
      case ATTNCHECK_SPATIAL: return i[0] * T + i[2];
      case ATTNCHECK_TEMPORAL: return (i[0] * H + i[3]) * W + i[4];
      case ATTNCHECK_SPATIOTEMPORAL: return i[0];
    }
    return 0;
  }
  template <typename I>
  ATTNCHECK_HD constexpr int64_t position(const I& i) const {
    switch (axes) {
      case ATTNCHECK_SPATIAL: return i[3] * W + i[4];
      case ATTNCHECK_TEMPORAL: return i[2];
      case ATTNCHECK_SPATIOTEMPORAL: return (i[2] * H + i[3]) * W + i[4];
    }
    return 0;
  }

  // Sets the index's group dimensions to group n (the others untouched).
  template <typename I>
  ATTNCHECK_HD constexpr void set_group(I& i, int64_t n) const {
    switch (axes) {
      case ATTNCHECK_SPATIAL: i[0] = n / T, i[2] = n % T; return;
      case ATTNCHECK_TEMPORAL: i[0] = n / (H * W), i[3] = (n / W) % H, i[4] = n % W; return;
      case ATTNCHECK_SPATIOTEMPORAL: i[0] = n; return;
    }
  }
  // Sets the index's position dimensions to position p (the others untouched).
  template <typename I>
  ATTNCHECK_HD constexpr void set_position(I& i, int64_t p) const {
    switch (axes) {
      case ATTNCHECK_SPATIAL: i[3] = p / W, i[4] = p % W; return;
      case ATTNCHECK_TEMPORAL: i[2] = p; return;
      case ATTNCHECK_SPATIOTEMPORAL: i[2] = p / (H * W), i[3] = (p / W) % H, i[4] = p % W; return;
    }
  }

  // The element of group n, channel c, position p (host only).
  constexpr Index5 index(int64_t n, int64_t c, int64_t p) const {
    int64_t i[5] = {0, c, 0, 0, 0};
    set_group(i, n);
    set_position(i, p);
    return Index5{i[0], i[1], i[2], i[3], i[4]};
  }

  // Element offsets under strides: the start of group n, and position p
  // within a group (their sum plus c * strides[1] addresses an element).
  ATTNCHECK_HD constexpr int64_t group_offset(int64_t n, const int64_t* strides) const {
    int64_t i[5] = {0, 0, 0, 0, 0};
    set_group(i, n);
    return dot(i, strides);
  }
  ATTNCHECK_HD constexpr int64_t position_offset(int64_t p, const int64_t* strides) const {
    int64_t i[5] = {0, 0, 0, 0, 0};
    set_position(i, p);
    return dot(i, strides);
  }

  ATTNCHECK_HD static constexpr int64_t dot(const int64_t (&i)[5], const int64_t* strides) {
    return i[0] * strides[0] + i[1] * strides[1] + i[2] * strides[2] + i[3] * strides[3] + i[4] * strides[4];
  }
};

// The geometry of a tensor of shape (B, C, T, H, W) under axes.
ATTNCHECK_HD constexpr Geometry geometry_of(attncheck_axes axes, const int64_t* shape) {
  return Geometry{axes, shape[2], shape[3], shape[4]};
}

// The numbering of the unfixed Open-Sora-Plan AttnBlock3D (spatial):
// x.reshape(B*T, C, H*W) of the packed logical order, without moving t next
// to b first. Its element (n, c, p) is the logical element at flat index
// (n*C + c)*H*W + p of (B, C, T, H, W). Only for planting that bug on
// purpose (the example plugin built with ATTNBLOCK3D_LEGACY, the legacy
// mutant); the reference names the same semantics for diagnosis.
constexpr Index5 legacy_spatial_index(const int64_t* shape, int64_t n, int64_t c, int64_t p) {
  int64_t f = (n * shape[1] + c) * shape[3] * shape[4] + p;
  Index5 i{};
  for (int d = 4; d >= 0; --d) i[d] = f % shape[d], f /= shape[d];
  return i;
}

}  // namespace attncheck
