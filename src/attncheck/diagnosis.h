// Diagnosis: which known wrong semantics an implementation's output matches.
#pragma once

#include <attncheck/error_model.h>
#include <attncheck/guarded.h>

#include <string>

namespace attncheck {

// Evaluates every named wrong semantics on the case's inputs (reshape
// without permute, interleaved heads, softmax over queries, wrong scales,
// a compact layout assumed for one tensor, k's strides used for v, the byte
// offset ignored, inner stride taken as 1, a C stride of 1 taken for packed
// channels-last, an unmasked tail tile in the normalizer, probabilities
// rounded to bfloat16) and returns the sentence naming
// the one that `got` matches (and, in parentheses, any other that gives the
// same output on this case); otherwise "". (Where none matches and out has
// NaN, the semantics property reruns the call to say where the NaN came
// from.)
std::string diagnose(const GuardedCase& g, const ref::Tensor& got, const Expectation& e,
                     Precision p = Precision::fused);

// The same, where the call was also run with kFinitePoison around the input
// views (giving got_finite): a candidate must give both outputs, on the
// memory as it was for each (poison makes misreadings that all read it look
// alike; finite bytes can hide a misreading that only a NaN shows). Leaves
// kInputPoison around the views.
std::string diagnose(GuardedCase& g, const ref::Tensor& got, const ref::Tensor& got_finite, const Expectation& e,
                     Precision p = Precision::fused);

}  // namespace attncheck
