// The GoogleTest integration's verdicts, as a user's test binary sees them:
// an implementation that declines everything is skipped with the reason
// (never green), and one that throws fails with "threw", also in-process
// (ATTNCHECK_FORK=0). Run by ctest (properties/CMakeLists.txt, gtest.*).
#include <attncheck/gtest.h>

#include <cstdio>
#include <stdexcept>

namespace {

attncheck_status declines(const attncheck_attention*, char* message, size_t size) {
  std::snprintf(message, size, "float64 only");
  return ATTNCHECK_UNSUPPORTED;
}

attncheck_status throws(const attncheck_attention*, char*, size_t) {
  throw std::runtime_error("from the kernel");
}

}  // namespace

ATTNCHECK_TEST(Demo, decliner, declines);
ATTNCHECK_TEST(Demo, thrower, throws);
