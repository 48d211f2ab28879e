// builtin.so: the project's own implementations, behind the same ABI as any
// third party's plugin.
#include <attncheck/plugin.h>

#include "reference_f32/reference_f32.h"
#ifdef ATTNCHECK_HAVE_CPU
#include "cpu/cpu_attention.h"
#endif
#ifdef ATTNCHECK_HAVE_CUDA
#include "cuda/cuda_attention.h"
#endif

namespace {

const attncheck_impl kImpls[] = {
#ifdef ATTNCHECK_HAVE_CPU
    {"cpu", kDLCPU, &attncheck::cpu::attention},
#endif
#ifdef ATTNCHECK_HAVE_CUDA
    {"cuda", kDLCUDA, &attncheck::cuda::attention},
#endif
    {"reference_f32", kDLCPU, &attncheck::reference_f32::attention},
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const attncheck_impl* attncheck_impls(
    int abi_version, size_t* count) {
  if (abi_version != ATTNCHECK_ABI_VERSION) return nullptr;
  if (count) *count = sizeof(kImpls) / sizeof(kImpls[0]);
  return kImpls;
}

namespace {

// The gradients of the forward implementations above, under their names.
const attncheck_backward_impl kBackwardImpls[] = {
#ifdef ATTNCHECK_HAVE_CPU
    {"cpu", kDLCPU, &attncheck::cpu::backward},
#endif
    {"reference_f32", kDLCPU, &attncheck::reference_f32::backward},
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const attncheck_backward_impl*
attncheck_backward_impls(int abi_version, size_t* count) {
  if (abi_version != ATTNCHECK_BACKWARD_ABI_VERSION) return nullptr;
  if (count) *count = sizeof(kBackwardImpls) / sizeof(kBackwardImpls[0]);
  return kBackwardImpls;
}
