// The `cpu` implementation: a flash-attention-style kernel for float32
// (also float64, and bfloat16 / float16 with float32 compute), all three axes
// families, every layout the ABI allows, bitwise deterministic across layouts
// and thread counts. See kernel.h for the algorithm.
#pragma once

#include <attncheck/plugin.h>

namespace attncheck::cpu {

// The `cpu` implementation's entry point, ABI signature.
attncheck_status attention(const attncheck_attention* call, char* message, size_t message_size);

// The backward pass (FlashAttention-2 style, backward.cpp): the same dtypes,
// layouts, threads and instruction sets as the forward, bitwise deterministic
// across layouts and thread counts. Reads `out` for the row term
// sum_e dout*out.
attncheck_status backward(const attncheck_attention_backward* call, char* message, size_t message_size);

// Threads used by later calls: n >= 1, or 0 for the default (env
// ATTNCHECK_CPU_THREADS, else hardware concurrency).
void set_threads(int n);

// Instruction set used by later calls: "avx512", "avx2", "sse2", or nullptr
// / "" for the best this machine supports (env ATTNCHECK_CPU_ARCH overrides
// the default). Returns false, changing nothing, for a name this machine
// cannot run. For tests and benchmarks; results differ across instruction
// sets (vector width changes the reduction tree), never within one.
bool set_arch(const char* name);

// The instruction set later calls will use.
const char* arch();

// Bytes of workspace one thread uses for this call (0 when the call is not
// valid or would be declined): O(tile), independent of the sequence lengths
// once they exceed a tile. For benchmarks and tests.
size_t workspace_bytes(const attncheck_attention* call);

}  // namespace attncheck::cpu
