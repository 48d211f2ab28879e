// The gradient error model (gradient_model.h): no false alarm on correct
// backward kernels that sum in other orders (properties/backward_variants.h:
// one pass, FlashAttention 2's recomputation over key tiles of 16 and 64
// with Δ from out, double accumulation, reversed sums; 16-bit ones with P
// and dS rounded to the input dtype before their products, as the `fused`
// contract allows), each paired with a correct forward whose out is what
// the backward call gets; and the bound is not vacuous: kernels wrong by a
// small but real amount are caught.
//
// ATTNCHECK_BACKWARD_CASES sets the backward.semantics cases per dtype,
// shared among the dtype's variants (default 600, about 7 s in all in a
// release build; 40 under the sanitizers; ci/false-alarms runs 100,000);
// backward.layout_invariance (non-strict) runs a fifth of that. Where an
// exact gradient lies past f16's range, a correct f16 kernel's inf is
// taken as right (gradient_model.h, within_range). A case where the fused
// contract's f16 dS overflows is outside the contract and discarded, counted
// (gradient_contract_overflow, as the forward's NoFalseAlarm16 does).
// ATTNCHECK_SEED shifts the seeds. Each test prints, per variant, the
// cases run and the worst error / bound seen.
#include <attncheck/generators.h>
#include <attncheck/gradient_model.h>
#include <attncheck/guarded.h>
#include <attncheck/properties.h>
#include <attncheck/reference/backward.h>

