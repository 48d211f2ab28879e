// The backward work items instantiated for xsimd::sse2. CMakeLists.txt compiles this
// file alone with the sse2 flags; backward.cpp calls it only where the CPU and the OS
// support it.
#include "backward_kernel.h"

namespace attncheck::cpu {

const BackwardKernels& backward_kernels_sse2() {
  return make_backward_kernels<xsimd::sse2>("sse2");
}

}  // namespace attncheck::cpu
