// The kernel instantiated for xsimd::fma3<xsimd::avx2>. CMakeLists.txt compiles this file alone
// with -mavx2 -mfma; attention.cpp calls it only where the CPU and the OS support it.
#include "kernel.h"

namespace attncheck::cpu {

const ArchKernels& kernels_avx2() { return make_kernels<xsimd::fma3<xsimd::avx2>>("avx2"); }

}  // namespace attncheck::cpu
