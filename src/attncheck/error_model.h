// The error model: what an implementation's output should be, and how far
// from it a correct implementation of a precision contract may land.
//
// The reference computes in long double from the exact stored inputs. Each
// output element o = sum_r P_r v_r gets a bound from forward error analysis
// of the computation the contract allows. Per output element (one row of P,
// one channel of v), with
//
//   L      = max_r sum_d |q_d k_rd|          (the row's largest |q.k|)
//   mag    = sum_r P_r |v_r|                 spread = sum_r P_r |v_r - o|
//   u      the input dtype's unit roundoff   (f16 2^-11, bf16 2^-8, f32 2^-24, f64 2^-53)
//   ua     the accumulator's                 (2^-24 for f16, bf16 and f32; 2^-53 for f64)
//   K = 4  the safety factor on the accumulation terms (worst-case gamma_n
//          bounds, exp's own error, online rescaling); K16 = 1.25 on the
//          once-rounded terms (each rounding to nearest is at most u
//          relative: the factor covers only second-order terms)
//
// f32 and f64 have one contract, `input` (every sum in the dtype itself):
//
//   e_l   = (D + 2) u |scale| L                                (error of a logit)
//   bound = K ( expm1(2 e_l) spread + (Sk + D + 8) u mag ) + u |o| + K (Sk + 1) tiny
//
// where the softmax term is taken per key, each capped at 1:
// sum_r min(K P_r expm1(2 e_l), 1) |v_r - o|: logits perturbed by at most
// e_l move P_r by at most P_r expm1(2 e_l), and no weight by more than 1
// (a weight that is nothing can become everything when e_l is large: ties
// made by rounding huge logits).
//
// f16 and bf16 have three (Precision), each the bound of its computation:
//
//   fused   (the default; FlashAttention 2/3, cuDNN, PyTorch's flash and
//           memory-efficient SDPA): logits, softmax and P.V accumulated in
//           f32 in any order, P rounded once to the input dtype before the
//           P.V product (or kept in f32), out rounded once:
//     e_l   = K (D + 2) ua |scale| L
//     bound = sum_r min(P_r expm1(2 e_l), 1) |v_r - o| + K (Sk + D + 8) ua mag
//           + K16 u (max(mag, spread) + |o|)                   (P rounded once; out rounded)
//           + underflow
//     P rounded once moves o by sum_r d_r P_r v_r with |d_r| <= u: at most
//     u mag when the normaliser is the f32 sum of the unrounded weights,
//     and u spread when it is the sum of the rounded ones (then the error
//     is sum_r d_r P_r (v_r - o)); max(mag, spread) covers both.
//   unfused (PyTorch's math SDPA, bmm -> softmax -> bmm in the input dtype):
//           q and k scaled by sqrt(scale) and rounded (2u per product), the
//           logits materialised in the input dtype (u |s|, |s| <= |scale| L),
//           the probabilities too (u per weight), products in f32:
//     e_l   = K (D + 2) ua |scale| L + K16 3 u |scale| L
//     bound = as fused, with this e_l
//   input   (every sum accumulated in the input dtype; the loosest): the
//           f32 formula above with u the input dtype's.
//
//   underflow = tinyP (1 + W sum_r |v_r|) + K (Sk + 1) tinyA (1 + P_max sum_r |v_r|) + tinyO
//     tinyP: half the spacing of the input dtype's subnormals. A weight
//     below f16's 2^-14 is rounded absolutely, by at most 2^-25: in fused
//     the unnormalised weights (at most 1 relative to the row's maximum)
//     are rounded and then divided by the normaliser, W = P_max =
//     1/normaliser; in unfused the normalised P is materialised, W = 1.
//     tinyA is the accumulator's smallest normal, tinyO half the output
//     dtype's subnormal spacing.
//
// The linear terms are worst-case, so any summation order, online softmax
// over key tiles included, stays inside.
#pragma once

#include <attncheck/guarded.h>
#include <attncheck/reference/attention.h>

#include <array>
#include <string>

