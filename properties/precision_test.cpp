// The 16-bit error model: no false alarm on correct kernels of each
// precision contract (fused, unfused, input) in f16 and bf16, summing in
// different orders (properties/mutants/precision.h), and each contract's
// bound and literal evaluation checked against known cases.
//
// ATTNCHECK_CASES_PER_CONTRACT sets the cases per (contract, dtype), shared
// among its kernels (default 600; ci/false-alarms runs 100,000). Each test
// prints the worst error / bound and the worst error / the contract's
// literal evaluation's error it saw.
#include <attncheck/error_model.h>
#include <attncheck/generators.h>
#include <attncheck/guarded.h>
#include <attncheck/properties.h>

#include "mutants/precision.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

namespace attncheck {
namespace {

struct Variant {
  std::string name;
  precision::Recipe recipe;
};

std::vector<Variant> variants(Precision p) {
  using precision::Contract;
  using precision::Recipe;
  auto make = [](Contract c, Recipe::Acc acc, int tile, bool reversed, bool round_p, bool ell_of_rounded,
                 bool scale_after) {
    Recipe r;
    r.contract = c, r.acc = acc, r.tile = tile, r.reversed = reversed, r.round_p = round_p;
    r.ell_of_rounded = ell_of_rounded, r.scale_after = scale_after;
    return r;
  };
  switch (p) {
    case Precision::fused:
      return {
          {"one_pass_p_rounded", make(Contract::fused, Recipe::f32, 0, false, true, false, false)},
          {"tiles16_p_rounded", make(Contract::fused, Recipe::f32, 16, false, true, false, false)},
          {"tiles64_p_kept", make(Contract::fused, Recipe::f32, 64, false, false, false, false)},
          {"reversed_normaliser_of_rounded_p", make(Contract::fused, Recipe::f32, 0, true, true, true, false)},
          {"double_p_kept", make(Contract::fused, Recipe::f64, 0, false, false, false, false)},
          {"double_tiles16_p_rounded", make(Contract::fused, Recipe::f64, 16, false, true, false, false)},
      };
    case Precision::unfused:
      return {
          {"math_sdpa", make(Contract::unfused, Recipe::f32, 0, false, true, false, false)},
          {"math_sdpa_reversed", make(Contract::unfused, Recipe::f32, 0, true, true, false, false)},
          {"bmm_then_scale", make(Contract::unfused, Recipe::f32, 0, false, true, false, true)},
          {"math_sdpa_double", make(Contract::unfused, Recipe::f64, 0, false, true, false, false)},
      };
    case Precision::input:
      return {
          {"one_pass", make(Contract::input, Recipe::f32, 0, false, true, false, false)},
          {"reversed", make(Contract::input, Recipe::f32, 0, true, true, false, false)},
          {"tiles16", make(Contract::input, Recipe::f32, 16, false, true, false, false)},
      };
  }
  return {};
}

int cases_per_contract() {
  const char* v = std::getenv("ATTNCHECK_CASES_PER_CONTRACT");
  return v && *v ? std::max(1, std::atoi(v)) : 600;
}

// The recipe the plain function pointer below runs.
precision::Recipe current;
attncheck_status run_current(const attncheck_attention* call, char* message, size_t size) {
  return precision::attention(current, call, message, size);
}

struct Param {
  Precision contract;
  DType dtype;
};

class NoFalseAlarm16 : public ::testing::TestWithParam<Param> {};

TEST_P(NoFalseAlarm16, OnEveryCorrectKernelOfTheContract) {
  const auto [contract, dtype] = GetParam();
  const attncheck_impl impl{"variant16", kDLCPU, run_current};
  CheckOptions opt;
  opt.run.fork = false;
  opt.precision = contract;
  opt.compare_literal = true;
  const auto vs = variants(contract);
  const int per_variant = (cases_per_contract() + static_cast<int>(vs.size()) - 1) / static_cast<int>(vs.size());
  int total = 0, outside = 0;
  double worst_bound = 0, worst_literal = 0;
  for (const auto& variant : vs) {
    current = variant.recipe;
    rc::detail::TestParams params;
    params.maxSuccess = per_variant;
    params.maxSize = 100;
    params.maxDiscardRatio = 10;
    params.seed = static_cast<uint64_t>(contract) * 7919 + static_cast<uint64_t>(dtype) * 104729 + total + 1;
    if (const char* s = std::getenv("ATTNCHECK_SEED")) params.seed += std::strtoull(s, nullptr, 10);
    const auto result = rc::detail::checkTestable(
        [&] {
          gen::CaseOptions g;
          g.dtype = dtype;
          g.max_flops = 2e5;
          const Case c = *gen::attention_case(g);
          GuardedCase probe(c);
          // A case this contract cannot compute in f16 (its materialised
          // values overflow) is outside its domain: not a false alarm.
          if (!contract_overflow(reference_args(probe), dtype, contract).empty()) {
            ++outside;
            RC_DISCARD("outside the contract's range");
          }
          const Verdict v = check_property(Property::semantics, impl, c, opt);
          RC_ASSERT(v.kind == Verdict::pass);
          ++total;
          worst_bound = std::max(worst_bound, v.worst_ratio);
          worst_literal = std::max(worst_literal, v.literal_ratio);
        },
        rc::detail::TestMetadata{}, params);
    rc::detail::SuccessResult ok;
    EXPECT_TRUE(result.match(ok)) << name_of(contract) << " " << ref::name_of(dtype) << " " << variant.name
                                  << ": " << [&] {
                                       std::ostringstream s;
                                       rc::detail::printResultMessage(result, s);
                                       return s.str();
                                     }();
  }
  std::printf("%s %s: %d cases (%d outside the contract's f16 range, not counted), 0 false alarms expected; worst "
              "error / bound %.3g, worst error / the literal evaluation's error %.3g\n",
              name_of(contract), ref::name_of(dtype), total, outside, worst_bound, worst_literal);
  RecordProperty("cases", total);
  RecordProperty("worst_error_bound_ratio", std::to_string(worst_bound));
  RecordProperty("worst_error_literal_ratio", std::to_string(worst_literal));
  EXPECT_GT(total, 0);
}

INSTANTIATE_TEST_SUITE_P(ErrorModel, NoFalseAlarm16,
                         ::testing::Values(Param{Precision::fused, DType::bf16}, Param{Precision::fused, DType::f16},
                                           Param{Precision::unfused, DType::bf16},
                                           Param{Precision::unfused, DType::f16},
                                           Param{Precision::input, DType::bf16},
                                           Param{Precision::input, DType::f16}),
                         [](const ::testing::TestParamInfo<Param>& i) {
                           return std::string(name_of(i.param.contract)) + "_" + ref::name_of(i.param.dtype);
                         });

// The fused contract's literal evaluation is exactly the correct fused
// kernel with P rounded once (same order, same roundings).
TEST(ErrorModel16, TheLiteralFusedEvaluationIsTheOnePassKernel) {
  current = variants(Precision::fused)[0].recipe;
  const attncheck_impl impl{"variant16", kDLCPU, run_current};
  CheckOptions opt;
  opt.run.fork = false;
  opt.compare_literal = true;
  for (DType dt : {DType::bf16, DType::f16}) {
    const Case c = Case::parse(std::string("spatial ") + ref::name_of(dt) +
                               " B=1 C=8 Cv=8 heads=1 q=1x3x3 k=1x4x8 scale=0.35 share=none place=low "
                               "Lq=0/1/0:0:0:0:0/0/a/0/0 Lk=0/1/0:0:0:0:0/0/a/0/0 Lv=0/1/0:0:0:0:0/0/a/0/0 "
                               "Lout=0/1/0:0:0:0:0/0/a/0/0 Vq=normal:4 Vk=normal:5 Vv=normal:6");
    const Verdict v = check_property(Property::semantics, impl, c, opt);
    ASSERT_EQ(v.kind, Verdict::pass) << v.summary;
    // Its error equals the literal evaluation's (ratio 1), unless both are
    // below the ratio's floor.
    EXPECT_LE(v.literal_ratio, 1.0) << ref::name_of(dt);
  }
}

// Each 16-bit bound is several times tighter than the `input` one it
// replaces: on a case with 300 keys, `fused` is at least 50x tighter (it
// measures 1,200-2,100x).
TEST(ErrorModel16, FusedIsFarTighterThanInput) {
  for (DType dt : {DType::bf16, DType::f16}) {
    const Case c = Case::parse(std::string("spatial ") + ref::name_of(dt) +
                               " B=1 C=16 Cv=4 heads=1 q=1x2x2 k=1x1x300 scale=0.25 share=none place=low "
                               "Lq=0/1/0:0:0:0:0/0/a/0/0 Lk=0/1/0:0:0:0:0/0/a/0/0 Lv=0/1/0:0:0:0:0/0/a/0/0 "
                               "Lout=0/1/0:0:0:0:0/0/a/0/0 Vq=normal:1 Vk=normal:2 Vv=normal:3");
    GuardedCase g(c);
    const Expectation fused = expect(g, Precision::fused), loose = expect(g, Precision::input);
    double least = 1e300, most = 0;
    for (int64_t i = 0; i < fused.bound.numel(); ++i) {
      EXPECT_GT(fused.bound[i], 0);
      EXPECT_LT(50 * fused.bound[i], loose.bound[i]) << ref::name_of(dt) << " element " << i;
      const double r = static_cast<double>(loose.bound[i] / fused.bound[i]);
      least = std::min(least, r), most = std::max(most, r);
    }
    std::printf("%s: the input bound is %.0f to %.0f times the fused one\n", ref::name_of(dt), least, most);
  }
}

// Outside f16's range: the unfused contract cannot compute logits past
// 65504, and says so; fused can.
TEST(ErrorModel16, ContractOverflowIsNamedForF16Only) {
  const std::string text = " B=1 C=1 Cv=1 heads=1 q=1x1x2 k=1x1x3 scale=30 share=none place=low "
                           "Lq=0/1/0:0:0:0:0/0/a/0/0 Lk=0/1/0:0:0:0:0/0/a/0/0 Lv=0/1/0:0:0:0:0/0/a/0/0 "
                           "Lout=0/1/0:0:0:0:0/0/a/0/0 Vq=scaled:28 Vk=scaled:28 Vv=normal:3";
  GuardedCase f16(Case::parse("spatial f16" + text)), bf16(Case::parse("spatial bf16" + text));
  const std::string why = contract_overflow(reference_args(f16), DType::f16, Precision::unfused);
  EXPECT_NE(why.find("past f16's largest finite value 65504"), std::string::npos) << why;
  EXPECT_EQ(contract_overflow(reference_args(f16), DType::f16, Precision::fused), "");
  EXPECT_EQ(contract_overflow(reference_args(bf16), DType::bf16, Precision::unfused), "");
}

}  // namespace
}  // namespace attncheck
