// The kernel instantiated for xsimd::avx512f. CMakeLists.txt compiles this file alone
// with -mavx512f -mfma (plus -mavx2); attention.cpp calls it only where the CPU and the OS support it.
#include "kernel.h"

namespace attncheck::cpu {

const ArchKernels& kernels_avx512() { return make_kernels<xsimd::avx512f>("avx512"); }

}  // namespace attncheck::cpu
