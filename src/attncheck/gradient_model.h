// The error model of the backward pass: the reference's gradients and how
// far from them a correct implementation of a precision contract may land.
//
// The reference computes dq, dk and dv in long double from the exact stored
// q, k, v and dout (reference/attncheck/reference/backward.h). Each
// gradient element gets a bound from forward error analysis of any order of
// summation, FlashAttention 2's recomputation included. Per group and head,
// with P, dP, dS and o the reference's, Δ_p = sum_r P[p,r] dP[p,r] =
// sum_e dout[e,p] o[e,p], and
//
//   ua, u     the accumulator's and the input dtype's unit roundoff
//   ur        the rounding of a materialised intermediate (P for the dv
//             product, dP, dS for the dq and dk products): u for f16 and
//             bf16, 0 for f32 and f64 (their sums are in the dtype itself)
//   tr        half the input dtype's subnormal spacing where ur > 0
//   δP[p,r]   = min(P expm1(2 e_l + K (Sk + 4) ua) + K tinyA, 1): how far a
//             recomputed weight moves (e_l the forward's logit error under
//             the contract; the second term is the normaliser's and the row
//             statistics' rounding, FA2's stored log-sum-exp included)
//   EdP[p,r]  = K (Dv + 2) ua sum_e |dout[e,p] v[e,r]| + ur |dP| + tr
//   EΔ[p]     = sum_e |dout[e,p]| Bo[e,p] + K (Dv + 2) ua sum_e |dout o|     (Δ from out:
//             Bo is the forward's bound: the out the call gets is the
//             implementation's own)
//             + sum_r (δP |dP| + P EdP) + K (Sk + 2) ua sum_r P |dP|           (or recomputed)
//   EdS[p,r]  = δP |dP - Δ| + (P + δP)(EdP + EΔ) + (3 K ua + ur) P |dP - Δ| + tr
//
//   dq[d,p]: |scale| (sum_r EdS |k[d,r]| + K (Sk + 2) ua sum_r |dS k|) + K16 u |dq| + tiny
//   dk[d,r]: |scale| (sum_p EdS |q[d,p]| + K (Sq + 2) ua sum_p |dS q|) + K16 u |dk| + tiny
//   dv[e,r]: sum_p (δP + ur P + tr) |dout[e,p]| + K (Sq + 2) ua sum_p P |dout| + K16 u |dv| + tiny
//
// tiny = K (Sq + Sk + D + Dv + 8) (tinyA + tinyO): underflow in the sums and
// the output's rounding below its smallest normal. The gradient of softmax
// loses more than the forward: dS subtracts the row's weighted mean Δ from
// dP, so an error in Δ (from out's own error, or from P's) reaches every
// element of the row; EΔ carries it.
#pragma once

#include <attncheck/error_model.h>

#include <array>
#include <string>

namespace attncheck {

struct GradientExpectation {
  std::array<ref::Tensor, 3> want;   // dq, dk, dv (packed, shaped like q, k, v)
  std::array<ref::Tensor, 3> bound;  // the same shapes
};

// The reference's gradients for a backward case and their bounds under the
// contract p (f16, bf16; f32 and f64 have one).
GradientExpectation expect_gradients(const GuardedCase& g, Precision p = Precision::fused,
                                     double safety = kSafetyFactor);
// got, where the dtype cannot hold a gradient: an element that is ±inf with
// the sign of want, where |want| + bound reaches the dtype's overflow
// threshold (its largest finite value plus half an ulp: f16's 65520),
// is taken as want (every correct kernel in that dtype rounds it to inf;
// the forward never meets this, its out being a weighted average of v).
ref::Tensor within_range(const ref::Tensor& got, const ref::Tensor& want, const ref::Tensor& bound, DType dtype);
// Where the contract rounds an intermediate to f16 (dS before the dq and dk
// products; dP too under `unfused` and `input`) and the exact value is past
// f16's largest finite value, no kernel of that contract can compute the
// case: the sentence saying which value gets there, or "" (always for f32,
// f64 and bf16's range on these cases). The backward's contract_overflow.
std::string gradient_contract_overflow(const GuardedCase& g, Precision p);
// One line: what the contract allows the backward.
std::string describe_gradients(Precision p, DType dtype);
// The named wrong reading the gradients match (every element of dq, dk and
// dv within its bound of that reading's gradients), or "".
std::string diagnose_gradients(const GuardedCase& g, const std::array<ref::Tensor, 3>& got,
                               const GradientExpectation& e, Precision p);

}  // namespace attncheck
