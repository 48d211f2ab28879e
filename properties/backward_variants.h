// Correct backward kernels (attncheck_backward_impl functions over the
// ABI's attncheck_attention_backward) that sum in other orders than the
// reference and than each other, for the gradient error model's false-alarm
// runs (gradient_model_test.cpp, ci/false-alarms): the gradient bound
// (gradient_model.h) must not call any of them wrong. Each reads its inputs
// exactly (16-bit ones widened to float), computes in its accumulator
// (float for f32, f16 and bf16; double for f64) and writes dq, dk and dv
// rounded once to the input dtype.
//
//   one_pass            P, dP, dS row by row (Δ = sum_r P dP), then dq, dk, dv
//   flash16, flash64    FlashAttention 2's recomputation: the row statistics
//                       (max and log-sum-exp) from a first pass, Δ_p =
//                       sum_e dout[e,p] out[e,p] from the `out` the call
//                       gets; then per key tile of 16 (64) keys P = exp(s -
//                       lse), dP, dS = P (dP - Δ), dv and dk accumulated per
//                       key, dq summed per tile and accumulated over tiles
//   double_accumulation as one_pass in double (long double for f64)
//   reversed            as one_pass with every sum (over d, e, r and the
//                       rows p that dk and dv accumulate) run backwards
//
// Rounding::fused (16-bit, the `fused` contract; FlashAttention 2 on tensor
// cores): P rounded to the input dtype before the dv product, dS before the
// dq and dk products. A Flaw plants a small but real error, for the tests
// that show the bound can fail.
//
// plain_forward<tile> is a plain correct forward for every dtype (double
// for f64, float otherwise; online softmax over key tiles when tile > 0),
// the forward the f64 backward variants are paired with.
#pragma once

#include <attncheck/call_index.h>
#include <attncheck/half.h>
#include <attncheck/plugin.h>
#include <attncheck/validate.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace attncheck {

enum class BackwardOrder { one_pass, flash16, flash64, double_accumulation, reversed };
enum class Rounding { none, fused };
enum class Flaw {
  none,
  delta_from_bf16_out,  // flash: Δ = sum_e dout * out with out rounded to bfloat16 first
  dv_weight_perturbed,  // dv's P multiplied by 1 + 2^-10
};

