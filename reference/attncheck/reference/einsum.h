// An einsum evaluator over strided views, in high precision.
#pragma once

#include <attncheck/reference/view.h>

#include <span>
#include <string_view>

namespace attncheck::ref {

// Evaluates an explicit einsum spec such as "ngdp,ngdr->ngpr" over the
// operands, NumPy's semantics: a letter repeated within an operand takes its
// diagonal, letters absent from the output are summed over. Every product is
// formed in long double and each output element is a Neumaier-compensated sum,
// so the result does not depend on the operands' precision or layout.
// Throws std::invalid_argument with a one-line message for a malformed spec,
// an operand count or rank that does not match, or sizes that disagree.
Tensor einsum(std::string_view spec, std::span<const View> operands);

// Compensated (Neumaier) summation.
struct NeumaierSum {
  real sum = 0, carry = 0;
  void add(real x) {
    real t = sum + x;
    if ((sum < 0 ? -sum : sum) >= (x < 0 ? -x : x)) carry += (sum - t) + x;
    else carry += (x - t) + sum;
    sum = t;
  }
  real value() const { return sum + carry; }
};

}  // namespace attncheck::ref