#include "../src/impls/reference_f32/reference_f32.h"
#include "backward_variants.h"
#include "mutants/precision.h"
#include "order_variants.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace attncheck {
namespace {

using Forward = attncheck_status (*)(const attncheck_attention*, char*, size_t);
using Backward = attncheck_status (*)(const attncheck_attention_backward*, char*, size_t);

// The correct fused 16-bit forwards of precision.h as plain functions.
precision::Recipe fused_recipe(int tile, bool reversed, bool round_p, bool ell_of_rounded, bool f64) {
  precision::Recipe r;
  r.contract = precision::Contract::fused;
  r.acc = f64 ? precision::Recipe::f64 : precision::Recipe::f32;
  r.tile = tile, r.reversed = reversed, r.round_p = round_p, r.ell_of_rounded = ell_of_rounded;
  return r;
}
template <int tile, bool reversed, bool round_p, bool ell_of_rounded, bool f64>
attncheck_status fused16(const attncheck_attention* call, char* message, size_t size) {
  return precision::attention(fused_recipe(tile, reversed, round_p, ell_of_rounded, f64), call, message, size);
}

struct Pair {
  const char* name;
  Forward forward;
  Backward backward;
};

// Each dtype's correct backward kernels, each with the correct forward
// whose out it gets.
std::vector<Pair> pairs(DType dt) {
  using O = BackwardOrder;
  constexpr Rounding F = Rounding::fused;
  switch (dt) {
    case DType::f32:
      return {
          {"one_pass (fwd reference_f32)", reference_f32::attention, backward_variant<O::one_pass>},
          {"flash16 (fwd online tiles of 16)", variant<Order::online_tiles>, backward_variant<O::flash16>},
          {"flash64 (fwd reversed)", variant<Order::reversed>, backward_variant<O::flash64>},
          {"flash16 (fwd double accumulation)", variant<Order::double_accumulation>, backward_variant<O::flash16>},
          {"double_accumulation (fwd double accumulation)", variant<Order::double_accumulation>,
           backward_variant<O::double_accumulation>},
          {"reversed (fwd reversed)", variant<Order::reversed>, backward_variant<O::reversed>},
      };
    case DType::f64:
      return {
          {"one_pass (fwd one pass)", plain_forward<0>, backward_variant<O::one_pass>},
          {"flash16 (fwd tiles of 16)", plain_forward<16>, backward_variant<O::flash16>},
          {"flash64 (fwd one pass)", plain_forward<0>, backward_variant<O::flash64>},
          {"long_double_accumulation (fwd tiles of 64)", plain_forward<64>, backward_variant<O::double_accumulation>},
          {"reversed (fwd tiles of 16)", plain_forward<16>, backward_variant<O::reversed>},
      };
    default:  // f16, bf16 under `fused`
      return {
          {"one_pass, f32 kept (fwd one pass, P rounded)", fused16<0, false, true, false, false>,
           backward_variant<O::one_pass>},
          {"one_pass, P and dS rounded (fwd tiles of 64, P kept)", fused16<64, false, false, false, false>,
           backward_variant<O::one_pass, F>},
          {"flash16, P and dS rounded (fwd tiles of 16, P rounded)", fused16<16, false, true, false, false>,
           backward_variant<O::flash16, F>},
          {"flash64, P and dS rounded (fwd tiles of 64, P kept)", fused16<64, false, false, false, false>,
           backward_variant<O::flash64, F>},
          {"flash16, f32 kept (fwd double, P kept)", fused16<0, false, false, false, true>,
           backward_variant<O::flash16>},
          {"double_accumulation, P and dS rounded (fwd double tiles of 16)", fused16<16, false, true, false, true>,
           backward_variant<O::double_accumulation, F>},
          {"reversed, P and dS rounded (fwd reversed, normaliser of rounded P)", fused16<0, true, true, true, false>,
           backward_variant<O::reversed, F>},
      };
  }
}

int backward_cases() {
  const char* v = std::getenv("ATTNCHECK_BACKWARD_CASES");
#if defined(__SANITIZE_ADDRESS__)
  const int fallback = 40;  // the sanitizers run the reference ~20x slower
#else
  const int fallback = 600;
#endif
  return v && *v ? std::max(1, std::atoi(v)) : fallback;
}

uint64_t seed_shift() {
  const char* s = std::getenv("ATTNCHECK_SEED");
  return s && *s ? std::strtoull(s, nullptr, 10) : 0;
}

std::string verdict_text(const Case& c, const Verdict& v) {
  std::ostringstream s;
  s << "case: " << c.to_text() << "\nverdict: " << v.summary;
  for (const auto& d : v.details) s << "\n  " << d;
  if (!v.diagnosis.empty()) s << "\ndiagnosis: " << v.diagnosis;
  return s.str();
}

// Where a 16-bit case's exact gradients, or the dS the `fused` contract
// materialises in the input dtype, reach past f16's largest finite value
// (less a margin of 4 u for the rounding on the way), no correct f16 kernel
// can write them: the sentence saying which, or "". bf16, f32, f64: "".
std::string outside_f16(const Case& c) {
  if (c.dtype != DType::f16) return "";
  GuardedCase g(c);
  const ref::BackwardTrace tr = ref::trace_attention_backward(reference_args(g), g.view(kRoleDout));
  const long double limit = 65504 * (1 - 4 * unit_roundoff(DType::f16));
  const std::pair<const char*, const ref::Tensor*> ts[] = {{"dq", &tr.dq}, {"dk", &tr.dk}, {"dv", &tr.dv},
                                                           {"dS", &tr.dS}};
  for (const auto& [name, t] : ts)
    for (int64_t i = 0; i < t->numel(); ++i)
      if (std::fabs((*t)[i]) > limit) {
        char b[160];
        std::snprintf(b, sizeof b, "the exact %s reaches %.6Lg, past f16's largest finite value 65504", name,
                      static_cast<long double>((*t)[i]));
        return b;
      }
  return "";
}

// Runs `cases` generated cases of property p (shared among dt's variants);
// every one must pass. Prints the worst error / bound per variant.
void expect_no_false_alarm(DType dt, Property p, int cases) {
  const auto ps = pairs(dt);
  const int per = (cases + static_cast<int>(ps.size()) - 1) / static_cast<int>(ps.size());
  const auto start = std::chrono::steady_clock::now();
  int total = 0, declined_total = 0, outside_total = 0, index = 0;
  double worst_all = 0;
  for (const Pair& pair : ps) {
    const attncheck_impl impl{"variant", kDLCPU, pair.forward};
    const attncheck_backward_impl bimpl{"variant", kDLCPU, pair.backward};
    CheckOptions opt;
    opt.run.fork = false;
    opt.precision = Precision::fused;
    opt.backward = &bimpl;
    int run = 0, declined = 0, outside = 0;
    double worst = 0;
    rc::detail::TestParams params;
    params.maxSuccess = per;
    params.maxSize = 100;
    params.maxDiscardRatio = 10;
    params.seed = 1000003ull * static_cast<uint64_t>(dt) + 7919ull * static_cast<uint64_t>(p) + 101ull * index++ +
                  seed_shift() + 1;
    const auto result = rc::detail::checkTestable(
        [&] {
          gen::CaseOptions g;
          g.dtype = dt;
          g.property = p;
          g.max_flops = 2e5;
          const Case c =
              *rc::gen::suchThat(gen::attention_case(g), [p](const Case& x) { return property_accepts(p, x); });
          // A case the contract cannot compute in f16 (dS, which it rounds
          // to f16, overflows) is outside its domain, as the forward's
          // NoFalseAlarm16 discards its contract_overflow: counted apart.
          {
            GuardedCase probe(c);
            if (!gradient_contract_overflow(probe, opt.precision).empty()) {
              ++outside;
              RC_DISCARD("outside the contract's range");
            }
          }
          const Verdict v = check_property(p, impl, c, opt);
          if (v.kind == Verdict::declined) {
            ++declined;
            RC_DISCARD("declined");
          }
          if (v.kind != Verdict::pass) RC_FAIL(verdict_text(c, v));
          ++run;
          worst = std::max(worst, v.worst_ratio);
        },
        rc::detail::TestMetadata{}, params);
    rc::detail::SuccessResult ok;
    EXPECT_TRUE(result.match(ok)) << name_of(p) << " " << ref::name_of(dt) << " " << pair.name << ": " << [&] {
      std::ostringstream s;
      rc::detail::printResultMessage(result, s);
      return s.str();
    }();
    if (p == Property::backward_semantics)
      std::printf("  %s %-4s %-70s %6d cases, worst error / bound %.3g\n", name_of(p), ref::name_of(dt), pair.name,
                  run, worst);
    else
      std::printf("  %s %-4s %-70s %6d cases\n", name_of(p), ref::name_of(dt), pair.name, run);
    total += run, declined_total += declined, outside_total += outside;
    worst_all = std::max(worst_all, worst);
    EXPECT_GT(run, 0) << pair.name;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s %s: %d cases (%d declined, %d outside the contract's f16 range), 0 false alarms expected%s, "
              "%.1f s\n",
              name_of(p), ref::name_of(dt), total, declined_total, outside_total,
              p == Property::backward_semantics ? (", worst error / bound " + std::to_string(worst_all)).c_str()
                                                : "",
              secs);
  ::testing::Test::RecordProperty("cases", total);
  ::testing::Test::RecordProperty("outside_contract_range", outside_total);
  if (p == Property::backward_semantics)
    ::testing::Test::RecordProperty("worst_error_bound_ratio", std::to_string(worst_all));
}

TEST(BackwardErrorModel, NoFalseAlarmF32) {
  expect_no_false_alarm(DType::f32, Property::backward_semantics, backward_cases());
}
TEST(BackwardErrorModel, NoFalseAlarmF64) {
  expect_no_false_alarm(DType::f64, Property::backward_semantics, backward_cases());
}
TEST(BackwardErrorModel, NoFalseAlarmF16Fused) {
  expect_no_false_alarm(DType::f16, Property::backward_semantics, backward_cases());
}
TEST(BackwardErrorModel, NoFalseAlarmBF16Fused) {
  expect_no_false_alarm(DType::bf16, Property::backward_semantics, backward_cases());
}
TEST(BackwardErrorModel, NoFalseAlarmLayoutInvarianceF32) {
  expect_no_false_alarm(DType::f32, Property::backward_layout_invariance, std::max(1, backward_cases() / 5));
}
TEST(BackwardErrorModel, NoFalseAlarmLayoutInvarianceF64) {
  expect_no_false_alarm(DType::f64, Property::backward_layout_invariance, std::max(1, backward_cases() / 5));
}
TEST(BackwardErrorModel, NoFalseAlarmLayoutInvarianceF16Fused) {
  expect_no_false_alarm(DType::f16, Property::backward_layout_invariance, std::max(1, backward_cases() / 5));
}
TEST(BackwardErrorModel, NoFalseAlarmLayoutInvarianceBF16Fused) {
  expect_no_false_alarm(DType::bf16, Property::backward_layout_invariance, std::max(1, backward_cases() / 5));
}

// Past f16's range (found by the false-alarm run, ATTNCHECK_BACKWARD_CASES
// =2000): the exact dq reaches 1.2e5, past 65504, so every correct f16
// kernel writes inf there. backward.semantics takes an inf of the exact
// value's sign as right where |exact| + bound reaches f16's overflow
// threshold (gradient_model.h, within_range), and fails it nowhere else.
TEST(BackwardErrorModel, AGradientPastF16sRangeMayBeInf) {
  const Case c = Case::parse(
      "spatial f16 B=1 C=1 Cv=1 heads=1 q=1x7x9 k=1x1x4 scale=2 share=none place=low Lq=0/1/0:0:0:0:0/0/a/0/0 "
      "Lk=0/1/0:0:0:0:0/0/a/0/0 Lv=0/1/0:0:0:0:0/0/a/0/0 Lout=0/1/0:0:0:0:0/0/a/0/0 Ldout=0/1/0:0:0:0:0/0/a/0/0 "
      "Ldq=0/1/0:0:0:0:0/0/a/0/0 Ldk=0/1/0:0:0:0:0/0/a/0/0 Ldv=0/1/0:0:0:0:0/0/a/0/0 Vq=normal:20802742 "
      "Vk=dominant:26705934 Vv=offset:18908097 Vdout=scaled:15184281");
  const attncheck_impl impl{"variant", kDLCPU, fused16<64, false, false, false, false>};
  const attncheck_backward_impl bimpl{"variant", kDLCPU,
                                      backward_variant<BackwardOrder::one_pass, Rounding::fused>};
  CheckOptions opt;
  opt.run.fork = false;
  opt.backward = &bimpl;
  const std::string why = outside_f16(c);
  EXPECT_NE(why.find("the exact dq reaches"), std::string::npos) << why;
  const Verdict v = check_property(Property::backward_semantics, impl, c, opt);
  EXPECT_EQ(v.kind, Verdict::pass) << verdict_text(c, v);
  // The clause itself: an inf of the wrong sign, or one where the exact
  // value is far inside the range, is still wrong.
  ref::Tensor want({3}), bound({3}), got({3});
  want[0] = 70000, want[1] = 70000, want[2] = 1000;
  bound[0] = bound[1] = bound[2] = 1;
  got[0] = INFINITY, got[1] = -INFINITY, got[2] = INFINITY;
  const ref::Tensor r = within_range(got, want, bound, DType::f16);
  EXPECT_EQ(r[0], 70000);
  EXPECT_TRUE(std::isinf(r[1]));
  EXPECT_TRUE(std::isinf(r[2]));
}

// backward.layout_invariance, non-strict, once called two runs that wrote
// the same inf different (|x - y| <= 2 bound is NaN for x = y = inf). Found
// by the f16 false-alarm run on cases whose exact dq lies past 65504, where
// every correct f16 kernel writes inf in both layouts.
TEST(BackwardErrorModel, EqualInfinitiesInTwoLayoutsAreEqual) {
  const Case c = Case::parse(
      "temporal f16 B=1 C=1 Cv=1 heads=1 q=4x1x1 k=2x1x1 scale=1 share=none place=low Lq=0/1/0:0:0:0:0/0/a/0/0 "
      "Lk=0/1/0:0:0:0:0/0/a/0/0 Lv=0/1/0:0:0:0:0/0/a/0/0 Lout=0/1/0:0:0:0:0/0/a/0/0 Ldout=0/1/0:0:0:0:0/0/a/0/0 "
      "Ldq=0/1/0:0:0:0:0/0/a/0/0 Ldk=0/1/0:0:0:0:0/0/a/0/0 Ldv=0/1/0:0:0:0:0/0/a/0/0 Vq=ties:80251 "
      "Vk=dominant:50937 Vv=scaled:89058 Vdout=large:1091");
  const attncheck_impl impl{"variant", kDLCPU, fused16<64, false, false, false, false>};
  const attncheck_backward_impl bimpl{"variant", kDLCPU,
                                      backward_variant<BackwardOrder::flash64, Rounding::fused>};
  CheckOptions opt;
  opt.run.fork = false;
  opt.backward = &bimpl;
  EXPECT_NE(outside_f16(c), "");
  const Verdict v = check_property(Property::backward_layout_invariance, impl, c, opt);
  EXPECT_EQ(v.kind, Verdict::pass) << verdict_text(c, v);
}

// The bound is not vacuous: a kernel wrong by a small but real amount is
// caught on some of `cases` generated f32 cases (fixed seed, no
// shrinking). Returns how many.
int caught(const Pair& pair, int cases, uint64_t seed, std::string* first) {
  const attncheck_impl impl{"wrong", kDLCPU, pair.forward};
  const attncheck_backward_impl bimpl{"wrong", kDLCPU, pair.backward};
  CheckOptions opt;
  opt.run.fork = false;
  opt.backward = &bimpl;
  int failed = 0;
  rc::detail::TestParams params;
  params.maxSuccess = cases;
  params.seed = seed;
  params.disableShrinking = true;
  rc::detail::checkTestable(
      [&] {
        gen::CaseOptions g;
        g.property = Property::backward_semantics;
        g.max_flops = 2e5;
        const Case c = *gen::attention_case(g);
        const Verdict v = check_property(Property::backward_semantics, impl, c, opt);
        if (v.kind == Verdict::fail) {
          if (failed++ == 0) *first = verdict_text(c, v);
        }
      },
      rc::detail::TestMetadata{}, params);
  return failed;
}

TEST(BackwardErrorModel, CatchesDeltaFromOutRoundedToBf16) {
  // FlashAttention 2's recomputation with Δ = sum_e dout out taken from out
  // rounded to bfloat16 (2^-9 relative) while the dtype is f32.
  const Pair wrong{"flash16, Δ from bf16(out)", variant<Order::online_tiles>,
                   backward_variant<BackwardOrder::flash16, Rounding::none, Flaw::delta_from_bf16_out>};
  std::string first;
  const int n = caught(wrong, 40, 11, &first);
  std::printf("Δ from bf16(out): caught on %d of 40 f32 cases; first:\n%s\n", n, first.c_str());
  EXPECT_GT(n, 0);
}

TEST(BackwardErrorModel, CatchesDvWithPerturbedWeights) {
  // dv = sum_p P (1 + 2^-10) dout: every weight 2^-10 too large.
  const Pair wrong{"one_pass, dv's P * (1 + 2^-10)", reference_f32::attention,
                   backward_variant<BackwardOrder::one_pass, Rounding::none, Flaw::dv_weight_perturbed>};
  std::string first;
  const int n = caught(wrong, 40, 12, &first);
  std::printf("dv's P * (1 + 2^-10): caught on %d of 40 f32 cases; first:\n%s\n", n, first.c_str());
  EXPECT_GT(n, 0);
}

}  // namespace
}  // namespace attncheck
