// reference_f32: the plain single-precision implementation. Straightforward
// loops over the spec's formula with float accumulation; the same-precision
// baseline the error model compares other implementations against. Serves
// f32 (and f16/bf16 inputs, computing in float); declines f64.
#pragma once

#include <attncheck/plugin.h>

namespace attncheck::reference_f32 {

attncheck_status attention(const attncheck_attention* call, char* message, size_t message_size);

// The backward pass: the spec's formulas as plain loops, float accumulation,
// the same dtypes as the forward (f32, and f16 / bf16 computed in float).
attncheck_status backward(const attncheck_attention_backward* call, char* message, size_t message_size);

}  // namespace attncheck::reference_f32