namespace attncheck {

constexpr double kSafetyFactor = 4;
constexpr double kRoundingFactor = 1.25;

// The precision contracts of 16-bit implementations (f32 and f64 have one:
// `input`, every sum in the dtype itself).
enum class Precision { fused, unfused, input };
const char* name_of(Precision p);
// "fused", "unfused", "input"; throws std::invalid_argument otherwise.
Precision parse_precision(const std::string& name);
// The contract a run in dtype is checked under when `requested` is asked
// for: requested for f16 and bf16, input for f32 and f64.
Precision contract_for(DType dtype, Precision requested);
// One line: what the contract allows.
std::string describe(Precision p, DType dtype);

struct Expectation {
  ref::Tensor want;   // (B, Cv, Tq, Hq, Wq)
  ref::Tensor bound;  // same shape
};

double unit_roundoff(DType t);
// t's smallest normal value (f16 2^-14; bf16 as f32).
double smallest_normal(DType t);
// Half the spacing of t's subnormals: the largest absolute error of
// rounding a value below t's smallest normal.
long double half_subnormal_spacing(DType t);
// The dtype a contract accumulates in (f32, f64 for f64).
DType accumulator(DType t);

// The largest error of one logit of a row whose largest |q.k| is L, under a
// contract: el, and the factor on the softmax term (K under `input`, where
// the whole term carries it; 1 otherwise, where K is inside el).
struct LogitError {
  long double el = 0;
  long double factor = 1;
};
LogitError logit_error(Precision contract, int64_t D, DType dtype, double scale, long double L, double K);
// How far each weight of one row of P (logits and P flat, the row starting
// at `row`, Sk keys, largest weight Pmax) can move under logits perturbed by
// at most le.el: min(factor P_r expm1(2 el), 1) each, taken in logs past
// long double's exp range.
void weight_moves(const ref::Tensor& logits, const ref::Tensor& P, int64_t row, int64_t Sk, long double Pmax,
                  const LogitError& le, long double* moves);

ref::AttentionArgs reference_args(const GuardedCase& g);
Expectation expect(const GuardedCase& g, Precision p = Precision::fused, double safety = kSafetyFactor);
// The same for any arguments (a misreading of the case's memory, say),
// under the reference's semantics w, for an implementation in dtype.
Expectation expect(const ref::AttentionArgs& a, DType dtype, Precision p = Precision::fused,
                   ref::Wrong w = ref::Wrong::none, double safety = kSafetyFactor);
// The same from a trace of those arguments already computed.
Expectation expect(const ref::AttentionTrace& trace, const ref::AttentionArgs& a, DType dtype, Precision p,
                   ref::Wrong w = ref::Wrong::none, double safety = kSafetyFactor);

// The contract evaluated literally in its own precision: every operation
// rounded once to the precision the contract gives it (sums in order, the
// softmax with the row's maximum, exp correctly rounded). The same-dtype
// comparison: an implementation's error next to this one's (FlashAttention's
// tests allow twice it).
ref::Tensor literal(const ref::AttentionArgs& a, DType dtype, Precision p);
ref::Tensor literal(const ref::AttentionTrace& trace, const ref::AttentionArgs& a, DType dtype, Precision p);

// Where a contract materialises intermediates in f16 (unfused: q and k
// scaled by sqrt(scale), or q.k before the scale, and the logits; input:
// every sum), values past f16's
// largest finite value overflow to inf, and the contract cannot compute the
// case: the sentence saying which value gets there, or "" when the case is
// within range (always for fused, f32, f64 and bf16). Conservative: the
// input contract's unnormalised sums are taken at their largest,
// sum_r |v_r|.
std::string contract_overflow(const ref::AttentionArgs& a, DType dtype, Precision p);

struct Comparison {
  bool ok = true;
  std::array<int64_t, 5> first{};  // first failing element (row-major), when !ok
  long double want = 0, got = 0, bound = 0;
  int64_t failing = 0;         // how many elements fail
  long double max_error = 0;   // max |got - want| over finite elements
  double worst_ratio = 0;      // max |got - want| / bound
};
Comparison compare(const ref::Tensor& got, const Expectation& e);

std::string index_text(const std::array<int64_t, 5>& i);

}  // namespace attncheck
