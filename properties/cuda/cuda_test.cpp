// The `cuda` implementation and the device harness.
//
// Without a GPU (CI): the kernel's host half (plan) is checked for what it
// declines and how it reads layouts, `verify builtin:cuda` must exit 2 saying
// no CUDA device is present, and every test that needs a device skips,
// saying so. With a GPU: every property on every axes family (strict), the
// half-precision inputs, and mutants the harness must catch.
#include "plan.h"
#include "cuda_attention.h"

#include <attncheck/properties.h>
#include <attncheck/report.h>
#include <attncheck/suite.h>
#include <attncheck/validate.h>
#include <attncheck/verify.h>

#include <cuda_runtime_api.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include <sys/wait.h>

#include "cuda/device_harness.h"

namespace attncheck {
namespace {

using ::testing::HasSubstr;

const attncheck_impl kCuda{"cuda", kDLCUDA, &cuda::attention};

// Skips the test, visibly, where no device is present.
#define REQUIRE_DEVICE()                                                      \
  do {                                                                        \
    std::string why_;                                                         \
    if (!cuda_harness::device_present(&why_)) GTEST_SKIP() << "no CUDA device: " << why_; \
  } while (0)

// A (B, C, T, H, W) call description on the host, with no memory behind it
// (plan reads no element).
struct HostCall {
  std::array<std::array<int64_t, 5>, 4> shape{}, strides{};
  std::array<DLTensor, 4> t{};
  attncheck_attention call{};
  explicit HostCall(DLDataType dtype, DLDeviceType device = kDLCUDA, bool channels_last = false) {
    static float dummy[4];
    for (int r = 0; r < 4; ++r) {
      shape[r] = {1, 8, 2, 3, 5};
      // compact (B, C, T, H, W) or channels-last (B, T, H, W, C)
      strides[r] = channels_last ? std::array<int64_t, 5>{240, 1, 120, 40, 8}
                                 : std::array<int64_t, 5>{240, 30, 15, 5, 1};
      t[r] = DLTensor{dummy, {device, 0}, 5, dtype, shape[r].data(), strides[r].data(), 0};
    }
    call = {ATTNCHECK_SPATIAL, &t[0], &t[1], &t[2], &t[3], 2, 0.5};
  }
};

TEST(CudaPlan, ServesF32F16Bf16AndReadsTheLayout) {
  for (DLDataType dt : {DLDataType{kDLFloat, 32, 1}, DLDataType{kDLFloat, 16, 1}, DLDataType{kDLBfloat, 16, 1}}) {
    HostCall h(dt);
    cuda::Params p;
    std::string why;
    ASSERT_EQ(cuda::plan(&h.call, &p, &why), ATTNCHECK_OK) << why;
    EXPECT_EQ(p.groups, 2);  // B*T
    EXPECT_EQ(p.Sq, 15);     // H*W
    EXPECT_EQ(p.D, 4);
    EXPECT_TRUE(p.q.rows_fast);  // positions are unit-stride in compact (B, C, T, H, W)
  }
  HostCall cl({kDLFloat, 32, 1}, kDLCUDA, true);
  cuda::Params p;
  std::string why;
  ASSERT_EQ(cuda::plan(&cl.call, &p, &why), ATTNCHECK_OK) << why;
  EXPECT_FALSE(p.q.rows_fast);  // channels are unit-stride in channels-last
  EXPECT_EQ(p.q.s[1], 1);
}

TEST(CudaPlan, DeclinesWhatItDoesNotServeWithAReason) {
  std::string why;
  cuda::Params p;
  HostCall f64({kDLFloat, 64, 1});
  EXPECT_EQ(cuda::plan(&f64.call, &p, &why), ATTNCHECK_UNSUPPORTED);
  EXPECT_THAT(why, HasSubstr("float64"));
  HostCall host({kDLFloat, 32, 1}, kDLCPU);
  EXPECT_EQ(cuda::plan(&host.call, &p, &why), ATTNCHECK_UNSUPPORTED);
  EXPECT_THAT(why, HasSubstr("CUDA device"));
  HostCall huge_scale({kDLFloat, 32, 1});
  huge_scale.call.scale = 1e300;
  EXPECT_EQ(cuda::plan(&huge_scale.call, &p, &why), ATTNCHECK_UNSUPPORTED);
  EXPECT_THAT(why, HasSubstr("overflows float32"));
  HostCall misaligned({kDLFloat, 32, 1});
  misaligned.t[1].byte_offset = 2;
  EXPECT_EQ(cuda::plan(&misaligned.call, &p, &why), ATTNCHECK_UNSUPPORTED);
  EXPECT_THAT(why, HasSubstr("k's elements are not aligned"));
}

TEST(CudaPlan, RejectsAMalformedCallWithTheValidatorsLine) {
  HostCall bad({kDLFloat, 32, 1});
  bad.strides[1][1] = -1;
  char message[200] = "";
  // Fails before touching the device, so this runs anywhere.
  EXPECT_EQ(cuda::attention(&bad.call, message, sizeof message), ATTNCHECK_FAILED);
  EXPECT_STREQ(message, "k: strides[1] (C) is -1, must be >= 0");
}

// `attncheck verify builtin:cuda`: exit 2 and the reason without a device,
// a pass with one.
TEST(CudaVerify, BuiltinCudaIsNotVerifiedWithoutADeviceAndPassesWithOne) {
  const std::string cmd = std::string("'") + ATTNCHECK_CLI + "' verify builtin:cuda --cases 5 2>&1";
  FILE* f = popen(cmd.c_str(), "r");
  ASSERT_NE(f, nullptr);
  std::string output;
  char buf[512];
  while (fgets(buf, sizeof buf, f)) output += buf;
  const int status = pclose(f);
  ASSERT_TRUE(WIFEXITED(status)) << output;
  std::string why;
  if (!cuda_harness::device_present(&why)) {
    // Not verified (exit 3), with the reason: never a pass, never a crash.
    EXPECT_EQ(WEXITSTATUS(status), 3) << output;
    EXPECT_THAT(output, HasSubstr("not verified: no CUDA device is present"));
    EXPECT_THAT(output, HasSubstr("NOT VERIFIED: 24 property runs, 24 not verified; 0 cases checked"));
  } else {
    EXPECT_EQ(WEXITSTATUS(status), 0) << output;
    EXPECT_THAT(output, HasSubstr("PASSED"));
  }
}

TEST(CudaHarness, WithoutADeviceEveryCallIsAnErrorNotACrashNorAPass) {
  std::string why;
  if (cuda_harness::device_present(&why)) GTEST_SKIP() << "a CUDA device is present";
  const Case c = Case::parse("spatial f32 B=1 C=2 Cv=2 heads=1 q=1x2x3 k=1x2x3 scale=1 share=none place=low "
                             "Lq=0/1/0:0:0:0:0/0/a/0/0 Lk=0/1/0:0:0:0:0/0/a/0/0 Lv=0/1/0:0:0:0:0/0/a/0/0 "
                             "Lout=0/1/0:0:0:0:0/0/a/0/0 Vq=normal:1 Vk=normal:2 Vv=normal:3");
  const Verdict v = check_property(Property::semantics, kCuda, c, {});
  EXPECT_EQ(v.kind, Verdict::error);
  EXPECT_THAT(v.summary, HasSubstr("no CUDA device is present"));
}

// ---- With a device --------------------------------------------------------

SuiteOptions suite_options(int cases) {
  SuiteOptions o;
  o.cases = cases;
  o.strict = true;  // the kernel is deterministic: layout and independence bitwise
  return o;
}

TEST(CudaKernelOnGpu, HoldsEveryPropertyOnEveryAxesFamilyStrictly) {
  REQUIRE_DEVICE();
  for (Axes ax : {Axes::spatial, Axes::temporal, Axes::spatiotemporal})
    for (Property p : all_properties()) {
      const PropertyOutcome o = run_property(kCuda, p, ax, DType::f32, suite_options(25));
      std::ostringstream report;
      if (o.failure) print_failure(report, o, "(cuda_properties)");
      EXPECT_FALSE(o.failure) << report.str();
      EXPECT_EQ(o.declined, 0) << name_of(p) << " " << ref::name_of(ax);
    }
}

TEST(CudaKernelOnGpu, HalfPrecisionInputsWithFloatAccumulation) {
  REQUIRE_DEVICE();
  for (DType dt : {DType::f16, DType::bf16})
    for (Axes ax : {Axes::spatial, Axes::temporal, Axes::spatiotemporal})
      for (Property p : {Property::semantics, Property::memory, Property::layout_invariance}) {
        const PropertyOutcome o = run_property(kCuda, p, ax, dt, suite_options(15));
        std::ostringstream report;
        if (o.failure) print_failure(report, o, "(cuda_properties)");
        EXPECT_FALSE(o.failure) << report.str();
        EXPECT_EQ(o.declined, 0);
      }
}

TEST(CudaKernelOnGpu, DeclinesFloat64) {
  REQUIRE_DEVICE();
  const PropertyOutcome o = run_property(kCuda, Property::semantics, Axes::spatial, DType::f64, suite_options(3));
  EXPECT_FALSE(o.failure);
  EXPECT_EQ(o.declined, o.cases);
}

// Mutants: the correct plan, broken on purpose on the host side, so they
// need no device code of their own.
enum class Break { ignore_byte_offset, write_past_out, write_to_q };

template <Break b>
attncheck_status mutant(const attncheck_attention* call, char* message, size_t size) {
  cuda::Params p;
  std::string why;
  if (const attncheck_status st = cuda::plan(call, &p, &why); st != ATTNCHECK_OK) {
    write_message(message, size, why);
    return st;
  }
  if (b == Break::ignore_byte_offset)
    p.q.base = call->q->data, p.k.base = call->k->data, p.v.base = call->v->data;
  if (cuda::launch(p, nullptr) != cudaSuccess) return ATTNCHECK_FAILED;
  const int64_t elem = call->out->dtype.bits / 8;
  if (b == Break::write_past_out) {
    int64_t last = 0;
    for (int d = 0; d < 5; ++d) last += (call->out->shape[d] - 1) * p.out.s[d];
    cudaMemset(static_cast<char*>(const_cast<void*>(p.out.base)) + (last + 1) * elem, 0, elem);
  }
  // 0xff bytes: NaN, which no input value is.
  if (b == Break::write_to_q) cudaMemset(const_cast<void*>(p.q.base), 0xff, elem);
  return cudaStreamSynchronize(nullptr) == cudaSuccess ? ATTNCHECK_OK : ATTNCHECK_FAILED;
}

PropertyOutcome run_mutant(attncheck_status (*fn)(const attncheck_attention*, char*, size_t), Property p) {
  const attncheck_impl impl{"mutant", kDLCUDA, fn};
  SuiteOptions o = suite_options(40);
  o.max_shrinks = 50, o.max_case_shrinks = 50;
  return run_property(impl, p, Axes::spatial, DType::f32, o);
}

TEST(CudaHarnessOnGpu, CatchesAKernelThatIgnoresByteOffset) {
  REQUIRE_DEVICE();
  const PropertyOutcome o = run_mutant(mutant<Break::ignore_byte_offset>, Property::semantics);
  ASSERT_TRUE(o.failure);
  // The minimal case still needs a byte offset on an input to fail.
  const Case& c = o.failure->c;
  EXPECT_TRUE(c.layout[kRoleQ].offset > 0 || c.layout[kRoleK].offset > 0 || c.layout[kRoleV].offset > 0)
      << c.to_text();
}

TEST(CudaHarnessOnGpu, CatchesAWritePastOut) {
  REQUIRE_DEVICE();
  const PropertyOutcome o = run_mutant(mutant<Break::write_past_out>, Property::memory);
  ASSERT_TRUE(o.failure);
  EXPECT_THAT(o.failure->v.summary, HasSubstr("past"));
}

TEST(CudaHarnessOnGpu, CatchesAWriteToAnInput) {
  REQUIRE_DEVICE();
  const PropertyOutcome o = run_mutant(mutant<Break::write_to_q>, Property::memory);
  ASSERT_TRUE(o.failure);
  EXPECT_THAT(o.failure->v.summary, HasSubstr("wrote to q"));
}

}  // namespace
}  // namespace attncheck
