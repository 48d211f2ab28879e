// The flash-attention work item, written once over an xsimd architecture A
// and a compute type T, and instantiated per architecture by the
// kernel_<arch>.cpp translation units (each compiled with its own -m flags).
//
// One work item is (group, head, query tile of BQ rows). It packs the query
// tile once, then walks the keys BK at a time: packs that K and V tile,
// computes the BQ x BK logits with a register-blocked micro-kernel, updates
// the running max m and sum l of every row (online softmax), and accumulates
// P V into a BQ x Dv tile, rescaled by exp(m_old - m_new). The S x S score
// matrix never exists; the workspace is O(BQ*(D+Dv) + BK*(D+Dv) + BQ*BK).
//
// Determinism: every output element is a fixed sequence of operations on
// packed values (the dot product runs d = 0..D-1 in one accumulator, the key
// tiles run in order, the row sums use a fixed reduction tree), so it does
// not depend on layouts, on which thread ran it, or on where in a micro-tile
// its row fell.
#pragma once

#include "pack.h"
#include "plan.h"

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace attncheck::cpu {

template <class A, class T>
struct Kernel {
  using B = xsimd::batch<T, A>;
  static constexpr int64_t W = B::size;
  // Micro-tile: MR query rows x NV vectors. 32 vector registers (AVX-512)
  // hold 6 x 4 accumulators plus operands; 16 (AVX2, SSE2) hold 6 x 2.
  static constexpr int64_t MR = 6;
  static constexpr int NV = W * sizeof(T) >= 64 ? 4 : 2;

  static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

  // Workspace layout (in T, each block 64-byte aligned).
  struct Layout {
    int64_t bq_pad, bk_pad, dv_pad;
    int64_t q, k, v, s, o, m, l, alpha, qoff, koff;
    int64_t total;
  };

  static Layout layout(const Plan& p) {
    Layout L{};
    L.bq_pad = round_up(p.BQ, MR);
    L.bk_pad = round_up(p.BK, W);
    L.dv_pad = round_up(p.Dv, W);
    const int64_t a = 64 / sizeof(T);
    int64_t at = 0;
    auto take = [&](int64_t n) {
      int64_t here = at;
      at += round_up(n, a);
      return here;
    };
    L.q = take(L.bq_pad * p.D);
    L.k = take(p.D * L.bk_pad);
    L.v = take(L.bk_pad * L.dv_pad);
    L.s = take(L.bq_pad * L.bk_pad);
    L.o = take(L.bq_pad * L.dv_pad);
    L.m = take(L.bq_pad);
    L.l = take(L.bq_pad);
    L.alpha = take(L.bq_pad);
    // Element offsets of positions, as int64 (counted in T-sized slots).
    const int64_t per = (sizeof(int64_t) + sizeof(T) - 1) / sizeof(T);
    L.qoff = take(L.bq_pad * per);
    L.koff = take(L.bk_pad * per);
    L.total = at;
    return L;
  }

  static size_t workspace_bytes(const Plan& p) { return layout(p).total * sizeof(T); }

  // S[r][j] = scale * sum_d q[r][d] k[d][j] for MR rows and NVC vectors of keys.
  template <int NVC>
  ATTNCHECK_CPU_NOINLINE static void qk_tile(const T* q, int64_t D, const T* k, int64_t ldk, T* s, int64_t lds,
                      T scale) {
    B acc[MR][NVC];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < NVC; ++v) acc[r][v] = B(T(0));
    for (int64_t d = 0; d < D; ++d) {
      B kv[NVC];
#pragma GCC unroll 8
      for (int v = 0; v < NVC; ++v) kv[v] = B::load_aligned(k + d * ldk + v * W);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const B qb(q[r * D + d]);
#pragma GCC unroll 8
        for (int v = 0; v < NVC; ++v) acc[r][v] = xsimd::fma(qb, kv[v], acc[r][v]);
      }
    }
    const B sc(scale);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < NVC; ++v) (acc[r][v] * sc).store_aligned(s + r * lds + v * W);
  }

  // O[r][:] = alpha[r] * O[r][:] + sum_{j < nk} P[r][j] V[j][:] for MR rows
  // and NVC vectors of value channels.
  template <int NVC>
  ATTNCHECK_CPU_NOINLINE static void pv_tile(const T* pm, int64_t ldp, int64_t nk, const T* v, int64_t ldv, T* o,
                      int64_t ldo, const T* alpha) {
    B acc[MR][NVC];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const B a(alpha[r]);
#pragma GCC unroll 8
      for (int c = 0; c < NVC; ++c) acc[r][c] = B::load_aligned(o + r * ldo + c * W) * a;
    }
    for (int64_t j = 0; j < nk; ++j) {
      B vv[NVC];
#pragma GCC unroll 8
      for (int c = 0; c < NVC; ++c) vv[c] = B::load_aligned(v + j * ldv + c * W);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const B pb(pm[r * ldp + j]);
#pragma GCC unroll 8
        for (int c = 0; c < NVC; ++c) acc[r][c] = xsimd::fma(pb, vv[c], acc[r][c]);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int c = 0; c < NVC; ++c) acc[r][c].store_aligned(o + r * ldo + c * W);
  }

  template <class F>
  static void by_vectors(int64_t nvec, F&& f) {
    // Calls f.template operator()<n>(offset_in_vectors) over nvec vectors in
    // chunks of NV, the last chunk smaller.
    int64_t c = 0;
    for (; c + NV <= nvec; c += NV) f(std::integral_constant<int, NV>{}, c);
    switch (nvec - c) {
      case 0:
        break;
      case 1:
        f(std::integral_constant<int, 1>{}, c);
        break;
      case 2:
        f(std::integral_constant<int, 2>{}, c);
        break;
      case 3:
        if constexpr (NV > 3) f(std::integral_constant<int, 3>{}, c);
        break;
    }
  }

  // flatten: every call below is inlined (see pack.h for why).
  ATTNCHECK_CPU_FLATTEN static bool run_item(const Plan& p, int64_t item, void* workspace) {
    const Layout L = layout(p);
    T* ws = static_cast<T*>(workspace);
    T* Qp = ws + L.q;
    T* Kp = ws + L.k;
    T* Vp = ws + L.v;
    T* S = ws + L.s;
    T* O = ws + L.o;
    T* m = ws + L.m;
    T* l = ws + L.l;
    T* alpha = ws + L.alpha;
    int64_t* qoff = reinterpret_cast<int64_t*>(ws + L.qoff);
    int64_t* koff = reinterpret_cast<int64_t*>(ws + L.koff);

    const int64_t qt = item % p.q_tiles;
    const int64_t gh = item / p.q_tiles;
    const int64_t h = gh % p.heads;
    const int64_t g = gh / p.heads;
    const int64_t D = p.D, Dv = p.Dv;
    const int64_t q0 = qt * p.BQ;
    const int64_t nq = std::min(p.BQ, p.Sq - q0);
    const int64_t nq_pad = round_up(nq, MR);
    const int64_t dv_vec = L.dv_pad / W;
    const T scale = static_cast<T>(p.scale);
    const T neg_inf = -std::numeric_limits<T>::infinity();
    bool finite = true;

    // Query tile: rows q0..q0+nq, zero rows up to nq_pad.
    const char* qbase = p.q.base + p.q.group.offset(g) * storage_size(p.storage);
    for (int64_t i = 0; i < nq; ++i) qoff[i] = p.q.position.offset(q0 + i);
    gather_view<A>(Qp, D, int64_t{1}, p.storage, qbase, qoff, nq, p.q.channel_stride, h * D, D);
    std::fill(Qp + nq * D, Qp + nq_pad * D, T(0));
    std::fill(O, O + nq_pad * L.dv_pad, T(0));
    std::fill(m, m + nq_pad, neg_inf);
    std::fill(l, l + nq_pad, T(0));

    const char* kbase = p.k.base + p.k.group.offset(g) * storage_size(p.storage);
    const char* vbase = p.v.base + p.v.group.offset(g) * storage_size(p.storage);
    for (int64_t k0 = 0; k0 < p.Sk; k0 += p.BK) {
      const int64_t nk = std::min(p.BK, p.Sk - k0);
      const int64_t nk_pad = round_up(nk, W);
      const int64_t nk_vec = nk_pad / W;
      // K tile transposed (d-major, keys contiguous), padding keys zero; V
      // tile key-major, padding channels zero. K and V may be different views
      // of the same memory: each is read through its own strides.
      for (int64_t j = 0; j < nk; ++j) koff[j] = p.k.position.offset(k0 + j);
      gather_view<A>(Kp, int64_t{1}, nk_pad, p.storage, kbase, koff, nk, p.k.channel_stride, h * D,
                  D);
      if (nk_pad > nk)
        for (int64_t d = 0; d < D; ++d) std::fill(Kp + d * nk_pad + nk, Kp + (d + 1) * nk_pad, T(0));
      for (int64_t j = 0; j < nk; ++j) koff[j] = p.v.position.offset(k0 + j);
      gather_view<A>(Vp, L.dv_pad, int64_t{1}, p.storage, vbase, koff, nk, p.v.channel_stride,
                  h * Dv, Dv);
      if (L.dv_pad > Dv)
        for (int64_t j = 0; j < nk; ++j) std::fill(Vp + j * L.dv_pad + Dv, Vp + (j + 1) * L.dv_pad, T(0));

      // Logits.
      for (int64_t r0 = 0; r0 < nq_pad; r0 += MR)
        by_vectors(nk_vec, [&](auto nv, int64_t c) {
          qk_tile<decltype(nv)::value>(Qp + r0 * D, D, Kp + c * W, nk_pad, S + r0 * L.bk_pad + c * W,
                                       L.bk_pad, scale);
        });

      // Online softmax, row by row.
      for (int64_t r = 0; r < nq_pad; ++r) {
        T* row = S + r * L.bk_pad;
        for (int64_t j = nk; j < nk_pad; ++j) row[j] = neg_inf;
        B mx = B::load_aligned(row);
        for (int64_t c = 1; c < nk_vec; ++c) mx = xsimd::max(mx, B::load_aligned(row + c * W));
        alignas(64) T lanes[W];
        mx.store_aligned(lanes);
        T mt = lanes[0];
        for (int64_t i = 1; i < W; ++i) mt = std::max(mt, lanes[i]);
        const T m_new = std::max(m[r], mt);
        // A logit that overflowed T (or a NaN) breaks the max subtraction;
        // the caller recomputes in double.
        if (!(std::abs(m_new) <= std::numeric_limits<T>::max())) finite = false;
        alpha[r] = std::exp(m[r] - m_new);
        const B mb(m_new);
        B sum(T(0));
        for (int64_t c = 0; c < nk_vec; ++c) {
          const B e = xsimd::exp(B::load_aligned(row + c * W) - mb);
          e.store_aligned(row + c * W);
          sum += e;
        }
        l[r] = l[r] * alpha[r] + xsimd::hadd(sum);
        if (!(l[r] <= std::numeric_limits<T>::max())) finite = false;  // a NaN logit
        m[r] = m_new;
      }
      if (!finite) return false;

      // O = alpha O + P V.
      for (int64_t r0 = 0; r0 < nq_pad; r0 += MR)
        by_vectors(dv_vec, [&](auto nv, int64_t c) {
          pv_tile<decltype(nv)::value>(S + r0 * L.bk_pad, L.bk_pad, nk, Vp + c * W, L.dv_pad,
                                       O + r0 * L.dv_pad + c * W, L.dv_pad, alpha + r0);
        });
    }

    // out = O / l, written through out's strides.
    for (int64_t i = 0; i < nq; ++i) {
      const B li(l[i]);
      T* o = O + i * L.dv_pad;
      for (int64_t c = 0; c < dv_vec; ++c) (B::load_aligned(o + c * W) / li).store_aligned(o + c * W);
    }
    for (int64_t i = 0; i < nq; ++i) qoff[i] = p.out.position.offset(q0 + i);
    scatter_view<A>(p.storage, p.out.base + p.out.group.offset(g) * storage_size(p.storage), qoff,
                    nq, p.out.channel_stride, h * Dv, Dv, O, L.dv_pad);
    return true;
  }
};

// The ArchKernels table of one architecture.
template <class A>
const ArchKernels& make_kernels(const char* name) {
  static const ArchKernels table = {
      name,
      [](const Plan& p, bool f32) {
        return f32 ? Kernel<A, float>::workspace_bytes(p) : Kernel<A, double>::workspace_bytes(p);
      },
      [](const Plan& p, bool f32, int64_t item, void* ws) {
        return f32 ? Kernel<A, float>::run_item(p, item, ws)
                   : Kernel<A, double>::run_item(p, item, ws);
      },
      []() { return Kernel<A, float>::MR; },
  };
  return table;
}

}  // namespace attncheck::cpu
