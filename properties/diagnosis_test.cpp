// Properties of the diagnosis and of the attribution of NaN: kernels built
// on reference_f32 with one deliberate misreading each are named for it,
// poison does not make misreadings look alike, and NaN from poison is a
// memory failure while NaN from arithmetic is not.
#include <attncheck/generators.h>
#include <attncheck/properties.h>

#include "../src/impls/reference_f32/reference_f32.h"
#include "order_variants.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

namespace attncheck {
namespace {

// Diagnosis and the attribution of NaN: kernels built on reference_f32 with
// one deliberate misreading each.
Case diagnosis_case() {
  // C = Cv, k compact, v padded after each W run (row stride 4, not 3), q
  // padded likewise: the pad slots hold poison.
  return Case::parse("spatial f32 B=1 C=2 Cv=2 heads=1 q=2x2x3 k=2x2x3 scale=0.7 share=none place=low "
                     "Lq=0/1/0:0:0:0:1/0/a/0/0 Lk=0/1/0:0:0:0:0/0/a/0/0 Lv=0/1/0:0:0:0:1/0/a/0/0 "
                     "Lout=0/1/0:0:0:0:0/0/a/0/0 Vq=normal:4 Vk=normal:5 Vv=normal:6");
}

attncheck_status v_with_k_strides(const attncheck_attention* call, char* m, size_t n) {
  DLTensor v = *call->v;
  v.strides = call->k->strides;  // compact k: null or packed strides
  attncheck_attention c = *call;
  c.v = &v;
  return reference_f32::attention(&c, m, n);
}

// Correct, then adds q's element just past the end of the first W run:
// the padding slot, poison.
attncheck_status reads_q_padding(const attncheck_attention* call, char* m, size_t n) {
  const attncheck_status s = reference_f32::attention(call, m, n);
  const DLTensor* q = call->q;
  float pad, o;
  std::memcpy(&pad, static_cast<const char*>(q->data) + q->byte_offset + 4 * q->shape[4] * q->strides[4], 4);
  char* out = static_cast<char*>(call->out->data) + call->out->byte_offset;
  std::memcpy(&o, out, 4);
  o += pad;
  std::memcpy(out, &o, 4);
  return s;
}

// Correct, then makes out's first element NaN by arithmetic.
attncheck_status makes_nan(const attncheck_attention* call, char* m, size_t n) {
  const attncheck_status s = reference_f32::attention(call, m, n);
  volatile float inf = INFINITY;
  const float nan = inf - inf;
  std::memcpy(static_cast<char*>(call->out->data) + call->out->byte_offset, &nan, 4);
  return s;
}

TEST(Diagnosis, NamesEveryReadingThatGivesTheOutput) {
  const Case c = diagnosis_case();
  ASSERT_NE(c.layout[kRoleQ].pad[4], 0);
  const Verdict v = check_property(Property::semantics, {"t", kDLCPU, v_with_k_strides}, c, {});
  ASSERT_EQ(v.kind, Verdict::fail);
  EXPECT_TRUE(v.wrong_values);
  // v read with k's (compact) strides is v read as if compact: both named.
  EXPECT_EQ(v.diagnosis.rfind("output equals attention reading v as if it were compact", 0), 0u) << v.diagnosis;
  EXPECT_NE(v.diagnosis.find("equally: "), std::string::npos) << v.diagnosis;
  EXPECT_NE(v.diagnosis.find("attention reading v with k's strides"), std::string::npos) << v.diagnosis;
}

template <int role>
attncheck_status reads_compact(const attncheck_attention* call, char* m, size_t n) {
  DLTensor t = role == kRoleQ ? *call->q : role == kRoleK ? *call->k : *call->v;
  t.strides = nullptr;  // "strides computed from the shape"
  attncheck_attention c = *call;
  (role == kRoleQ ? c.q : role == kRoleK ? c.k : c.v) = &t;
  return variant<Order::reversed>(&c, m, n);  // reference_f32 would decline the NaN logits
}

TEST(Diagnosis, PoisonDoesNotMakeMisreadingsLookAlike) {
  // k padded, v compact: reading k compact and reading v with k's strides
  // both read poison into the one output, so with NaN around the views both
  // give NaN; with finite bytes there, only k's misreading gives the output.
  const Case c = Case::parse(
      "spatiotemporal f32 B=1 C=1 Cv=1 heads=1 q=1x1x1 k=1x2x1 scale=1 share=none place=low "
      "Lq=0/1/0:0:0:0:0/0/a/0/0 Lk=0/1/0:0:0:0:1/0/a/0/0 Lv=0/1/0:0:0:0:0/0/a/0/0 Lout=0/1/0:0:0:0:0/0/a/0/0 "
      "Vq=normal:0 Vk=normal:0 Vv=normal:0");
  const Verdict v = check_property(Property::semantics, {"t", kDLCPU, reads_compact<kRoleK>}, c, {});
  ASSERT_EQ(v.kind, Verdict::fail);
  EXPECT_EQ(v.diagnosis, "output equals attention reading k as if it were compact (strides computed from the shape)");
}

TEST(Diagnosis, AMisreadingThatOnlyNaNShowsIsStillNamed) {
  // One key: out = v whatever q is, so q's misreading shows only as the
  // poison's NaN, not with finite bytes around the views.
  const Case c = Case::parse(
      "spatial f32 B=1 C=1 Cv=1 heads=1 q=1x2x1 k=1x1x1 scale=1 share=none place=low "
      "Lq=0/1/0:0:0:0:1/0/a/0/0 Lk=0/1/0:0:0:0:0/0/a/0/0 Lv=0/1/0:0:0:0:0/0/a/0/0 Lout=0/1/0:0:0:0:0/0/a/0/0 "
      "Vq=normal:0 Vk=normal:0 Vv=normal:0");
  const Verdict v = check_property(Property::semantics, {"t", kDLCPU, reads_compact<kRoleQ>}, c, {});
  ASSERT_EQ(v.kind, Verdict::fail);
  EXPECT_EQ(v.diagnosis, "output equals attention reading q as if it were compact (strides computed from the shape)");
}

attncheck_status v_reads_with_k_strides(const attncheck_attention* call, char* m, size_t n) {
  DLTensor v = *call->v;
  v.strides = call->k->strides;
  attncheck_attention c = *call;
  c.v = &v;
  return variant<Order::reversed>(&c, m, n);
}

// Whatever the case, a kernel that misreads one tensor in a way the
// diagnosis knows, and so gets out's values wrong, is named.
RC_GTEST_PROP(Diagnosis, NamesTheMisreadingOnAnyCase, ()) {
  gen::CaseOptions o;
  o.property = Property::semantics;
  o.max_flops = 2e5;
  const Case c = *gen::attention_case(o);
  const int which = *rc::gen::inRange(0, 4);
  static const struct {
    attncheck_status (*fn)(const attncheck_attention*, char*, size_t);
    const char* name;
  } kernels[4] = {
      {reads_compact<kRoleQ>, "attention reading q as if it were compact"},
      {reads_compact<kRoleK>, "attention reading k as if it were compact"},
      {reads_compact<kRoleV>, "attention reading v as if it were compact"},
      {v_reads_with_k_strides, "attention reading v with k's strides"},
  };
  RC_PRE(which != 3 || c.C == c.Cv);  // k's strides fit v only then
  const Verdict v = check_property(Property::semantics, {"t", kDLCPU, kernels[which].fn}, c, {});
  RC_TAG(v.kind == Verdict::pass ? "misreading changes nothing here"
         : v.wrong_values        ? "wrong values"
                                 : "finding");
  if (!v.wrong_values) RC_SUCCEED("no wrong values to diagnose (a fault, or the misreading reads the same)");
  RC_ASSERT(v.diagnosis.find(kernels[which].name) != std::string::npos);
}

TEST(Diagnosis, NanFromPoisonIsAMemoryFailureAndSaysSo) {
  const attncheck_impl impl{"t", kDLCPU, reads_q_padding};
  const Verdict m = check_property(Property::memory, impl, diagnosis_case(), {});
  ASSERT_EQ(m.kind, Verdict::fail);
  EXPECT_EQ(m.summary, "NaN in out[0,0,0,0,0]: poisoned memory outside the views was read");
  EXPECT_FALSE(m.wrong_values);
  const Verdict s = check_property(Property::semantics, impl, diagnosis_case(), {});
  ASSERT_EQ(s.kind, Verdict::fail);
  EXPECT_EQ(s.diagnosis.rfind("out[0,0,0,0,0] is NaN where the reference has a value, and finite when", 0), 0u)
      << s.diagnosis;
  EXPECT_NE(s.diagnosis.find("read memory outside the views"), std::string::npos) << s.diagnosis;
}

TEST(Diagnosis, NanFromArithmeticIsNotAMemoryFailure) {
  const attncheck_impl impl{"t", kDLCPU, makes_nan};
  // Memory discipline holds: nothing outside the views was read or written.
  const Verdict m = check_property(Property::memory, impl, diagnosis_case(), {});
  EXPECT_EQ(m.kind, Verdict::pass) << m.summary;
  const Verdict s = check_property(Property::semantics, impl, diagnosis_case(), {});
  ASSERT_EQ(s.kind, Verdict::fail);
  EXPECT_NE(s.diagnosis.find("also with finite memory around the views: the arithmetic made it (inf - inf or 0/0)"),
            std::string::npos)
      << s.diagnosis;
}

// The finite refill the NaN attribution reruns with.
TEST(GuardedMemory, RefillAroundInputsKeepsTheElements) {
  GuardedCase g(diagnosis_case());
  const ref::Tensor before = ref::contiguous(g.view(kRoleQ));
  g.refill_around_inputs(kFinitePoison);
  EXPECT_TRUE(g.check_memory().empty()) << g.check_memory();
  const ref::View q = g.view(kRoleQ);
  const ref::Tensor after = ref::contiguous(q);
  for (int64_t i = 0; i < before.numel(); ++i) EXPECT_EQ(before[i], after[i]);
  float pad;  // the slot after the first W run
  std::memcpy(&pad, q.base + 4 * (q.layout.offset + q.layout.shape[4] * q.layout.stride[4]), 4);
  EXPECT_TRUE(std::isfinite(pad));
  g.refill_around_inputs(kInputPoison);
  std::memcpy(&pad, q.base + 4 * (q.layout.offset + q.layout.shape[4] * q.layout.stride[4]), 4);
  EXPECT_TRUE(std::isnan(pad));
}

}  // namespace
}  // namespace attncheck

namespace attncheck {
namespace {

}  // namespace
}  // namespace attncheck
