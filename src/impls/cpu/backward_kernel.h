// The FlashAttention-2-style backward work items, written once over an
// xsimd architecture A and a compute type T, instantiated per architecture
// by backward_<arch>.cpp (each compiled with its own -m flags).
//
// For a query tile i and a key tile j of one (group, head), everything is
// recomputed from the packed operands and the row statistics:
//     S = scale Q_i K_j^T,  P = exp(S - lse),  dP = dO_i V_j^T,
//     dS = P (dP - delta),  delta = sum_e dO * out (the spec's sum_r P dP),
// and then dq_i += dS K_j (query items), dv_j += P^T dO_i and
// dk_j += dS^T Q_i (key items). S, P, dP and dS exist one BQ x BK tile at a
// time; nothing is S x S.
//
// Keys are the vector lanes of S, P, dP, dS, dk^T and dv^T; head channels
// are the lanes of dq. Every product is one micro-kernel (`mm`): MR rows by
// NVC vectors, each lane one FMA chain over the reduction index in order.
// So each dq element is one chain over all keys in order, each dk and dv
// element one chain over all queries in order, whatever the tiles, threads
// or layouts; the row statistics (an online softmax BK keys at a time) are
// the one thing the key tile fixes, and BK depends on the shape alone.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <xsimd/xsimd.hpp>

#include "backward_plan.h"
#include "kernel.h"
#include "pack.h"

namespace attncheck::cpu {

template <class A, class T>
struct BackwardKernel {
  using F = Kernel<A, T>;  // the forward's exp_, by_vectors, vector width
  using B = typename F::B;
  static constexpr int64_t W = F::W;
  static constexpr int64_t MR = BackwardPlan::kRows;
  static_assert(F::MR == MR, "the forward's micro-tile rows are the plan's");
  static_assert(BackwardPlan::kKeyAlign % W == 0, "key tiles hold whole vectors");

  static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
  static int64_t align(int64_t n) { return round_up(n, 64 / sizeof(T)); }

  // One (group, head)'s packed operands in the arena (offsets in T):
  // Q and dO query-major (rows padded to MR, zero); per key tile, K^T and
  // V^T as D x BK and Dv x BK blocks, and K as BK x W blocks, one per W
  // channels (key tile k0 starts at k0 * D, k0 * Dv, k0 * ldk); the row
  // statistics lse, delta. What a micro-kernel streams is contiguous.
  struct Packed {
    int64_t sq_pad, ldq, ldo, sk_pad, ldk;
    int64_t q, dout, kt, vt, k, lse, delta, total;
  };
  static Packed packed(const BackwardPlan& p) {
    Packed L{};
    L.sq_pad = round_up(p.Sq, MR);
    // Row strides off the powers of two: a 2 or 4 KiB stride puts every row
    // a micro-kernel streams in the same few L1 sets.
    auto off_pow2 = [](int64_t ld) { return ld % 32 == 0 ? ld + MR : ld; };
    L.ldq = off_pow2(round_up(p.D, MR));
    L.ldo = off_pow2(round_up(p.Dv, MR));
    L.sk_pad = p.k_tiles * p.BK;
    L.ldk = round_up(p.D, W);
    int64_t at = 0;
    auto take = [&](int64_t n) { return std::exchange(at, at + align(n)); };
    L.q = take(L.sq_pad * L.ldq);
    L.dout = take(L.sq_pad * L.ldo);
    L.kt = take(p.D * L.sk_pad);
    L.vt = take(p.Dv * L.sk_pad);
    L.k = take(L.sk_pad * L.ldk);
    L.lse = take(L.sq_pad);
    L.delta = take(L.sq_pad);
    L.total = at;
    return L;
  }

