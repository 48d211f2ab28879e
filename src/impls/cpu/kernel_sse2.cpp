// The kernel instantiated for xsimd::sse2. CMakeLists.txt compiles this file alone
// with the baseline x86-64 flags; attention.cpp calls it only where the CPU and the OS support it.
#include "kernel.h"

namespace attncheck::cpu {

const ArchKernels& kernels_sse2() { return make_kernels<xsimd::sse2>("sse2"); }

}  // namespace attncheck::cpu
