// The `cuda` implementation: a flash-attention-style kernel (kernel.h) for
// float32, and bfloat16 / float16 inputs with float32 accumulation, all three
// axes families, every layout the ABI allows (strides, zero strides, byte
// offsets), bitwise deterministic across layouts. Tensors must be on one CUDA
// device; float64 is declined.
#pragma once

#include <attncheck/plugin.h>

namespace attncheck::cuda {

// The `cuda` implementation's entry point, ABI signature. Validates the call
// on the host (shapes and strides are host memory in DLPack), launches on the
// legacy default stream of the tensors' device and waits for the kernel, so
// out holds the result when it returns OK and a launch or kernel error is
// reported as ATTNCHECK_FAILED with CUDA's message.
attncheck_status attention(const attncheck_attention* call, char* message, size_t message_size);

}  // namespace attncheck::cuda
