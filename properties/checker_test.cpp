// Properties of the checker itself: the case model's text form and byte
// decoder, guarded memory and the fork runner's findings, and the error
// model (no false alarm on correct float32 kernels that sum in other orders;
// a kernel that rounds probabilities to bfloat16 once is caught). The
// diagnosis has its own file (diagnosis_test.cpp).
#include <attncheck/call_index.h>
#include <attncheck/decode.h>
#include <attncheck/error_model.h>
#include <attncheck/generators.h>
#include <attncheck/guarded.h>
#include <attncheck/properties.h>
#include <attncheck/runner.h>
#include <attncheck/suite.h>

#include "../src/impls/reference_f32/reference_f32.h"
#include "order_variants.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

namespace attncheck {
namespace {

RC_GTEST_PROP(CaseModel, TextRoundTrips, ()) {
  const Case c = *gen::attention_case({});
  const Case back = Case::parse(c.to_text());
  RC_ASSERT(back == c);
  RC_ASSERT(back.to_text() == c.to_text());
}

RC_GTEST_PROP(CaseModel, AnyBytesDecodeToAValidCase, (const std::vector<uint8_t>& bytes)) {
  const Case c = decode_case(bytes.data(), bytes.size());
  RC_ASSERT(c.flops() <= 2e6);
  RC_ASSERT(Case::parse(c.to_text()) == c);
}

// The coverage class "misaligned" is claimed only where the first
// element's address really is not 16-byte aligned.
RC_GTEST_PROP(CaseModel, MisalignedMeansThePointerIs, ()) {
  const Case c = *gen::attention_case({});
  GuardedCase g(c);
  const attncheck_attention* call = g.call();
  const DLTensor* tensors[4] = {call->q, call->k, call->v, call->out};
  for (int role = 0; role < 4; ++role) {
    if (!c.misaligned(role)) continue;
    const auto first = reinterpret_cast<uintptr_t>(tensors[role]->data) + tensors[role]->byte_offset;
    RC_ASSERT(first % 16 != 0);
  }
}

TEST(CaseModel, RejectsMalformedTextWithOneLine) {
  for (const char* bad : {"", "spatial", "spatial f32 B=0", "spatial f32 heads=3 C=4",
                          "spatial f32 q=2x1x1 k=3x1x1", "cubic f32", "spatial f33", "spatial f32 B=x",
                          "spatial f32 Lq=0/1/0:0:0:0:0/0/q/0/0", "spatial f32 Lout=0/1/0:0:0:0:0/0/a/1/0",
                          "spatial f32 share=qk_same q=1x1x1 k=1x2x1", "spatial f32 scale=inf", "spatial f32 B=1 B=1"}) {
    try {
      Case::parse(bad);
      ADD_FAILURE() << "parsed: " << bad;
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
  }
}

RC_GTEST_PROP(GuardedMemory, ViewsHoldTheValuesAndNothingElseChanges, ()) {
  const Case c = *gen::attention_case({});
  GuardedCase g(c);
  RC_ASSERT(g.check_memory().empty());  // nothing ran: nothing around the views changed
  // Values are finite and do not depend on the layout.
  Case packed = c;
  for (auto& r : packed.layout) {
    const int bc = r.broadcast;
    r = LayoutRecipe{};
    r.broadcast = bc;
  }
  GuardedCase p(packed);
  for (int role = 0; role < 3; ++role) {
    const ref::Tensor a = ref::contiguous(g.view(role)), b = ref::contiguous(p.view(role));
    for (int64_t i = 0; i < a.numel(); ++i) {
      RC_ASSERT(std::isfinite(a[i]));
      RC_ASSERT(a[i] == b[i]);
    }
  }
}

// Test implementations with one behaviour each, called through the ABI.
attncheck_status read_past_k(const attncheck_attention* call, char*, size_t) {
  CallShape s;
  validate_call(call, &s, nullptr);
  volatile float sink = 0;
  const char* base = static_cast<const char*>(call->k->data) + call->k->byte_offset;
  for (int64_t i = 0; i < (int64_t{1} << 30); ++i) sink = sink + *reinterpret_cast<const float*>(base + 4 * i);
  return ATTNCHECK_OK;
}
attncheck_status write_q(const attncheck_attention* call, char*, size_t) {
  *reinterpret_cast<float*>(static_cast<char*>(call->q->data) + call->q->byte_offset) = 1;
  return ATTNCHECK_OK;
}
attncheck_status hang(const attncheck_attention*, char*, size_t) {
  for (;;) pause();
}
attncheck_status write_nothing(const attncheck_attention*, char*, size_t) { return ATTNCHECK_OK; }
attncheck_status decline(const attncheck_attention*, char* m, size_t n) {
  std::snprintf(m, n, "not today");
  return ATTNCHECK_UNSUPPORTED;
}

Case small_case() {
  return Case::parse("spatial f32 B=1 C=4 Cv=4 heads=2 q=2x3x3 k=2x3x3 scale=0.5 share=none place=high "
                     "Lq=0/1/0:0:0:0:0/3/a/0/0 Lk=5/2/0:1:0:0:1/2/m/0/0 Lv=0/1/0:0:0:0:0/0/a/0/0 "
                     "Lout=0/1/0:0:1:0:0/1/a/0/0 Vq=normal:1 Vk=normal:2 Vv=normal:3");
}

TEST(Runner, NamesFaultsHangsAndUnwrittenOutput) {
  RunOptions opt;
  opt.timeout_base = 1;
  auto run = [&](auto fn) {
    GuardedCase g(small_case());
    attncheck_impl impl{"t", kDLCPU, fn};
    return run_call(impl, g, opt);
  };
  EXPECT_EQ(run(read_past_k).finding, "fault: read past the end of k");
  EXPECT_EQ(run(write_q).finding, "fault: wrote to q");
  EXPECT_NE(run(hang).finding.find("hang: no return within"), std::string::npos);
  EXPECT_TRUE(run(write_nothing).finding.empty());
  const attncheck_impl lazy{"t", kDLCPU, write_nothing};
  EXPECT_EQ(check_property(Property::memory, lazy, small_case(), {}).summary, "did not write out[0,0,0,0,0]");
  const RunResult d = run(decline);
  EXPECT_EQ(d.status, ATTNCHECK_UNSUPPORTED);
  EXPECT_EQ(d.message, "not today");
  EXPECT_TRUE(d.finding.empty());
  const RunResult ok = run(reference_f32::attention);
  EXPECT_TRUE(ok.ok()) << ok.finding << ok.message;
}

// Writes every byte of out's view with the out canary's byte (0xa5):
// wrong values, but every element written.
attncheck_status writes_canary_bytes(const attncheck_attention* call, char*, size_t) {
  const DLTensor* o = call->out;
  const size_t elem = o->dtype.bits / 8;
  int64_t i[5];
  for (i[0] = 0; i[0] < o->shape[0]; ++i[0])
    for (i[1] = 0; i[1] < o->shape[1]; ++i[1])
      for (i[2] = 0; i[2] < o->shape[2]; ++i[2])
        for (i[3] = 0; i[3] < o->shape[3]; ++i[3])
          for (i[4] = 0; i[4] < o->shape[4]; ++i[4]) {
            int64_t off = 0, packed = 1;
            for (int d = 4; d >= 0; --d) {
              off += i[d] * (o->strides ? o->strides[d] : packed);
              packed *= o->shape[d];
            }
            std::memset(static_cast<char*>(o->data) + o->byte_offset + off * elem, kOutCanary, elem);
          }
  return ATTNCHECK_OK;
}

TEST(Runner, AnElementEqualToTheCanaryIsNotUnwritten) {
  // f16's 0xa5a5 is -0.0226, an ordinary output: a kernel that writes it is
  // not "did not write", in any dtype; one that writes nothing still is.
  for (const char* dtype : {"f16", "bf16", "f32"}) {
    Case c = small_case();
    c.dtype = ref::parse_dtype(dtype);
    const attncheck_impl canary{"t", kDLCPU, writes_canary_bytes}, lazy{"t", kDLCPU, write_nothing};
    const Verdict v = check_property(Property::memory, canary, c, {});
    EXPECT_EQ(v.kind, Verdict::pass) << dtype << ": " << v.summary;
    const Verdict w = check_property(Property::memory, lazy, c, {});
    EXPECT_EQ(w.summary, "did not write out[0,0,0,0,0]") << dtype;
  }
}

attncheck_status throws_runtime_error(const attncheck_attention*, char*, size_t) {
  throw std::runtime_error("boom");
}
attncheck_status status_42(const attncheck_attention*, char*, size_t) { return static_cast<attncheck_status>(42); }

TEST(Runner, ExceptionsAndBadStatusesAreFindingsInBothPaths) {
  for (bool fork : {true, false}) {
    RunOptions opt;
    opt.fork = fork;
    GuardedCase g(small_case());
    const RunResult t = run_call({"t", kDLCPU, throws_runtime_error}, g, opt);
    EXPECT_EQ(t.finding, "threw std::runtime_error: boom") << "fork " << fork;
    GuardedCase h(small_case());
    const RunResult b = run_call({"t", kDLCPU, status_42}, h, opt);
    EXPECT_EQ(b.finding, "returned status 42, not one of the ABI's (0, 1, 2)") << "fork " << fork;
  }
}

TEST(Properties, NothingToCompareIsVacuousNotAPass) {
  // One head: head_independence has no other head to compare.
  Case c = small_case();
  c.heads = 1;
  c.share = Share::none;
  const attncheck_impl impl{"reference_f32", kDLCPU, reference_f32::attention};
  EXPECT_FALSE(property_accepts(Property::head_independence, c));
  EXPECT_EQ(check_property(Property::head_independence, impl, c, {}).kind, Verdict::vacuous);
  // One group (B = 1, T = 1 spatial): group_independence neither.
  c.Tq = c.Tk = 1;
  EXPECT_FALSE(property_accepts(Property::group_independence, c));
  EXPECT_EQ(check_property(Property::group_independence, impl, c, {}).kind, Verdict::vacuous);
}

RC_GTEST_PROP(Generators, MetamorphicCasesHaveSomethingToCompare, ()) {
  gen::CaseOptions h;
  h.property = Property::head_independence;
  RC_ASSERT((*gen::attention_case(h)).heads >= 2);
  gen::CaseOptions g;
  g.property = Property::group_independence;
  RC_ASSERT((*gen::attention_case(g)).groups() >= 2);
}

TEST(Suite, ARunThatOnlyDeclinesIsNotVerified) {
  SuiteOptions opt;
  opt.cases = 5;
  opt.fork = false;
  const attncheck_impl impl{"t", kDLCPU, decline};
  const PropertyOutcome o = run_property(impl, Property::semantics, Axes::spatial, DType::f32, opt);
  EXPECT_EQ(o.checked, 0);
  EXPECT_EQ(o.declined, 5);
  EXPECT_FALSE(o.failure);
  EXPECT_EQ(o.not_verified(), "every call declined: not today");
  opt.no_declines = true;
  const PropertyOutcome f = run_property(impl, Property::semantics, Axes::spatial, DType::f32, opt);
  ASSERT_TRUE(f.failure);
  EXPECT_EQ(f.failure->v.summary, "declined a valid call (--no-declines): not today");
}

TEST(Suite, AThrowingImplementationFailsWithoutForking) {
  SuiteOptions opt;
  opt.cases = 3;
  opt.fork = false;
  const attncheck_impl impl{"t", kDLCPU, throws_runtime_error};
  const PropertyOutcome o = run_property(impl, Property::semantics, Axes::temporal, DType::f32, opt);
  ASSERT_TRUE(o.failure);
  EXPECT_EQ(o.failure->v.summary, "threw std::runtime_error: boom");
  EXPECT_TRUE(o.error.empty()) << o.error;
}

TEST(GuardedMemory, NamesWritesAroundOut) {
  GuardedCase g(small_case());
  attncheck_impl impl{"t", kDLCPU, reference_f32::attention};
  ASSERT_TRUE(run_call(impl, g, {}).ok());
  const ref::View out = g.view(kRoleOut);
  // Out is (1,4,2,3,3) with one element of padding after each T run:
  // strides (19,19,9,3,1), so element 18 past the first is a gap.
  ASSERT_EQ(out.layout.stride[1], 19);
  std::byte* gap = const_cast<std::byte*>(out.base) + 4 * (out.layout.offset + 18);
  *gap = std::byte{0};
  EXPECT_NE(g.check_memory().find("between out's elements"), std::string::npos) << g.check_memory();
}

template <attncheck_status (*fn)(const attncheck_attention*, char*, size_t)>
void expect_no_false_alarm() {
  const attncheck_impl impl{"variant", kDLCPU, fn};
  CheckOptions opt;
  opt.run.fork = false;
  const auto result = rc::check([&] {
    gen::CaseOptions g;
    g.max_flops = 2e5;
    const Case c = *gen::attention_case(g);
    const Verdict v = check_property(Property::semantics, impl, c, opt);
    RC_ASSERT(v.kind == Verdict::pass);
  });
  EXPECT_TRUE(result);
}

TEST(ErrorModel, NoFalseAlarmOnOnlineSoftmaxOverKeyTiles) { expect_no_false_alarm<variant<Order::online_tiles>>(); }
TEST(ErrorModel, NoFalseAlarmOnReversedSums) { expect_no_false_alarm<variant<Order::reversed>>(); }
TEST(ErrorModel, NoFalseAlarmOnDoubleAccumulation) { expect_no_false_alarm<variant<Order::double_accumulation>>(); }

TEST(Properties, ReferenceF32PassesEveryPropertyStrictly) {
  const attncheck_impl impl{"reference_f32", kDLCPU, reference_f32::attention};
  CheckOptions opt;
  opt.strict = true;
  opt.run.fork = false;
  for (Property p : all_properties()) {
    const bool ok = rc::check(name_of(p), [&] {
      gen::CaseOptions g;
      g.property = p;
      g.max_flops = 2e5;
      const Case c = *rc::gen::suchThat(gen::attention_case(g), [p](const Case& x) { return property_accepts(p, x); });
      const Verdict v = check_property(p, impl, c, opt);
      RC_ASSERT(v.kind == Verdict::pass);
    });
    EXPECT_TRUE(ok) << name_of(p);
  }
}

// The generators users compose in their own properties.
RC_GTEST_PROP(UserGenerators, GuardedTensorHoldsItsValuesUnderAnyLayout, ()) {
  const std::vector<int64_t> shape{*gen::dim(), *gen::dim(), 2, *gen::dim(), 3};
  const DType dt = *rc::gen::element(DType::f32, DType::f64, DType::f16, DType::bf16);
  const auto t = *gen::guarded_tensor(shape, dt);
  const Layout& l = t->layout();
  RC_ASSERT(l.shape == shape);
  RC_ASSERT(t->dl()->byte_offset == static_cast<uint64_t>(l.offset) * ref::size_of(dt));
  t->protect(true);  // reading only
  const ref::Tensor values = ref::contiguous(t->view());
  t->protect(false);
  for (int64_t i = 0; i < values.numel(); ++i) RC_ASSERT(std::isfinite(values[i]));
}

RC_GTEST_PROP(UserGenerators, LayoutFitsItsShape, ()) {
  const std::vector<int64_t> shape{*gen::dim(), *gen::dim(), *gen::dim(), *gen::dim(), *gen::dim()};
  const Layout l = *gen::layout(shape, false);
  l.validate();
  for (int d = 0; d < 5; ++d) RC_ASSERT(l.stride[d] > 0);  // out-style: no broadcast
}

}  // namespace
}  // namespace attncheck