  // One thread's scratch: the S/P and dP/dS tiles, the dq accumulator (query
  // items), the dk^T and dv^T accumulators (key items), out's rows and the
  // running max and sum (query items), position offsets.
  struct Scratch {
    int64_t s, dp, dq, dkt, dvt, o, m, l, off, total;
  };
  static Scratch scratch(const BackwardPlan& p) {
    const Packed P = packed(p);
    Scratch L{};
    int64_t at = 0;
    auto take = [&](int64_t n) { return std::exchange(at, at + align(n)); };
    L.s = take(p.BQ * p.BK);
    L.dp = take(p.BQ * p.BK);
    L.dq = take(p.BQ * P.ldk);
    L.dkt = take(P.ldq * p.BK);
    L.dvt = take(P.ldo * p.BK);
    L.o = take(p.BQ * P.ldo);
    L.m = take(p.BQ);
    L.l = take(p.BQ);
    L.off = take(std::max(p.Sq, p.Sk) * ((sizeof(int64_t) + sizeof(T) - 1) / sizeof(T)));
    L.total = at;
    return L;
  }

  // C[r][v] (+)= post * sum_{t < n} a[r*a_rs + t*a_ts] * b[t*ldb + v*ldv] for
  // MR rows r and NVC vectors v: a broadcast, b a vector, one FMA chain per
  // lane with t in order (then one multiply by post, exact when post is 1).
  template <int NVC, bool ACC>
  ATTNCHECK_CPU_NOINLINE static void mm_tile(const T* a, int64_t a_rs, int64_t a_ts, int64_t n,
                                             const T* b, int64_t ldb, int64_t ldv, T* c,
                                             int64_t ldc, T post) {
    B acc[MR][NVC];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < NVC; ++v)
        acc[r][v] = ACC ? B::load_aligned(c + r * ldc + v * W) : B(T(0));
    for (int64_t t = 0; t < n; ++t) {
      B bv[NVC];
#pragma GCC unroll 8
      for (int v = 0; v < NVC; ++v) bv[v] = B::load_aligned(b + t * ldb + v * ldv);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const B ab(a[r * a_rs + t * a_ts]);
#pragma GCC unroll 8
        for (int v = 0; v < NVC; ++v) acc[r][v] = xsimd::fma(ab, bv[v], acc[r][v]);
      }
    }
    const B ps(post);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < NVC; ++v) (acc[r][v] * ps).store_aligned(c + r * ldc + v * W);
  }

  // The product over `rows` (a multiple of MR) rows and nvec vectors.
  template <bool ACC>
  static void mm(int64_t rows, int64_t nvec, const T* a, int64_t a_rs, int64_t a_ts, int64_t n,
                 const T* b, int64_t ldb, T* c, int64_t ldc, T post = T(1), int64_t ldv = W) {
    for (int64_t r0 = 0; r0 < rows; r0 += MR)
      F::by_vectors(nvec, [&](auto nv, int64_t v0) {
        mm_tile<decltype(nv)::value, ACC>(a + r0 * a_rs, a_rs, a_ts, n, b + v0 * ldv, ldb, ldv,
                                          c + r0 * ldc + v0 * W, ldc, post);
      });
  }

  // Across the lanes, in lane order (a fixed order per instruction set).
  static T lanes_sum(const B& x) {
    alignas(64) T t[W];
    x.store_aligned(t);
    T acc = t[0];
    for (int64_t i = 1; i < W; ++i) acc += t[i];
    return acc;
  }
  static T lanes_max(const B& x) {
    alignas(64) T t[W];
    x.store_aligned(t);
    return *std::max_element(t, t + W);
  }

  static bool finite(T x) { return std::fabs(x) <= std::numeric_limits<T>::max(); }

  // The packed operands of (group, head) gh: every element read once
  // through its view's strides; padding zero.
  static void pack(const BackwardPlan& p, int64_t gh, void* arena, void* workspace) {
    const Packed L = packed(p);
    T* base = static_cast<T*>(arena) + gh * L.total;
    std::fill(base, base + L.total, T(0));
    int64_t* off = reinterpret_cast<int64_t*>(static_cast<T*>(workspace) + scratch(p).off);
    const int64_t g = gh / p.heads, h = gh % p.heads, es = storage_size(p.storage);
    auto take = [&](const View& v, int64_t pos0, int64_t n, T* dst, int64_t dst_pos, int64_t dst_ch,
                    int64_t first, int64_t nch) {
      for (int64_t i = 0; i < n; ++i) off[i] = v.position.offset(pos0 + i);
      gather_view<A>(dst, dst_pos, dst_ch, p.storage, v.base + v.group.offset(g) * es, off, n,
                     v.channel_stride, first, nch);
    };
    take(p.q, 0, p.Sq, base + L.q, L.ldq, 1, h * p.D, p.D);
    take(p.dout, 0, p.Sq, base + L.dout, L.ldo, 1, h * p.Dv, p.Dv);
    for (int64_t k0 = 0; k0 < p.Sk; k0 += p.BK) {
      const int64_t nk = std::min(p.BK, p.Sk - k0);
      take(p.k, k0, nk, base + L.kt + k0 * p.D, 1, p.BK, h * p.D, p.D);
      take(p.v, k0, nk, base + L.vt + k0 * p.Dv, 1, p.BK, h * p.Dv, p.Dv);
      for (int64_t d0 = 0; d0 < p.D; d0 += W)
        take(p.k, k0, nk, base + L.k + k0 * L.ldk + d0 * p.BK, W, 1, h * p.D + d0,
             std::min(W, p.D - d0));
    }
  }

  // S = scale Q_i K_j^T and P = exp(S - lse) for rows q0.. (rows, a
  // multiple of MR) and keys k0.. (nvk vectors), into s (row length BK).
  static void probabilities(const BackwardPlan& p, const Packed& L, const T* base, int64_t q0,
                            int64_t rows, int64_t k0, int64_t nvk, T* s) {
    mm<false>(rows, nvk, base + L.q + q0 * L.ldq, L.ldq, 1, p.D, base + L.kt + k0 * p.D, p.BK, s,
              p.BK, static_cast<T>(p.scale));
    const T* lse = base + L.lse + q0;
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t c = 0; c < nvk; ++c) {
        T* x = s + i * p.BK + c * W;
        F::exp_(B::load_aligned(x) - B(lse[i])).store_aligned(x);
      }
  }

  // dS = P (dO_i V_j^T - delta) into dp (row length BK).
  static void score_gradient(const BackwardPlan& p, const Packed& L, const T* base, int64_t q0,
                             int64_t rows, int64_t k0, int64_t nvk, const T* s, T* dp) {
    mm<false>(rows, nvk, base + L.dout + q0 * L.ldo, L.ldo, 1, p.Dv, base + L.vt + k0 * p.Dv, p.BK,
              dp, p.BK);
    const T* delta = base + L.delta + q0;
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t c = 0; c < nvk; ++c) {
        const int64_t at = i * p.BK + c * W;
        (B::load_aligned(s + at) * (B::load_aligned(dp + at) - B(delta[i]))).store_aligned(dp + at);
      }
  }

  // Query tile (gh, i): lse and delta of its rows, then dq.
  ATTNCHECK_CPU_FLATTEN static bool query_item(const BackwardPlan& p, int64_t item, void* arena,
                                               void* workspace) {
    const Packed L = packed(p);
    const Scratch X = scratch(p);
    const int64_t gh = item / p.q_tiles, qt = item % p.q_tiles;
    const int64_t g = gh / p.heads, h = gh % p.heads, es = storage_size(p.storage);
    T* base = static_cast<T*>(arena) + gh * L.total;
    T* ws = static_cast<T*>(workspace);
    T *s = ws + X.s, *dp = ws + X.dp, *dq = ws + X.dq, *o = ws + X.o, *m = ws + X.m, *l = ws + X.l;
    int64_t* off = reinterpret_cast<int64_t*>(ws + X.off);
    const int64_t q0 = qt * p.BQ, nq = std::min(p.BQ, p.Sq - q0), rows = round_up(nq, MR);
    if (!(std::fabs(p.scale) <= static_cast<double>(std::numeric_limits<T>::max()))) return false;

    // delta = sum_e dO * out, in order over e, from out as the forward wrote it.
    for (int64_t i = 0; i < nq; ++i) off[i] = p.out.position.offset(q0 + i);
    gather_view<A>(o, L.ldo, int64_t{1}, p.storage, p.out.base + p.out.group.offset(g) * es, off,
                   nq, p.out.channel_stride, h * p.Dv, p.Dv);
    for (int64_t i = 0; i < nq; ++i) {
      const T* d = base + L.dout + (q0 + i) * L.ldo;
      T acc = 0;
      for (int64_t e = 0; e < p.Dv; ++e) acc = std::fma(d[e], o[i * L.ldo + e], acc);
      base[L.delta + q0 + i] = acc;
    }

    // Row statistics: an online softmax over the keys, BK at a time; every
    // max and sum over a tile runs in vector lanes, then across them.
    std::fill(m, m + nq, -std::numeric_limits<T>::infinity());
    std::fill(l, l + nq, T(0));
    alignas(64) T iota[W];
    for (int64_t t = 0; t < W; ++t) iota[t] = static_cast<T>(t);
    const B lane = B::load_aligned(iota);
    for (int64_t k0 = 0; k0 < p.Sk; k0 += p.BK) {
      const int64_t nk = std::min(p.BK, p.Sk - k0), nvk = (nk + W - 1) / W;
      mm<false>(rows, nvk, base + L.q + q0 * L.ldq, L.ldq, 1, p.D, base + L.kt + k0 * p.D, p.BK, s,
                p.BK, static_cast<T>(p.scale));
      for (int64_t i = 0; i < nq; ++i) {
        const T* row = s + i * p.BK;
        B mx(-std::numeric_limits<T>::infinity());
        auto ok = lane == lane;
        for (int64_t c = 0; c < nvk; ++c) {
          const auto valid = lane < B(static_cast<T>(nk - c * W));
          const B x = B::load_aligned(row + c * W);
          ok = ok &
               (xsimd::abs(xsimd::select(valid, x, B(T(0)))) <= B(std::numeric_limits<T>::max()));
          mx = xsimd::max(mx, xsimd::select(valid, x, B(-std::numeric_limits<T>::infinity())));
        }
        if (!xsimd::all(ok)) return false;  // a logit not finite in T
        const T m_new = std::max(m[i], lanes_max(mx));
        B sum(T(0));
        for (int64_t c = 0; c < nvk; ++c) {
          const auto valid = lane < B(static_cast<T>(nk - c * W));
          sum += xsimd::select(valid, F::exp_(B::load_aligned(row + c * W) - B(m_new)), B(T(0)));
        }
        l[i] = l[i] * std::exp(m[i] - m_new) + lanes_sum(sum);
        m[i] = m_new;
      }
    }
    for (int64_t i = 0; i < nq; ++i) {
      const T lse = m[i] + std::log(l[i]);
      if (!finite(lse)) return false;
      base[L.lse + q0 + i] = lse;
    }

    // dq = scale sum_j dS_ij K_j, one chain over all keys per element.
    const int64_t nvd = L.ldk / W;
    std::fill(dq, dq + rows * L.ldk, T(0));
    for (int64_t k0 = 0; k0 < p.Sk; k0 += p.BK) {
      const int64_t nk = std::min(p.BK, p.Sk - k0), nvk = (nk + W - 1) / W;
      probabilities(p, L, base, q0, rows, k0, nvk, s);
      score_gradient(p, L, base, q0, rows, k0, nvk, s, dp);
      mm<true>(rows, nvd, dp, p.BK, 1, nk, base + L.k + k0 * L.ldk, W, dq, L.ldk, T(1), p.BK * W);
    }
    const B sc(static_cast<T>(p.scale));
    for (int64_t i = 0; i < nq; ++i)
      for (int64_t c = 0; c < nvd; ++c)
        (B::load_aligned(dq + i * L.ldk + c * W) * sc).store_aligned(dq + i * L.ldk + c * W);
    for (int64_t i = 0; i < nq; ++i) off[i] = p.dq.position.offset(q0 + i);
    scatter_view<A>(p.storage, p.dq.base + p.dq.group.offset(g) * es, off, nq, p.dq.channel_stride,
                    h * p.D, p.D, dq, L.ldk, int64_t{1});
    return true;
  }

  // Key tile (gh, j): dv^T and dk^T, one chain over all queries per element.
  ATTNCHECK_CPU_FLATTEN static void key_item(const BackwardPlan& p, int64_t item, void* arena,
                                             void* workspace) {
    const Packed L = packed(p);
    const Scratch X = scratch(p);
    const int64_t gh = item / p.k_tiles, kt = item % p.k_tiles;
    const int64_t g = gh / p.heads, h = gh % p.heads, es = storage_size(p.storage);
    const T* base = static_cast<const T*>(arena) + gh * L.total;
    T* ws = static_cast<T*>(workspace);
    T *s = ws + X.s, *dp = ws + X.dp, *dkt = ws + X.dkt, *dvt = ws + X.dvt;
    int64_t* off = reinterpret_cast<int64_t*>(ws + X.off);
    const int64_t k0 = kt * p.BK, nk = std::min(p.BK, p.Sk - k0), nvk = (nk + W - 1) / W;
    std::fill(dkt, dkt + L.ldq * p.BK, T(0));
    std::fill(dvt, dvt + L.ldo * p.BK, T(0));
    for (int64_t q0 = 0; q0 < p.Sq; q0 += p.BQ) {
      const int64_t nq = std::min(p.BQ, p.Sq - q0), rows = round_up(nq, MR);
      probabilities(p, L, base, q0, rows, k0, nvk, s);
      // dv^T[e][r] += sum_p dO[p][e] P[p][r]
      mm<true>(L.ldo, nvk, base + L.dout + q0 * L.ldo, 1, L.ldo, nq, s, p.BK, dvt, p.BK);
      score_gradient(p, L, base, q0, rows, k0, nvk, s, dp);
      // dk^T[d][r] += sum_p Q[p][d] dS[p][r]
      mm<true>(L.ldq, nvk, base + L.q + q0 * L.ldq, 1, L.ldq, nq, dp, p.BK, dkt, p.BK);
    }
    const B sc(static_cast<T>(p.scale));
    for (int64_t d = 0; d < p.D; ++d)
      for (int64_t c = 0; c < nvk; ++c)
        (B::load_aligned(dkt + d * p.BK + c * W) * sc).store_aligned(dkt + d * p.BK + c * W);
    for (int64_t j = 0; j < nk; ++j) off[j] = p.dk.position.offset(k0 + j);
    scatter_view<A>(p.storage, p.dk.base + p.dk.group.offset(g) * es, off, nk, p.dk.channel_stride,
                    h * p.D, p.D, dkt, int64_t{1}, p.BK);
    for (int64_t j = 0; j < nk; ++j) off[j] = p.dv.position.offset(k0 + j);
    scatter_view<A>(p.storage, p.dv.base + p.dv.group.offset(g) * es, off, nk, p.dv.channel_stride,
                    h * p.Dv, p.Dv, dvt, int64_t{1}, p.BK);
  }
};

