// Diagnosis: which known wrong semantics an implementation's output matches.
#pragma once

#include <attncheck/error_model.h>
#include <attncheck/guarded.h>
#include <attncheck/runner.h>

#include <array>

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

// Where out has NaN and the spec a value: whether the NaN is poison read
// from outside the views (it goes away when the bytes around the views hold
// a finite pattern instead) or the arithmetic's own (inf - inf, 0/0). Only
// where there is such a NaN is the call rerun (with opt); the poison is put
// back after.
struct NanSource {
  enum Kind { none, poison, arithmetic, unknown } kind = none;
  std::array<int64_t, 5> at{};  // the first such element
  std::string rerun;            // unknown: what the rerun gave instead of an output
  ref::Tensor finite_out{std::vector<int64_t>{0}};  // poison, arithmetic: the rerun's out
};
NanSource nan_source(const attncheck_impl& impl, GuardedCase& g, const ref::Tensor& got, const ref::Tensor& want,
                     const RunOptions& opt);

// What made the NaN of a semantics failure that no named wrong semantics
// explains ("" when there is none).
std::string nan_diagnosis(const NanSource& s, const GuardedCase& g, Precision precision);

}  // namespace attncheck
