// The whole attncheck property suite for the team's kernel, one line.
#include <attncheck/gtest.h>

#include "kernel.h"

ATTNCHECK_TEST(MyKernels, plain, my_attention);

// A lambda works too (any callable with the ABI's signature).
ATTNCHECK_TEST(MyKernels, via_lambda, [](const attncheck_attention* c, char* m, size_t n) {
  return my_attention(c, m, n);
});