// The BackwardKernels table of one architecture.
template <class A>
const BackwardKernels& make_backward_kernels(const char* name) {
  using K32 = BackwardKernel<A, float>;
  using K64 = BackwardKernel<A, double>;
  static const BackwardKernels table = {
      name,
      [](const BackwardPlan& p, bool f32) {
        return f32 ? K32::packed(p).total * p.gh() * sizeof(float)
                   : K64::packed(p).total * p.gh() * sizeof(double);
      },
      [](const BackwardPlan& p, bool f32) {
        return f32 ? K32::scratch(p).total * sizeof(float) : K64::scratch(p).total * sizeof(double);
      },
      [](const BackwardPlan& p, bool f32, int64_t gh, void* arena, void* ws) {
        f32 ? K32::pack(p, gh, arena, ws) : K64::pack(p, gh, arena, ws);
      },
      [](const BackwardPlan& p, bool f32, int64_t item, void* arena, void* ws) {
        return f32 ? K32::query_item(p, item, arena, ws) : K64::query_item(p, item, arena, ws);
      },
      [](const BackwardPlan& p, bool f32, int64_t item, void* arena, void* ws) {
        f32 ? K32::key_item(p, item, arena, ws) : K64::key_item(p, item, arena, ws);
      },
  };
  return table;
}

}  // namespace attncheck::cpu
