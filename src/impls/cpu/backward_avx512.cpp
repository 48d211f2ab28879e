// The backward work items instantiated for xsimd::avx512f. CMakeLists.txt compiles this
// file alone with the avx512 flags; backward.cpp calls it only where the CPU and the OS
// support it.
#include "backward_kernel.h"

namespace attncheck::cpu {

const BackwardKernels& backward_kernels_avx512() {
  return make_backward_kernels<xsimd::avx512f>("avx512");
}

}  // namespace attncheck::cpu
