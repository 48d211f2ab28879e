// The GoogleTest integration's environment (attncheck/gtest.h): ATTNCHECK_*
// variables and RapidCheck's RC_PARAMS, their precedence, their errors, and
// that RapidCheck's parameters reach the suite's loop.
#include <attncheck/gtest.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <utility>

namespace {

using namespace attncheck;

// Sets the variables for one test and restores none of the others: each
// test starts from an environment without them.
class Env : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : {"RC_PARAMS", "ATTNCHECK_CASES", "ATTNCHECK_SEED", "ATTNCHECK_STRICT", "ATTNCHECK_FORK",
                         "ATTNCHECK_PRECISION"})
      unsetenv(v);
  }
  void TearDown() override { SetUp(); }
  static void set(std::initializer_list<std::pair<const char*, const char*>> vars) {
    for (const auto& [k, v] : vars) setenv(k, v, 1);
  }
};

std::string error_of(void (*f)()) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST_F(Env, DefaultsWithoutVariables) {
  const SuiteOptions o = attncheck::testing::options_from_env();
  EXPECT_EQ(o.cases, 30);
  EXPECT_EQ(o.seed, 1u);
  EXPECT_EQ(o.max_size, 100);
  EXPECT_EQ(o.max_discard_ratio, 10);
  EXPECT_TRUE(o.shrink);
  EXPECT_TRUE(o.fork);
  EXPECT_FALSE(o.strict);
  EXPECT_EQ(o.precision, Precision::fused);
}

TEST_F(Env, PrecisionContractFromTheEnvironment) {
  set({{"ATTNCHECK_PRECISION", "unfused"}});
  EXPECT_EQ(attncheck::testing::options_from_env().precision, Precision::unfused);
  set({{"ATTNCHECK_PRECISION", "input"}});
  EXPECT_EQ(attncheck::testing::options_from_env().precision, Precision::input);
  set({{"ATTNCHECK_PRECISION", "bf16"}});
  EXPECT_EQ(error_of([] { attncheck::testing::options_from_env(); }),
            "ATTNCHECK_PRECISION: unknown precision contract 'bf16' (expected fused, unfused or input)");
}

TEST_F(Env, RapidCheckParametersApply) {
  set({{"RC_PARAMS", "max_success=7 seed=42 max_size=12 max_discard_ratio=3 noshrink=1"}});
  const SuiteOptions o = attncheck::testing::options_from_env();
  EXPECT_EQ(o.cases, 7);
  EXPECT_EQ(o.seed, 42u);
  EXPECT_EQ(o.max_size, 12);
  EXPECT_EQ(o.max_discard_ratio, 3);
  EXPECT_FALSE(o.shrink);
}

TEST_F(Env, OnlyTheKeysRcParamsNames) {
  set({{"RC_PARAMS", "max_size=5"}});
  const RapidCheckParams p = rapidcheck_params_from_env();
  EXPECT_EQ(p.max_size, 5);
  EXPECT_FALSE(p.max_success.has_value());
  EXPECT_FALSE(p.seed.has_value());
  EXPECT_FALSE(p.max_discard_ratio.has_value());
  EXPECT_FALSE(p.noshrink.has_value());
  const SuiteOptions o = attncheck::testing::options_from_env();
  EXPECT_EQ(o.cases, 30);
  EXPECT_EQ(o.seed, 1u);
  EXPECT_EQ(o.max_size, 5);
}

TEST_F(Env, AttncheckVariablesWinOverRcParams) {
  set({{"RC_PARAMS", "max_success=7 seed=42"}, {"ATTNCHECK_CASES", "3"}, {"ATTNCHECK_SEED", "9"}});
  const SuiteOptions o = attncheck::testing::options_from_env();
  EXPECT_EQ(o.cases, 3);
  EXPECT_EQ(o.seed, 9u);
}

TEST_F(Env, MalformedRcParamsIsAnErrorNamingIt) {
  set({{"RC_PARAMS", "max_size=abc"}});
  const std::string e = error_of([] { attncheck::testing::options_from_env(); });
  EXPECT_EQ(e.rfind("RC_PARAMS: ", 0), 0u) << e;
  EXPECT_NE(e.find("max_size"), std::string::npos) << e;
}

