// The flash-attention work item, written once over an xsimd architecture A
// and a compute type T, and instantiated per architecture by the
// kernel_<arch>.cpp translation units (each compiled with its own -m flags).
//
// One work item is (group, head, query tile of BQ queries). It packs the
// query tile once, then walks the keys BK at a time: packs that K and V
// tile, computes the BK x BQ logits with a register-blocked micro-kernel,
// updates the running max m and sum l of every query (online softmax), and
// accumulates V^T P^T into a Dv x BQ tile rescaled by exp(m_old - m_new).
// The S x S score matrix never exists; the workspace is
// O(BQ*(D+Dv) + BK*(D+Dv) + BQ*BK).
//
// Queries are the vector lanes: K and V are only broadcast, so their tiles
// (packed once per query tile, the repeated cost) are straight copies from
// channels-first and channels-last memory alike, with no transposes.
//
// Determinism: every output element is one lane's fixed sequence of
// operations on packed values (the dot product runs d = 0..D-1 in one FMA
// chain, the max and sum over keys run j = 0..nk-1, the key tiles run in
// order), so it does not depend on layouts, on the packed orientation of K
// and V, on which thread ran it, or on which lane or micro-tile it fell in.
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
  // Micro-tile: MR rows (keys in Q K^T, value channels in P V) x NV vectors
  // of queries. 32 vector registers (AVX-512) hold 6 x 4 accumulators plus
  // operands; 16 (AVX2, SSE2) hold 6 x 2.
  static constexpr int64_t MR = 6;
  static constexpr int NV = W * sizeof(T) >= 64 ? 4 : 2;

  static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

  // exp of x - max (<= 0, or NaN). xsimd::exp converts x / ln 2 to an
  // integer before it looks at the range, and that conversion is undefined
  // for -inf (the first tile's old maximum), NaN and huge |x| (found by the
  // attention fuzz target: UBSan float-cast-overflow). exp is exactly 0
  // below -1000 in every T, so clamping changes no result; NaN passes
  // through, as the finiteness checks need.
  static B exp_(const B& x) {
    const auto nan = xsimd::isnan(x);  // not x != x: AVX-512 compares ordered (NaN != NaN is false)
    const B y = xsimd::select(nan, B(T(0)), xsimd::min(xsimd::max(x, B(T(-1000))), B(T(80))));
    return xsimd::select(nan, x, xsimd::exp(y));
  }

  // Workspace layout (in T, each block 64-byte aligned). Queries are the
  // vector lanes everywhere: Q^T is D x bq_pad, S^T (then P^T) bk_pad x
  // bq_pad, O^T dv_pad x bq_pad. K and V are only ever broadcast, so they
  // are packed in whichever orientation their source reads fastest.
  struct Layout {
    int64_t bq_pad, bk_pad, dv_pad;
    int64_t q, k, v, s, o, m, l, alpha, qoff, koff;
    int64_t total;
  };

  static Layout layout(const Plan& p) {
    Layout L{};
    L.bq_pad = round_up(p.BQ, W);
    L.bk_pad = round_up(p.BK, MR);
    L.dv_pad = round_up(p.Dv, MR);
    const int64_t a = 64 / sizeof(T);
    int64_t at = 0;
    auto take = [&](int64_t n) {
      int64_t here = at;
      at += round_up(n, a);
      return here;
    };
    L.q = take(p.D * L.bq_pad);
    L.k = take(L.bk_pad * p.D);
    L.v = take(L.bk_pad * L.dv_pad);
    L.s = take(L.bk_pad * L.bq_pad);
    L.o = take(L.dv_pad * L.bq_pad);
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

  // S^T[r][i] = scale * sum_d K[r][d] Q^T[d][i] for MR keys r and NVC
  // vectors of queries i. K[r][d] is at k[r * ks_r + d * ks_d]. Each lane
  // runs d = 0..D-1 through one FMA chain, whatever the strides.
  template <int NVC>
  ATTNCHECK_CPU_NOINLINE static void qk_tile(const T* k, int64_t ks_r, int64_t ks_d, int64_t D,
                                             const T* qt, int64_t ldq, T* st, int64_t lds, T scale) {
    B acc[MR][NVC];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < NVC; ++v) acc[r][v] = B(T(0));
    const T* kr[MR];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) kr[r] = k + r * ks_r;
    for (int64_t d = 0; d < D; ++d) {
      B qv[NVC];
#pragma GCC unroll 8
      for (int v = 0; v < NVC; ++v) qv[v] = B::load_aligned(qt + d * ldq + v * W);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const B kb(kr[r][d * ks_d]);
#pragma GCC unroll 8
        for (int v = 0; v < NVC; ++v) acc[r][v] = xsimd::fma(kb, qv[v], acc[r][v]);
      }
    }
    const B sc(scale);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < NVC; ++v) (acc[r][v] * sc).store_aligned(st + r * lds + v * W);
  }

  // O^T[r][i] = alpha[i] O^T[r][i] + sum_{j < nk} V[j][r] P^T[j][i] for MR
  // value channels r and NVC vectors of queries i; V[j][r] is at
  // v[j * vs_j + r * vs_r]. One FMA chain per lane, j in order.
  template <int NVC>
  ATTNCHECK_CPU_NOINLINE static void pv_tile(const T* v, int64_t vs_j, int64_t vs_r, int64_t nk,
                                             const T* pt, int64_t ldp, T* ot, int64_t ldo,
                                             const T* alpha) {
    B acc[MR][NVC];
    B al[NVC];
#pragma GCC unroll 8
    for (int c = 0; c < NVC; ++c) al[c] = B::load_aligned(alpha + c * W);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int c = 0; c < NVC; ++c) acc[r][c] = B::load_aligned(ot + r * ldo + c * W) * al[c];
    const T* vr[MR];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) vr[r] = v + r * vs_r;
    for (int64_t j = 0; j < nk; ++j) {
      B pv[NVC];
#pragma GCC unroll 8
      for (int c = 0; c < NVC; ++c) pv[c] = B::load_aligned(pt + j * ldp + c * W);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const B vb(vr[r][j * vs_j]);
#pragma GCC unroll 8
        for (int c = 0; c < NVC; ++c) acc[r][c] = xsimd::fma(vb, pv[c], acc[r][c]);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int c = 0; c < NVC; ++c) acc[r][c].store_aligned(ot + r * ldo + c * W);
  }

  template <class F>
  static void by_vectors(int64_t nvec, F&& f) {
    // Calls f(integral_constant<n>, first_vector) over nvec vectors in
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

  static bool all_finite(const B& x) {
    return xsimd::all(xsimd::abs(x) <= B(std::numeric_limits<T>::max()));
  }

  ATTNCHECK_CPU_FLATTEN static bool run_item(const Plan& p, int64_t item, void* workspace) {
    const Layout L = layout(p);
    T* ws = static_cast<T*>(workspace);
    T* Qt = ws + L.q;
    T* Kp = ws + L.k;
    T* Vp = ws + L.v;
    T* St = ws + L.s;
    T* Ot = ws + L.o;
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
    const int64_t ld = L.bq_pad;  // row length of Q^T, S^T, O^T
    const int64_t q0 = qt * p.BQ;
    const int64_t nq = std::min(p.BQ, p.Sq - q0);
    const int64_t nq_pad = round_up(nq, W);
    const int64_t nq_vec = nq_pad / W;
    // A scale beyond T's range (any finite double is legal) cannot be
    // converted to T (undefined in C++): treat it as non-finite logits, so
    // the caller recomputes in double.
    if (!(std::fabs(p.scale) <= static_cast<double>(std::numeric_limits<T>::max()))) return false;
    const T scale = static_cast<T>(p.scale);
    const T neg_inf = -std::numeric_limits<T>::infinity();
    const int64_t es = storage_size(p.storage);
    bool finite = true;

    // Q^T: channel d's row holds queries q0..q0+nq, then zeros to nq_pad.
    const char* qbase = p.q.base + p.q.group.offset(g) * es;
    for (int64_t i = 0; i < nq; ++i) qoff[i] = p.q.position.offset(q0 + i);
    gather_view<A>(Qt, int64_t{1}, ld, p.storage, qbase, qoff, nq, p.q.channel_stride, h * D, D);
    if (nq_pad > nq)
      for (int64_t d = 0; d < D; ++d) std::fill(Qt + d * ld + nq, Qt + d * ld + nq_pad, T(0));
    for (int64_t e = 0; e < L.dv_pad; ++e) std::fill(Ot + e * ld, Ot + e * ld + nq_pad, T(0));
    std::fill(m, m + nq_pad, neg_inf);
    std::fill(l, l + nq_pad, T(0));

    const char* kbase = p.k.base + p.k.group.offset(g) * es;
    const char* vbase = p.v.base + p.v.group.offset(g) * es;
    for (int64_t k0 = 0; k0 < p.Sk; k0 += p.BK) {
      const int64_t nk = std::min(p.BK, p.Sk - k0);
      const int64_t nk_pad = round_up(nk, MR);
      // K tile, nk_pad x D (padding keys zero), and V tile, nk x dv_pad
      // (padding channels zero), each in its source's orientation. K and V
      // may be views of the same memory; each is read through its strides.
      int64_t ks_r, ks_d, vs_j, vs_r;
      for (int64_t j = 0; j < nk; ++j) koff[j] = p.k.position.offset(k0 + j);
      if (p.k_key_major) {
        ks_r = D, ks_d = 1;
        std::fill(Kp + nk * D, Kp + nk_pad * D, T(0));
      } else {
        ks_r = 1, ks_d = nk_pad;
        if (nk_pad > nk)
          for (int64_t d = 0; d < D; ++d) std::fill(Kp + d * nk_pad + nk, Kp + d * nk_pad + nk_pad, T(0));
      }
      gather_view<A>(Kp, ks_r, ks_d, p.storage, kbase, koff, nk, p.k.channel_stride, h * D, D);
      for (int64_t j = 0; j < nk; ++j) koff[j] = p.v.position.offset(k0 + j);
      if (p.v_key_major) {
        vs_j = L.dv_pad, vs_r = 1;
        if (L.dv_pad > Dv)
          for (int64_t j = 0; j < nk; ++j) std::fill(Vp + j * L.dv_pad + Dv, Vp + (j + 1) * L.dv_pad, T(0));
      } else {
        vs_j = 1, vs_r = nk;
        std::fill(Vp + Dv * nk, Vp + L.dv_pad * nk, T(0));
      }
      gather_view<A>(Vp, vs_j, vs_r, p.storage, vbase, koff, nk, p.v.channel_stride, h * Dv, Dv);

      // Logits S^T, MR keys at a time.
      for (int64_t r0 = 0; r0 < nk_pad; r0 += MR)
        by_vectors(nq_vec, [&](auto nv, int64_t c) {
          qk_tile<decltype(nv)::value>(Kp + r0 * ks_r, ks_r, ks_d, D, Qt + c * W, ld,
                                       St + r0 * ld + c * W, ld, scale);
        });

      // Online softmax, W queries at a time; every reduction over keys runs
      // j = 0..nk-1 in order, in its own lane.
      for (int64_t c = 0; c < nq_vec; ++c) {
        T* col = St + c * W;
        B mx = B::load_aligned(col);
        for (int64_t j = 1; j < nk; ++j) mx = xsimd::max(mx, B::load_aligned(col + j * ld));
        const B m_old = B::load_aligned(m + c * W);
        const B m_new = xsimd::max(m_old, mx);
        // A logit that overflowed T (or a NaN) breaks the max subtraction;
        // the caller recomputes in double.
        if (!all_finite(m_new)) finite = false;
        const B a = exp_(m_old - m_new);
        B sum(T(0));
        for (int64_t j = 0; j < nk; ++j) {
          const B e = exp_(B::load_aligned(col + j * ld) - m_new);
          e.store_aligned(col + j * ld);
          sum += e;
        }
        const B l_new = B::load_aligned(l + c * W) * a + sum;
        if (!all_finite(l_new)) finite = false;  // a NaN logit
        l_new.store_aligned(l + c * W);
        m_new.store_aligned(m + c * W);
        a.store_aligned(alpha + c * W);
      }
      if (!finite) return false;

      // O^T = alpha O^T + V^T P^T, MR value channels at a time.
      for (int64_t r0 = 0; r0 < L.dv_pad; r0 += MR)
        by_vectors(nq_vec, [&](auto nv, int64_t c) {
          pv_tile<decltype(nv)::value>(Vp + r0 * vs_r, vs_j, vs_r, nk, St + c * W, ld,
                                       Ot + r0 * ld + c * W, ld, alpha + c * W);
        });
    }

    // out = O / l, written through out's strides.
    for (int64_t c = 0; c < nq_vec; ++c) {
      const B lv = B::load_aligned(l + c * W);
      for (int64_t e = 0; e < Dv; ++e)
        (B::load_aligned(Ot + e * ld + c * W) / lv).store_aligned(Ot + e * ld + c * W);
    }
    for (int64_t i = 0; i < nq; ++i) qoff[i] = p.out.position.offset(q0 + i);
    scatter_view<A>(p.storage, p.out.base + p.out.group.offset(g) * es, qoff, nq,
                    p.out.channel_stride, h * Dv, Dv, Ot, int64_t{1}, ld);
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
      []() { return Kernel<A, float>::W * Kernel<A, float>::NV; },
  };
  return table;
}

}  // namespace attncheck::cpu
