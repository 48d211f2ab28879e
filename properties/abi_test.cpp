// The ABI's edges: validate_call's one-line errors, the loader's errors, and
// reference_f32 against the reference.
#include "support.h"

#include <attncheck/dlview.h>
#include <attncheck/loader.h>
#include <attncheck/reference/attention.h>
#include <attncheck/validate.h>

#include "../src/impls/reference_f32/reference_f32.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cmath>
#include <cstring>

namespace attncheck {
namespace {

// A well-formed spatial call on packed f32 tensors that tests then break.
struct Call {
  std::vector<float> qd, kd, vd, od;
  int64_t qs[5] = {1, 4, 2, 3, 3}, ks[5] = {1, 4, 2, 3, 3}, vs[5] = {1, 2, 2, 3, 3},
          os[5] = {1, 2, 2, 3, 3};
  int64_t ost[5] = {36, 18, 9, 3, 1};
  DLTensor q{}, k{}, v{}, out{};
  attncheck_attention call{};
  Call() : qd(72, 0.5f), kd(72, 0.25f), vd(36, 1.0f), od(36, 0.0f) {
    auto init = [](DLTensor& t, void* data, int64_t* shape) {
      t.data = data;
      t.device = {kDLCPU, 0};
      t.ndim = 5;
      t.dtype = {kDLFloat, 32, 1};
      t.shape = shape;
    };
    init(q, qd.data(), qs);
    init(k, kd.data(), ks);
    init(v, vd.data(), vs);
    init(out, od.data(), os);
    call = {ATTNCHECK_SPATIAL, &q, &k, &v, &out, 2, 0.5};
  }
  std::string error() {
    std::string e;
    EXPECT_FALSE(validate_call(&call, nullptr, &e));
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    return e;
  }
};

TEST(Validate, AcceptsAWellFormedCall) {
  Call c;
  CallShape s;
  std::string e;
  ASSERT_TRUE(validate_call(&c.call, &s, &e)) << e;
  EXPECT_EQ(s.groups, 2);
  EXPECT_EQ(s.Sq, 9);
  EXPECT_EQ(s.D, 2);
  EXPECT_EQ(s.Dv, 1);
}

TEST(Validate, NamesTheTensorAndTheField) {
  using ::testing::HasSubstr;
  { Call c; c.call.q = nullptr; EXPECT_THAT(c.error(), HasSubstr("q: tensor pointer is null")); }
  { Call c; c.k.ndim = 4; EXPECT_THAT(c.error(), HasSubstr("k: ndim is 4")); }
  { Call c; c.v.data = nullptr; EXPECT_THAT(c.error(), HasSubstr("v: data is null")); }
  { Call c; c.out.shape = nullptr; EXPECT_THAT(c.error(), HasSubstr("out: shape is null")); }
  { Call c; c.qs[3] = 0; EXPECT_THAT(c.error(), HasSubstr("q: shape[3] (H) is 0")); }
  { Call c; c.ks[0] = -5; EXPECT_THAT(c.error(), HasSubstr("k: shape[0] (B) is -5")); }
  { Call c; c.call.heads = 3; EXPECT_THAT(c.error(), HasSubstr("heads (3) does not divide q's C (4)")); }
  { Call c; c.call.heads = 0; EXPECT_THAT(c.error(), HasSubstr("heads is 0")); }
  { Call c; c.ks[2] = c.vs[2] = 1; EXPECT_THAT(c.error(), HasSubstr("k: shape[2] (T)")); }
  { Call c; c.vs[4] = 2; EXPECT_THAT(c.error(), HasSubstr("v: shape[4] (W)")); }
  { Call c; c.os[1] = 3; EXPECT_THAT(c.error(), HasSubstr("out: shape[1] (C)")); }
  { Call c; c.call.scale = NAN; EXPECT_THAT(c.error(), HasSubstr("scale is not finite")); }
  {
    Call c;  // as a C caller could: any int in the enum's storage
    const int seven = 7;
    std::memcpy(&c.call.axes, &seven, sizeof seven);
    EXPECT_THAT(c.error(), HasSubstr("axes is 7"));
  }
  { Call c; c.v.dtype = {kDLFloat, 64, 1}; EXPECT_THAT(c.error(), HasSubstr("v: dtype f64 differs")); }
  { Call c; c.q.dtype = {kDLInt, 32, 1}; EXPECT_THAT(c.error(), HasSubstr("q: unsupported dtype")); }
  { Call c; c.q.dtype = {kDLFloat, 32, 4}; EXPECT_THAT(c.error(), HasSubstr("q: unsupported dtype")); }
  {
    Call c;
    c.ost[2] = 0;
    c.out.strides = c.ost;
    EXPECT_THAT(c.error(), HasSubstr("out: strides[2] (T) is 0"));
  }
  {
    Call c;
    int64_t st[5] = {1, -1, 1, 1, 1};
    c.k.strides = st;
    EXPECT_THAT(c.error(), HasSubstr("k: strides[1] (C) is -1"));
  }
  {
    Call c;
    int64_t st[5] = {1, int64_t{1} << 62, 1, 1, 1};
    c.q.strides = st;
    EXPECT_THAT(c.error(), HasSubstr("q: strides times shape overflow"));
  }
  {
    Call c;
    int64_t st[5] = {1, int64_t{1} << 60, 1, 1, 1};
    c.q.strides = st;
    EXPECT_THAT(c.error(), HasSubstr("q: byte extent"));
  }
  {
    Call c;
    c.v.byte_offset = ~uint64_t{0};
    EXPECT_THAT(c.error(), HasSubstr("v: byte extent"));
  }
  { Call c; c.out.device = {kDLCUDA, 0}; EXPECT_THAT(c.error(), HasSubstr("out: device differs")); }
  EXPECT_FALSE(validate_call(nullptr, nullptr, nullptr));
}

TEST(Validate, MessageBufferIsAlwaysTerminated) {
  char buf[8];
  write_message(buf, sizeof buf, "a long message that does not fit");
  EXPECT_STREQ(buf, "a long ");
  write_message(nullptr, 0, "ignored");
  char one[1] = {'x'};
  write_message(one, 1, "abc");
  EXPECT_EQ(one[0], '\0');
}

TEST(Loader, LoadsAPluginWrittenFromTheSpec) {
  auto p = Plugin::load(ATTNCHECK_TEST_PLUGIN_DIR "/spec_plugin.so");
  ASSERT_EQ(p->impls().size(), 2u);
  EXPECT_STREQ(p->impls()[0].name, "spec.decline");
  EXPECT_EQ(p->impls()[1].device_type, kDLCUDA);
  EXPECT_STREQ(p->find("spec-gpu_2").name, "spec-gpu_2");
  EXPECT_THROW(p->find("nope"), LoadError);
}

void expect_load_error(const std::string& path, const std::string& fragment) {
  try {
    Plugin::load(path);
    ADD_FAILURE() << path << " loaded";
  } catch (const LoadError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
}

TEST(Loader, SaysWhyALibraryCannotBeUsed) {
  const std::string dir = ATTNCHECK_TEST_PLUGIN_DIR;
  expect_load_error(dir + "/does_not_exist.so", "no such file");
  expect_load_error(ATTNCHECK_GOLDEN_FILE, "cannot load");
  expect_load_error(dir + "/bad_nosymbol.so", "does not export attncheck_impls");
  expect_load_error(dir + "/bad_version.so", "does not serve attncheck ABI version 1");
  expect_load_error(dir + "/bad_duplicate.so", "'twin' appears twice");
  expect_load_error(dir + "/bad_name.so", "invalid name 'Bad Name'");
  expect_load_error(dir + "/bad_nullfn.so", "null attention function");
}

TEST(Loader, FindsTheBuiltins) {
  setenv("ATTNCHECK_BUILTIN", ATTNCHECK_BUILTIN_PATH, 1);
  auto p = Plugin::builtin();
  EXPECT_EQ(p->find("reference_f32").device_type, kDLCPU);
}

// reference_f32 computes the spec in float: close to the reference on any
// layout, within float32's error for these small sizes.
RC_GTEST_PROP(ReferenceF32, AgreesWithTheReferenceOnStridedInputs, ()) {
  const auto axes = *rc::gen::element(ATTNCHECK_SPATIAL, ATTNCHECK_TEMPORAL, ATTNCHECK_SPATIOTEMPORAL);
  const int64_t heads = *rc::gen::inRange<int64_t>(1, 3);
  const int64_t C = heads * *rc::gen::inRange<int64_t>(1, 4), Cv = heads * *rc::gen::inRange<int64_t>(1, 4);
  const int64_t B = *rc::gen::inRange<int64_t>(1, 3), T = *rc::gen::inRange<int64_t>(1, 4),
                H = *rc::gen::inRange<int64_t>(1, 4), W = *rc::gen::inRange<int64_t>(1, 4);
  std::vector<int64_t> qs{B, C, T, H, W}, ks{B, C, T, H, W}, vs{B, Cv, T, H, W}, os{B, Cv, T, H, W};
  test::Buffer qb(ref::DType::f32, *test::gen_layout(qs, true), *rc::gen::arbitrary<uint64_t>());
  test::Buffer kb(ref::DType::f32, *test::gen_layout(ks, true), *rc::gen::arbitrary<uint64_t>());
  test::Buffer vb(ref::DType::f32, *test::gen_layout(vs, true), *rc::gen::arbitrary<uint64_t>());
  test::Buffer ob(ref::DType::f32, *test::gen_layout(os, false), 0);
  auto dl = [](test::Buffer& b, std::vector<int64_t>& shape) {
    DLTensor t{};
    t.data = b.bytes.data();
    t.device = {kDLCPU, 0};
    t.ndim = 5;
    t.dtype = {kDLFloat, 32, 1};
    t.shape = shape.data();
    t.strides = b.view.layout.stride.data();
    t.byte_offset = 4 * b.view.layout.offset;
    return t;
  };
  DLTensor q = dl(qb, qs), k = dl(kb, ks), v = dl(vb, vs), o = dl(ob, os);
  const double scale = 1 / std::sqrt(double(C / heads));
  attncheck_attention call{axes, &q, &k, &v, &o, heads, scale};
  char msg[256] = "";
  RC_ASSERT(reference_f32::attention(&call, msg, sizeof msg) == ATTNCHECK_OK);
  const ref::Tensor want = ref::attention(
      {static_cast<ref::Axes>(axes), view_of(q), view_of(k), view_of(v), heads, scale});
  const ref::View got = view_of(o);
  ref::for_each_index(want.shape, [&](std::span<const int64_t> i) {
    RC_ASSERT(std::fabs(got.at(i) - want.at(i)) <= 1e-5L);
  });
}

}  // namespace
}  // namespace attncheck

#include <attncheck/half.h>

namespace attncheck {
namespace {

// The implementations' half-precision codec (attncheck/half.h, used by
// reference_f32 and cpu) against the reference's independent one: every
// 16-bit pattern decoded, and encoding checked at every value, every
// midpoint between neighbours (ties) and random floats.
TEST(HalfCodec, AgreesWithTheReference) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const uint16_t h = static_cast<uint16_t>(b);
    const double want = ref::f16_to_double(h);
    const float got = half_to_float(h);
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << b;
      continue;
    }
    ASSERT_EQ(static_cast<double>(got), want) << b;
    EXPECT_EQ(bf16_to_float(h), static_cast<float>(ref::bf16_to_double(h))) << b;
    ASSERT_EQ(float_to_half(got), ref::double_to_f16(want)) << b;
    // The midpoint to the next value up is a tie: both must round to even.
    const double next = ref::f16_to_double(static_cast<uint16_t>(b + 1));
    if (b + 1 < 65536 && std::isfinite(next) && (b & 0x7fff) != 0x7bff) {
      const float mid = static_cast<float>((want + next) / 2);
      ASSERT_EQ(float_to_half(mid), ref::double_to_f16(mid)) << b;
    }
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 1000000; ++i) {
    uint32_t bits = rng();
    float f;
    std::memcpy(&f, &bits, 4);
    if (std::isnan(f)) continue;
    ASSERT_EQ(float_to_half(f), ref::double_to_f16(f)) << bits;
    ASSERT_EQ(float_to_bf16(f), ref::float_to_bf16(f)) << bits;
  }
}

}  // namespace
}  // namespace attncheck
