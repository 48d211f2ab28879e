// A 16-bit (f16, bf16) attention kernel of the spec whose arithmetic is a
// recipe: which precision each sum accumulates in, in what order, where
// the probabilities are rounded. Correct recipes are the correct kernels of
// each precision contract (error_model.h), summing in different orders, for
// the false-alarm runs (checker_test.cpp, ci/false-alarms); a Bug plants one
// of the low-precision bugs real kernels ship, for the mutation tests
// (precision_mutants.cpp). Indexing is the spec's, written plainly: only the
// arithmetic varies.
#pragma once

#include "skeleton.h"  // the spec's sizes and indexing (sizes_of, index_of, packed_strides)

#include <attncheck/half.h>
#include <attncheck/plugin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

namespace precision {

enum class Contract { fused, unfused, input };

enum class Bug {
  none,
  pv_in_input,          // P.V accumulated in the input dtype (normalised weights): sums stagnate
  logits_in_input,      // q.k accumulated in the input dtype
  normaliser_in_input,  // the softmax normaliser accumulated in the input dtype
  p_rounded_twice,      // exp rounded to the input dtype, then the normalised P rounded again
  dropped_key,          // the last key left out when Sk >= 32
  zero_long,            // out = 0 when Sk >= 64
  out_through_other,    // out rounded through the other 16-bit type on its way out
  f16_overflow,         // unnormalised P.V accumulated in f16 (ggml's CPU kernel): inf past 65504
};

struct Recipe {
  Contract contract = Contract::fused;
  enum Acc { f32, f64 } acc = f32;  // accumulator (fused and unfused)
  int tile = 0;                     // fused: online softmax over key tiles of this many keys (0: one pass)
  bool reversed = false;            // sums over d and r run backwards
  bool round_p = true;              // fused: P rounded to the input dtype before P.V (else kept)
  bool ell_of_rounded = false;      // fused: the normaliser sums the rounded weights
  bool scale_after = false;         // unfused: S = bmm rounded, then S * scale rounded (else q, k
                                    // scaled by sqrt(scale) first, PyTorch's math SDPA)
  Bug bug = Bug::none;
};

struct Tensor16 {
  const DLTensor* t;
  bool bf16;
  int64_t st[5];
  char* base;
  explicit Tensor16(const DLTensor* x) : t(x), bf16(x->dtype.code == kDLBfloat) {
    mutant::packed_strides(x, st);
    if (x->strides)
      for (int d = 0; d < 5; ++d) st[d] = x->strides[d];
    base = static_cast<char*>(x->data) + x->byte_offset;
  }
  uint16_t* at(const int64_t i[5]) const {
    int64_t off = 0;
    for (int d = 0; d < 5; ++d) off += i[d] * st[d];
    return reinterpret_cast<uint16_t*>(base) + off;
  }
  float get(const int64_t i[5]) const {
    return bf16 ? attncheck::bf16_to_float(*at(i)) : attncheck::half_to_float(*at(i));
  }
  void set(const int64_t i[5], float x) const {
    *at(i) = bf16 ? attncheck::float_to_bf16(x) : attncheck::float_to_half(x);
  }
};

inline float round16(bool bf16, float x) {
  return bf16 ? attncheck::bf16_to_float(attncheck::float_to_bf16(x))
              : attncheck::half_to_float(attncheck::float_to_half(x));
}

// The (B, C, T, H, W) index of channel c at position p of group n.
inline void index_of(const DLTensor* t, attncheck_axes axes, int64_t n, int64_t c, int64_t p, int64_t o[5]) {
  mutant::index_of(t, axes, n, c, p, false, o);
}

inline attncheck_status attention(const Recipe& rc, const attncheck_attention* call, char* message, size_t size) {
  const DLTensor *q = call->q, *k = call->k, *v = call->v, *o = call->out;
  for (const DLTensor* t : {q, k, v, o})
    if ((t->dtype.code != kDLFloat && t->dtype.code != kDLBfloat) || t->dtype.bits != 16 || t->dtype.lanes != 1 ||
        t->dtype.code != q->dtype.code) {
      std::snprintf(message, size, "f16 and bf16 only");
      return ATTNCHECK_UNSUPPORTED;
    }
  const Tensor16 Q(q), K(k), V(v), O(o);
  const bool bf16 = Q.bf16;
  const int64_t heads = call->heads, D = q->shape[1] / heads, Dv = v->shape[1] / heads;
  const auto [groups, Sq, Sk] = mutant::sizes_of(call);
  const Bug bug = rc.bug;
  // A: one operation's result in the accumulator's precision (the input
  // dtype's under the `input` contract); I: rounded to the input dtype.
  auto I = [bf16](double x) { return static_cast<double>(round16(bf16, static_cast<float>(x))); };
  auto A = [&](double x) {
    if (rc.contract == Contract::input) return I(x);
    return rc.acc == Recipe::f64 ? x : static_cast<double>(static_cast<float>(x));
  };
  const double scale = static_cast<float>(call->scale);
  const int64_t keys = bug == Bug::dropped_key && Sk >= 32 ? Sk - 1 : Sk;
  std::vector<double> s(Sk), w(Sk), acc(Dv);
  int64_t i[5];
  auto qv = [&](int64_t n, int64_t c, int64_t p) { return index_of(q, call->axes, n, c, p, i), double(Q.get(i)); };
  auto kv = [&](int64_t n, int64_t c, int64_t r) { return index_of(k, call->axes, n, c, r, i), double(K.get(i)); };
  auto vv = [&](int64_t n, int64_t c, int64_t r) { return index_of(v, call->axes, n, c, r, i), double(V.get(i)); };
  auto order = [&](int64_t j, int64_t n) { return rc.reversed ? n - 1 - j : j; };
  for (int64_t n = 0; n < groups; ++n)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t p = 0; p < Sq; ++p) {
        // Logits.
        const double root = std::sqrt(std::fabs(scale)), sign = scale < 0 ? -1 : 1;
        for (int64_t r = 0; r < keys; ++r) {
          double dot = 0;
          for (int64_t jj = 0; jj < D; ++jj) {
            const int64_t d = order(jj, D);
            double x = qv(n, h * D + d, p), y = kv(n, h * D + d, r);
            if (rc.contract == Contract::unfused && !rc.scale_after) x = I(x * root), y = I(y * root * sign);
            dot = bug == Bug::logits_in_input ? I(dot + x * y) : A(dot + A(x * y));
          }
          if (rc.contract == Contract::unfused)
            s[r] = rc.scale_after ? I(I(dot) * scale) : I(dot);
          else
            s[r] = A(dot * scale);
        }
        std::fill(acc.begin(), acc.end(), 0.0);
        double ell = 0, m = -INFINITY;
        auto add_ell = [&](double x) { ell = bug == Bug::normaliser_in_input ? I(ell + x) : A(ell + x); };
        if (rc.contract == Contract::unfused || bug == Bug::pv_in_input || bug == Bug::p_rounded_twice) {
          // Two passes: the normalised probabilities, then P.V.
          for (int64_t r = 0; r < keys; ++r) m = std::max(m, s[r]);
          for (int64_t rr = 0; rr < keys; ++rr) {
            const int64_t r = order(rr, keys);
            w[r] = A(std::exp(s[r] - m));
            if (bug == Bug::p_rounded_twice) w[r] = I(w[r]);
            add_ell(w[r]);
          }
          for (int64_t r = 0; r < keys; ++r) w[r] = I(A(w[r] / ell));
          for (int64_t e = 0; e < Dv; ++e)
            for (int64_t rr = 0; rr < keys; ++rr) {
              const int64_t r = order(rr, keys);
              acc[e] = bug == Bug::pv_in_input ? I(acc[e] + w[r] * vv(n, h * Dv + e, r))
                                               : A(acc[e] + A(w[r] * vv(n, h * Dv + e, r)));
            }
          ell = 1;
        } else {
          // One pass or online softmax over key tiles: running maximum,
          // normaliser and accumulator rescaled per tile.
          const int64_t tile = rc.tile > 0 ? rc.tile : std::max<int64_t>(keys, 1);
          for (int64_t t0 = 0; t0 < keys; t0 += tile) {
            const int64_t t1 = std::min(keys, t0 + tile);
            double mt = m;
            for (int64_t r = t0; r < t1; ++r) mt = std::max(mt, s[r]);
            if (m != -INFINITY && mt != m) {
              const double rescale = A(std::exp(m - mt));
              ell = A(ell * rescale);
              for (auto& x : acc) x = A(x * rescale);
            }
            m = mt;
            for (int64_t rr = t0; rr < t1; ++rr) {
              const int64_t r = rc.reversed ? t1 - 1 - (rr - t0) : rr;
              const double pt = A(std::exp(s[r] - m));
              const double wr = rc.round_p || rc.contract == Contract::input ? I(pt) : pt;
              add_ell(rc.ell_of_rounded ? wr : pt);
              for (int64_t e = 0; e < Dv; ++e) {
                const double x = wr * vv(n, h * Dv + e, r);
                acc[e] = bug == Bug::f16_overflow
                             ? attncheck::half_to_float(attncheck::float_to_half(static_cast<float>(acc[e] + x)))
                             : A(acc[e] + A(x));
              }
            }
          }
        }
        for (int64_t e = 0; e < Dv; ++e) {
          double out = A(acc[e] / ell);
          if (bug == Bug::zero_long && Sk >= 64) out = 0;
          if (bug == Bug::out_through_other)
            out = round16(!bf16, static_cast<float>(out));
          index_of(o, call->axes, n, h * Dv + e, p, i);
          O.set(i, static_cast<float>(out));
        }
      }
  return ATTNCHECK_OK;
}

}  // namespace precision