namespace backward_detail {

inline long double load(const DLTensor* t, int64_t e) {
  const char* p = static_cast<const char*>(t->data) + t->byte_offset;
  switch (t->dtype.bits) {
    case 64: {
      double x;
      std::memcpy(&x, p + 8 * e, 8);
      return x;
    }
    case 32: {
      float x;
      std::memcpy(&x, p + 4 * e, 4);
      return x;
    }
    default: {
      uint16_t b;
      std::memcpy(&b, p + 2 * e, 2);
      return t->dtype.code == kDLBfloat ? bf16_to_float(b) : half_to_float(b);
    }
  }
}

inline void store(DLTensor* t, int64_t e, long double x) {
  char* p = static_cast<char*>(t->data) + t->byte_offset;
  switch (t->dtype.bits) {
    case 64: {
      const double y = static_cast<double>(x);
      std::memcpy(p + 8 * e, &y, 8);
      return;
    }
    case 32: {
      const float y = static_cast<float>(x);
      std::memcpy(p + 4 * e, &y, 4);
      return;
    }
    default: {
      const float f = static_cast<float>(x);
      const uint16_t b = t->dtype.code == kDLBfloat ? float_to_bf16(f) : float_to_half(f);
      std::memcpy(p + 2 * e, &b, 2);
    }
  }
}

// x rounded to a 16-bit dtype (identity for f32 and f64: the accumulator is theirs).
inline long double to_input(DLDataType t, long double x) {
  if (t.bits != 16) return x;
  const float f = static_cast<float>(x);
  return t.code == kDLBfloat ? bf16_to_float(float_to_bf16(f)) : half_to_float(float_to_half(f));
}

template <typename A, BackwardOrder order, Rounding rounding, Flaw flaw>
void run(const attncheck_attention_backward* call, const BackwardCallShape& bs) {
  const CallShape& s = bs.forward;
  // The gradients are indexed like the tensors they belong to: a CallShape
  // whose strides are theirs (dq in q's slot, ..., dout in out's).
  CallShape gs = s;
  gs.strides = {bs.grad_strides[kDq], bs.grad_strides[kDk], bs.grad_strides[kDv], bs.grad_strides[kDout]};
  const OperandIndex qi{&s, kQ}, ki{&s, kK}, vi{&s, kV}, oi{&s, kOut};
  const OperandIndex dqi{&gs, kQ}, dki{&gs, kK}, dvi{&gs, kV}, doi{&gs, kOut};
  const DLDataType dt = s.dtype;
  const int64_t D = s.D, Dv = s.Dv, Sq = s.Sq, Sk = s.Sk;
  const bool rev = order == BackwardOrder::reversed;
  const bool flash = order == BackwardOrder::flash16 || order == BackwardOrder::flash64;
  const int64_t tile = order == BackwardOrder::flash16 ? 16 : 64;
  const A scale = static_cast<A>(call->scale);
  const auto ix = [rev](int64_t j, int64_t n) { return rev ? n - 1 - j : j; };
  const auto rnd = [dt](A x) -> A {
    return rounding == Rounding::fused ? static_cast<A>(to_input(dt, x)) : x;
  };
  std::vector<A> Q(D * Sq), Kt(D * Sk), V(Dv * Sk), G(Dv * Sq), O(Dv * Sq);
  std::vector<A> dq(D * Sq), dk(D * Sk), dv(Dv * Sk), P(Sk), dP(Sk), dS(Sk), lse(Sq), delta(Sq), dq_tile(D);
  for (int64_t n = 0; n < s.groups; ++n)
    for (int64_t h = 0; h < s.heads; ++h) {
      for (int64_t d = 0; d < D; ++d) {
        for (int64_t p = 0; p < Sq; ++p)
          Q[d * Sq + p] = static_cast<A>(load(call->q, qi.group(n) + qi.channel(h * D + d) + qi.position(p)));
        for (int64_t r = 0; r < Sk; ++r)
          Kt[d * Sk + r] = static_cast<A>(load(call->k, ki.group(n) + ki.channel(h * D + d) + ki.position(r)));
      }
      for (int64_t e = 0; e < Dv; ++e) {
        for (int64_t r = 0; r < Sk; ++r)
          V[e * Sk + r] = static_cast<A>(load(call->v, vi.group(n) + vi.channel(h * Dv + e) + vi.position(r)));
        for (int64_t p = 0; p < Sq; ++p) {
          G[e * Sq + p] =
              static_cast<A>(load(call->dout, doi.group(n) + doi.channel(h * Dv + e) + doi.position(p)));
          O[e * Sq + p] = static_cast<A>(load(call->out, oi.group(n) + oi.channel(h * Dv + e) + oi.position(p)));
        }
      }
      std::fill(dq.begin(), dq.end(), A(0));
      std::fill(dk.begin(), dk.end(), A(0));
      std::fill(dv.begin(), dv.end(), A(0));
      const auto logit = [&](int64_t p, int64_t r) {
        A dot = 0;
        for (int64_t j = 0; j < D; ++j) {
          const int64_t d = ix(j, D);
          dot += Q[d * Sq + p] * Kt[d * Sk + r];
        }
        return scale * dot;
      };
      const auto dprob = [&](int64_t p, int64_t r) {
        A acc = 0;
        for (int64_t j = 0; j < Dv; ++j) {
          const int64_t e = ix(j, Dv);
          acc += G[e * Sq + p] * V[e * Sk + r];
        }
        return acc;
      };
      if (flash) {
        // The row statistics, and Δ from the out the call gets.
        for (int64_t p = 0; p < Sq; ++p) {
          A m = -std::numeric_limits<A>::infinity();
          for (int64_t r = 0; r < Sk; ++r) m = std::max(m, logit(p, r));
          A l = 0;
          for (int64_t r = 0; r < Sk; ++r) l += std::exp(logit(p, r) - m);
          lse[p] = m + std::log(l);
          A dl = 0;
          for (int64_t e = 0; e < Dv; ++e) {
            A o = O[e * Sq + p];
            if (flaw == Flaw::delta_from_bf16_out) o = static_cast<A>(bf16_to_float(float_to_bf16(static_cast<float>(o))));
            dl += G[e * Sq + p] * o;
          }
          delta[p] = dl;
        }
        // Key tiles: P recomputed, dv and dk per key, dq per tile.
        for (int64_t t0 = 0; t0 < Sk; t0 += tile) {
          const int64_t t1 = std::min(Sk, t0 + tile);
          for (int64_t p = 0; p < Sq; ++p) {
            std::fill(dq_tile.begin(), dq_tile.end(), A(0));
            for (int64_t r = t0; r < t1; ++r) {
              const A Pv = std::exp(logit(p, r) - lse[p]);
              const A dSv = Pv * (dprob(p, r) - delta[p]);
              A Pr = rnd(Pv);
              if (flaw == Flaw::dv_weight_perturbed) Pr *= A(1) + A(1) / 1024;
              const A dSr = rnd(dSv);
              for (int64_t e = 0; e < Dv; ++e) dv[e * Sk + r] += Pr * G[e * Sq + p];
              for (int64_t d = 0; d < D; ++d) {
                dk[d * Sk + r] += dSr * Q[d * Sq + p];
                dq_tile[d] += dSr * Kt[d * Sk + r];
              }
            }
            for (int64_t d = 0; d < D; ++d) dq[d * Sq + p] += dq_tile[d];
          }
        }
      } else {
        for (int64_t pp = 0; pp < Sq; ++pp) {
          const int64_t p = ix(pp, Sq);
          A m = -std::numeric_limits<A>::infinity();
          for (int64_t r = 0; r < Sk; ++r) m = std::max(m, P[r] = logit(p, r));
          A l = 0;
          for (int64_t j = 0; j < Sk; ++j) {
            const int64_t r = ix(j, Sk);
            l += P[r] = std::exp(P[r] - m);
          }
          for (int64_t r = 0; r < Sk; ++r) P[r] /= l;
          A dl = 0;
          for (int64_t j = 0; j < Sk; ++j) {
            const int64_t r = ix(j, Sk);
            dP[r] = dprob(p, r);
            dl += P[r] * dP[r];
          }
          for (int64_t r = 0; r < Sk; ++r) dS[r] = rnd(P[r] * (dP[r] - dl));
          for (int64_t j = 0; j < Sk; ++j) {
            const int64_t r = ix(j, Sk);
            A Pr = rnd(P[r]);
            if (flaw == Flaw::dv_weight_perturbed) Pr *= A(1) + A(1) / 1024;
            for (int64_t e = 0; e < Dv; ++e) dv[e * Sk + r] += Pr * G[e * Sq + p];
            for (int64_t d = 0; d < D; ++d) dk[d * Sk + r] += dS[r] * Q[d * Sq + p];
          }
          for (int64_t d = 0; d < D; ++d) {
            A acc = 0;
            for (int64_t j = 0; j < Sk; ++j) {
              const int64_t r = ix(j, Sk);
              acc += dS[r] * Kt[d * Sk + r];
            }
            dq[d * Sq + p] = acc;
          }
        }
      }
      for (int64_t d = 0; d < D; ++d) {
        for (int64_t p = 0; p < Sq; ++p)
          store(call->dq, dqi.group(n) + dqi.channel(h * D + d) + dqi.position(p), scale * dq[d * Sq + p]);
        for (int64_t r = 0; r < Sk; ++r)
          store(call->dk, dki.group(n) + dki.channel(h * D + d) + dki.position(r), scale * dk[d * Sk + r]);
      }
      for (int64_t e = 0; e < Dv; ++e)
        for (int64_t r = 0; r < Sk; ++r)
          store(call->dv, dvi.group(n) + dvi.channel(h * Dv + e) + dvi.position(r), dv[e * Sk + r]);
    }
}

}  // namespace backward_detail

