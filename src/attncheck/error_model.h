// The error model: what an implementation's output should be, and how far
// from it a correct float implementation may land.
//
// The reference computes in long double from the exact stored inputs. Each
// output element o = sum_r P_r v_r gets a bound from forward error analysis
// of the two products and the softmax, scaled by the magnitudes involved:
//
//   e_l   = (D + 2) u |scale| max_r sum_d |q_d k_d|       (error of a logit)
//   bound = K * ( expm1(2 e_l) * sum_r P_r |v_r - o|      (softmax's error, through the
//                                                           spread of v under P)
//               + (Sk + D + 8) u * sum_r P_r |v_r| )      (the PV sum and the normalizer)
//           + u |o| + K (Sk + 1) tiny                     (rounding the output; underflow)
//
// with u the unit roundoff of the dtype (f32 2^-24, f64 2^-53, f16 2^-11,
// bf16 2^-8), tiny its smallest normal, and K = 4 the safety factor. The
// linear terms are worst-case (Higham's gamma_n), so any summation order,
// online softmax over key tiles included, stays inside.
#pragma once

#include <attncheck/guarded.h>
#include <attncheck/reference/attention.h>

#include <array>

namespace attncheck {

constexpr double kSafetyFactor = 4;

struct Expectation {
  ref::Tensor want;   // (B, Cv, Tq, Hq, Wq)
  ref::Tensor bound;  // same shape
};

double unit_roundoff(DType t);

ref::AttentionArgs reference_args(const GuardedCase& g);
Expectation expect(const GuardedCase& g, double safety = kSafetyFactor);
// The same for any arguments (a misreading of the case's memory, say),
// under the reference's semantics w, for an implementation in dtype.
Expectation expect(const ref::AttentionArgs& a, DType dtype, ref::Wrong w = ref::Wrong::none,
                   double safety = kSafetyFactor);

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
