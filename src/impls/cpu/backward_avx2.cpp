// The backward work items instantiated for xsimd::fma3<xsimd::avx2>. CMakeLists.txt compiles this
// file alone with the avx2 flags; backward.cpp calls it only where the CPU and the OS
// support it.
#include "backward_kernel.h"

namespace attncheck::cpu {

const BackwardKernels& backward_kernels_avx2() {
  return make_backward_kernels<xsimd::fma3<xsimd::avx2>>("avx2");
}

}  // namespace attncheck::cpu