template <BackwardOrder order, Rounding rounding = Rounding::none, Flaw flaw = Flaw::none>
attncheck_status backward_variant(const attncheck_attention_backward* call, char* message, size_t size) {
  BackwardCallShape bs;
  std::string err;
  if (!validate_backward_call(call, &bs, &err)) {
    write_message(message, size, err);
    return ATTNCHECK_FAILED;
  }
  const bool f64 = bs.forward.dtype.bits == 64;
  if (order == BackwardOrder::double_accumulation) {
    if (f64)
      backward_detail::run<long double, order, rounding, flaw>(call, bs);
    else
      backward_detail::run<double, order, rounding, flaw>(call, bs);
  } else {
    if (f64)
      backward_detail::run<double, order, rounding, flaw>(call, bs);
    else
      backward_detail::run<float, order, rounding, flaw>(call, bs);
  }
  return ATTNCHECK_OK;
}

namespace backward_detail {

template <typename A, int tile>
void forward(const attncheck_attention* call, const CallShape& s) {
  const OperandIndex qi{&s, kQ}, ki{&s, kK}, vi{&s, kV}, oi{&s, kOut};
  const A scale = static_cast<A>(call->scale);
  std::vector<A> logit(s.Sk), acc(s.Dv);
  for (int64_t n = 0; n < s.groups; ++n)
    for (int64_t h = 0; h < s.heads; ++h)
      for (int64_t p = 0; p < s.Sq; ++p) {
        for (int64_t r = 0; r < s.Sk; ++r) {
          A dot = 0;
          for (int64_t d = 0; d < s.D; ++d)
            dot += static_cast<A>(load(call->q, qi.group(n) + qi.channel(h * s.D + d) + qi.position(p))) *
                   static_cast<A>(load(call->k, ki.group(n) + ki.channel(h * s.D + d) + ki.position(r)));
          logit[r] = scale * dot;
        }
        const auto v = [&](int64_t e, int64_t r) {
          return static_cast<A>(load(call->v, vi.group(n) + vi.channel(h * s.Dv + e) + vi.position(r)));
        };
        // Running max and normaliser over key tiles (one tile when tile == 0).
        const int64_t T = tile > 0 ? tile : std::max<int64_t>(s.Sk, 1);
        A m = -std::numeric_limits<A>::infinity(), l = 0;
        std::fill(acc.begin(), acc.end(), A(0));
        for (int64_t t0 = 0; t0 < s.Sk; t0 += T) {
          const int64_t t1 = std::min(s.Sk, t0 + T);
          A mt = m;
          for (int64_t r = t0; r < t1; ++r) mt = std::max(mt, logit[r]);
          const A rescale = std::exp(m - mt);
          l *= rescale;
          for (auto& a : acc) a *= rescale;
          for (int64_t r = t0; r < t1; ++r) {
            const A w = std::exp(logit[r] - mt);
            l += w;
            for (int64_t e = 0; e < s.Dv; ++e) acc[e] += w * v(e, r);
          }
          m = mt;
        }
        for (int64_t e = 0; e < s.Dv; ++e)
          store(call->out, oi.group(n) + oi.channel(h * s.Dv + e) + oi.position(p), acc[e] / l);
      }
}

}  // namespace backward_detail

template <int tile>
attncheck_status plain_forward(const attncheck_attention* call, char* message, size_t size) {
  CallShape s;
  std::string err;
  if (!validate_call(call, &s, &err)) {
    write_message(message, size, err);
    return ATTNCHECK_FAILED;
  }
  if (s.dtype.bits == 64)
    backward_detail::forward<double, tile>(call, s);
  else
    backward_detail::forward<float, tile>(call, s);
  return ATTNCHECK_OK;
}

}  // namespace attncheck
