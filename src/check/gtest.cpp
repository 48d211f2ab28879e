#include <attncheck/gtest.h>
#include <attncheck/report.h>
#include <attncheck/verify_args.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

namespace attncheck::testing {

namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

std::vector<DType> dtypes_from_env() {
  std::vector<DType> out;
  const char* v = env("ATTNCHECK_DTYPES");
  for (const auto& x : split_list(v ? v : "f32")) out.push_back(ref::parse_dtype(x));
  return out;
}

std::string self_path() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("./your_test") : p.string();
}

class PropertyTest : public ::testing::Test {
 public:
  PropertyTest(attncheck_impl impl, Property p, Axes axes, std::string filter)
      : impl_(impl), p_(p), axes_(axes), filter_(std::move(filter)) {}

  void TestBody() override {
    SuiteOptions opt;
    try {
      opt = options_from_env();
    } catch (const std::exception& e) {
      FAIL() << "attncheck: " << e.what();
    }
    std::vector<PropertyOutcome> outcomes;
    if (const char* text = env("ATTNCHECK_CASE")) {
      Case c;
      try {
        c = Case::parse(text);
      } catch (const std::exception& e) {
        FAIL() << "attncheck: ATTNCHECK_CASE: " << e.what();
      }
      if (c.axes != axes_ || !property_accepts(p_, c)) GTEST_SKIP() << "ATTNCHECK_CASE is for another test";
      outcomes.push_back(run_case(impl_, p_, c, opt));
    } else {
      for (DType dt : dtypes_from_env()) outcomes.push_back(run_property(impl_, p_, axes_, dt, opt));
    }
    int checked = 0, declined = 0;
    std::string not_verified;
    for (const auto& o : outcomes) {
      checked += o.checked;
      declined += o.declined;
      if (!o.error.empty()) ADD_FAILURE() << "attncheck could not run " << name_of(p_) << ": " << o.error;
      if (!o.failure) {
        if (!o.not_verified().empty() && o.error.empty())
          not_verified += std::string(not_verified.empty() ? "" : "; ") + ref::name_of(o.dtype) + ": " +
                          o.not_verified();
        continue;
      }
      std::ostringstream report;
      const std::string replay = gtest_replay(self_path(), filter_, o.failure->c,
                                              ReplayOptions{opt.strict, opt.no_declines, opt.fork, opt.precision});
      print_failure(report, o, replay);
      ADD_FAILURE() << impl_.name << " breaks " << name_of(p_) << "\n" << report.str();
    }
    RecordProperty("checked", checked);
    RecordProperty("declined", declined);
    // A run that checked nothing is not a pass: skipped, with the reason.
    if (!HasFailure() && !not_verified.empty()) GTEST_SKIP() << "not verified: " << not_verified;
  }

 private:
  attncheck_impl impl_;
  Property p_;
  Axes axes_;
  std::string filter_;
};

}  // namespace

SuiteOptions options_from_env() {
  SuiteOptions opt;
  // RapidCheck's own parameters first; attncheck's variables win over them.
  const RapidCheckParams rc = rapidcheck_params_from_env();
  if (rc.max_success) opt.cases = *rc.max_success;
  if (rc.seed) opt.seed = *rc.seed;
  if (rc.max_size) opt.max_size = *rc.max_size;
  if (rc.max_discard_ratio) opt.max_discard_ratio = *rc.max_discard_ratio;
  if (rc.noshrink) opt.shrink = !*rc.noshrink;
  if (const char* v = env("ATTNCHECK_CASES")) {
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    if (*end || n < 1) throw std::invalid_argument("ATTNCHECK_CASES must be a positive integer");
    opt.cases = static_cast<int>(n);
  }
  if (const char* v = env("ATTNCHECK_SEED")) {
    char* end = nullptr;
    opt.seed = std::strtoull(v, &end, 10);
    if (*end) throw std::invalid_argument("ATTNCHECK_SEED must be an unsigned integer");
  }
  if (const char* v = env("ATTNCHECK_STRICT")) opt.strict = std::string(v) == "1";
  if (const char* v = env("ATTNCHECK_FORK")) opt.fork = std::string(v) != "0";
  if (const char* v = env("ATTNCHECK_NO_DECLINES")) opt.no_declines = std::string(v) == "1";
  if (const char* v = env("ATTNCHECK_PRECISION")) {
    try {
      opt.precision = parse_precision(v);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("ATTNCHECK_PRECISION: ") + e.what());
    }
  }
  dtypes_from_env();  // validates early
  return opt;
}

int register_suite(const char* suite, const char* name, attncheck_impl impl, const char* file, int line) {
  for (Property p : all_properties())
    for (Axes axes : {Axes::spatial, Axes::temporal, Axes::spatiotemporal}) {
      const std::string test = std::string(name) + "_" + name_of(p) + "_" + ref::name_of(axes);
      const std::string filter = std::string(suite) + "." + test;
      ::testing::RegisterTest(suite, test.c_str(), nullptr, nullptr, file, line,
                              [=]() -> ::testing::Test* { return new PropertyTest(impl, p, axes, filter); });
    }
  return 0;
}

}  // namespace attncheck::testing
