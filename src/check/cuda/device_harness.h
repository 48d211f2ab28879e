// The device harness: how the checker calls an implementation whose tensors
// live on a CUDA device (device_type kDLCUDA). Built only with CUDA
// (ATTNCHECK_HAVE_CUDA); without it, such implementations are refused.
//
// The case is built on the host exactly as for a CPU implementation
// (GuardedCase: values, layouts, poison, canaries). Each of its mappings,
// guard pages included, is mirrored byte for byte into its own cudaMalloc'd
// buffer (never managed memory), the guard bands filled with the mapping's
// poison (inputs, NaN) or canary (out). The call gets the same DLTensors with
// data translated into the mirror and device {kDLCUDA, 0}; it runs in this
// process (a CUDA context does not survive fork) on a worker thread, so a
// kernel that never finishes becomes a finding. After cudaDeviceSynchronize
// every region is copied back into its host mapping, so the host checks
// apply unchanged: out's slack and gaps against the canary, the inputs'
// checksums, and the properties reading out. The guard bands, which the host
// cannot hold, are compared here.
#pragma once

#include <attncheck/runner.h>

#include <string>

namespace attncheck::cuda_harness {

// True when a CUDA device can be used; otherwise false with *why (if
// non-null) saying what cudaGetDeviceCount reported.
bool device_present(std::string* why = nullptr);

// Mirrors g on device 0, calls impl, copies back. The findings are the
// device's own: a CUDA error after the call, a write into a guard band, a
// hang, a device lost by an earlier case. The caller then checks the host
// memory (GuardedCase::check_memory) as after a CPU call.
RunResult run_call(const attncheck_impl& impl, GuardedCase& g, const RunOptions& opt);

}  // namespace attncheck::cuda_harness