TEST_F(Env, OutOfRangeRcParamsIsAnError) {
  set({{"RC_PARAMS", "max_success=0"}});
  EXPECT_EQ(error_of([] { attncheck::testing::options_from_env(); }), "RC_PARAMS: max_success must be at least 1, not 0");
  set({{"RC_PARAMS", "max_size=-4"}});  // RapidCheck's own check
  EXPECT_EQ(error_of([] { attncheck::testing::options_from_env(); }),
            "RC_PARAMS: 'max_size' must be a valid non-negative integer");
}

TEST_F(Env, MalformedAttncheckVariablesAreErrors) {
  set({{"ATTNCHECK_CASES", "0"}});
  EXPECT_EQ(error_of([] { attncheck::testing::options_from_env(); }), "ATTNCHECK_CASES must be a positive integer");
  unsetenv("ATTNCHECK_CASES");
  set({{"ATTNCHECK_SEED", "x1"}});
  EXPECT_EQ(error_of([] { attncheck::testing::options_from_env(); }), "ATTNCHECK_SEED must be an unsigned integer");
}

// A kernel that is wrong only when there are at least 5 keys. Counting its calls shows how much shrinking ran.
int g_calls = 0;
attncheck_status wrong_from_five_keys(const attncheck_attention* call, char*, size_t) {
  ++g_calls;
  const int64_t keys = call->k->shape[3] * call->k->shape[4];  // spatial: Hk * Wk
  const DLTensor* o = call->out;
  auto* base = static_cast<char*>(o->data) + o->byte_offset;
  // Checked by the memory property (spatial), which passes when every out
  // element is written and nothing else is: at >= 5 keys the last element
  // is left unwritten.
  int64_t idx[5] = {0, 0, 0, 0, 0};
  const int64_t n = o->shape[0] * o->shape[1] * o->shape[2] * o->shape[3] * o->shape[4];
  for (int64_t i = 0; i < n; ++i) {
    if (!(keys >= 5 && i == n - 1)) {
      int64_t off = 0;
      for (int d = 0; d < 5; ++d) off += idx[d] * o->strides[d];
      *reinterpret_cast<float*>(base + off * 4) = 0.0f;
    }
    for (int d = 4; d >= 0 && ++idx[d] == o->shape[d]; --d) idx[d] = 0;
  }
  return ATTNCHECK_OK;
}

TEST_F(Env, NoshrinkReportsTheGeneratedCaseAndShrinkingShrinksIt) {
  const attncheck_impl impl{"wrong_from_five_keys", kDLCPU, &wrong_from_five_keys};
  set({{"ATTNCHECK_FORK", "0"}, {"ATTNCHECK_CASES", "100"}});
  SuiteOptions shrinking = attncheck::testing::options_from_env();
  g_calls = 0;
  const PropertyOutcome a = run_property(impl, Property::memory, Axes::spatial, DType::f32, shrinking);
  const int calls_shrinking = g_calls;
  ASSERT_TRUE(a.failure.has_value());
  EXPECT_EQ(a.failure->c.Sk(), 5) << a.failure->c.to_text();

  set({{"RC_PARAMS", "noshrink=1"}});
  SuiteOptions plain = attncheck::testing::options_from_env();
  ASSERT_FALSE(plain.shrink);
  g_calls = 0;
  const PropertyOutcome b = run_property(impl, Property::memory, Axes::spatial, DType::f32, plain);
  ASSERT_TRUE(b.failure.has_value());
  EXPECT_GE(b.failure->c.Sk(), 5);
  // Without shrinking only the generated cases up to the failure are run
  // (and the failure rechecked); with it, every shrink candidate too.
  EXPECT_LE(g_calls, 4 * (b.cases_before_failure + 2)) << "cases before failure " << b.cases_before_failure;
  EXPECT_GT(calls_shrinking, g_calls);
}

}  // namespace
