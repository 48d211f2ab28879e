// Strict properties of the `cpu` kernel (src/impls/cpu), beyond what
// `attncheck verify` checks through the ABI: every instruction set this
// machine has and several thread counts, agreement with the reference under
// the suite's error model (error_model.h: f32 and f64 in their own
// precision, f16 and bf16 under the `fused` contract the kernel meets: f32
// sums, P kept in f32), and bitwise determinism across layouts and thread
// counts. Cases, guarded memory and bounds are the suite's own (case.h,
// guarded.h, generators.h), called in-process.
#include "cpu_attention.h"

#include <attncheck/error_model.h>
#include <attncheck/generators.h>
#include <attncheck/guarded.h>
#include <attncheck/properties.h>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace attncheck {
namespace {

const attncheck_impl kCpu{"cpu", kDLCPU, cpu::attention};

struct Setting {
  ~Setting() {
    cpu::set_threads(0);
    cpu::set_arch(nullptr);
  }
};

std::vector<std::string> supported_archs() {
  std::vector<std::string> a;
  for (const char* n : {"avx512", "avx2", "sse2"})
    if (cpu::set_arch(n)) a.push_back(n);
  cpu::set_arch(nullptr);
  return a;
}

// Any dtype the kernel serves.
rc::Gen<Case> any_case() {
  return rc::gen::mapcat(rc::gen::element(DType::f32, DType::f64, DType::bf16, DType::f16), [](DType dt) {
    gen::CaseOptions o;
    o.dtype = dt;
    o.max_flops = 1e6;
    return gen::attention_case(o);
  });
}

CheckOptions in_process() {
  CheckOptions opt;
  opt.run.fork = false;
  return opt;
}

// Calls the kernel on the case in guarded memory; out's values.
ref::Tensor run(GuardedCase& g) {
  char msg[256] = "";
  const attncheck_status s = cpu::attention(g.call(), msg, sizeof msg);
  if (s != ATTNCHECK_OK) throw std::runtime_error("cpu declined or failed: " + std::string(msg));
  return read_out(g.view(kRoleOut));
}

// Bitwise equality of two outputs (NaN equal to NaN).
bool same_bits(const ref::Tensor& a, const ref::Tensor& b) {
  if (a.numel() != b.numel()) return false;
  for (int64_t i = 0; i < a.numel(); ++i)
    if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
  return true;
}

}  // namespace

// (1) Agreement with the reference under the suite's error model, every
// axes family, layout and dtype, on every instruction set this machine has.
RC_GTEST_PROP(CpuKernel, MatchesTheReferenceOnAnyLayout, ()) {
  Setting restore;
  const Case c = *any_case();
  const auto archs = supported_archs();
  const std::string arch = *rc::gen::elementOf(archs);
  const int threads = *rc::gen::element(1, 2, 3);
  RC_TAG(ref::name_of(c.dtype), arch);
  cpu::set_threads(threads);
  RC_ASSERT(cpu::set_arch(arch.c_str()));
  const Verdict v = check_property(Property::semantics, kCpu, c, in_process());
  if (v.kind != Verdict::pass) {
    std::string text = v.summary;
    for (const auto& d : v.details) text += "; " + d;
    RC_FAIL(arch + ", " + std::to_string(threads) + " threads: " + text);
  }
}

// (2) The same values in two layouts give bitwise the same output.
RC_GTEST_PROP(CpuKernel, BitwiseIdenticalAcrossLayouts, ()) {
  Setting restore;
  Case c = *any_case();
  Case other = c;
  for (int t = 0; t < 4; ++t) {
    other.layout[t] = *gen::layout_recipe(false);
    other.layout[t].broadcast = c.layout[t].broadcast;  // broadcast masks are part of the values
  }
  if (c.share == Share::kv_overlap) other.layout[kRoleK].broadcast &= ~2;
  other.normalize();
  GuardedCase a(c), b(other);
  RC_ASSERT(same_bits(run(a), run(b)));
}

// (3) Thread counts 1, 2, 3 and 7 give bitwise the same output.
RC_GTEST_PROP(CpuKernel, BitwiseIdenticalAcrossThreadCounts, ()) {
  Setting restore;
  GuardedCase g(*any_case());
  ref::Tensor first{std::vector<int64_t>{0}};
  for (int threads : {1, 2, 3, 7}) {
    cpu::set_threads(threads);
    g.reset_outputs();
    const ref::Tensor got = run(g);
    if (threads == 1)
      first = got;
    else
      RC_ASSERT(same_bits(got, first));
  }
}

namespace {

Case parse(const std::string& sizes, const std::string& values = "Vq=normal:4 Vk=normal:5 Vv=normal:6") {
  return Case::parse(sizes + " share=none place=low Lq=0/1/0:0:0:0:0/0/a/0/0 Lk=0/1/0:0:0:0:0/0/a/0/0 "
                             "Lv=0/1/0:0:0:0:0/0/a/0/0 Lout=0/1/0:0:0:0:0/0/a/0/0 " + values);
}

}  // namespace

// One key: softmax of one logit is exactly 1, so out is exactly v, whatever
// the logit.
TEST(CpuKernel, OneKeyGivesV) {
  for (DType dt : {DType::f32, DType::bf16, DType::f16}) {
    GuardedCase g(parse(std::string("spatial ") + ref::name_of(dt) +
                        " B=2 C=12 Cv=12 heads=3 q=3x4x5 k=3x1x1 scale=1e30"));
    const ref::Tensor out = run(g);
    const ref::View v = g.view(kRoleV);
    ref::for_each_index(out.shape, [&](std::span<const int64_t> i) {
      const int64_t vi[5] = {i[0], i[1], i[2], 0, 0};
      const int64_t oi = (((i[0] * out.shape[1] + i[1]) * out.shape[2] + i[2]) * out.shape[3] + i[3]) * out.shape[4] + i[4];
      ASSERT_EQ(out[oi], v.at(vi)) << ref::name_of(dt);
    });
  }
}

// Logits far beyond float's range (scale 1e36): within the bound.
TEST(CpuKernel, HugeLogitsStillMatch) {
  for (DType dt : {DType::f32, DType::bf16}) {
    const Case c = parse(std::string("spatial ") + ref::name_of(dt) + " B=1 C=8 Cv=8 heads=2 q=2x3x5 k=2x3x5 scale=1e36");
    const Verdict v = check_property(Property::semantics, kCpu, c, in_process());
    EXPECT_EQ(v.kind, Verdict::pass) << v.summary << (v.details.empty() ? "" : "; " + v.details[0]);
  }
}

// Ties: scale 0 makes every logit 0, so out is the mean of v over the keys.
TEST(CpuKernel, ExactTiesAverage) {
  GuardedCase g(parse("spatial f32 B=1 C=4 Cv=4 heads=1 q=1x7x19 k=1x7x19 scale=0"));
  const ref::Tensor out = run(g);
  const ref::View v = g.view(kRoleV);
  for (int64_t ch = 0; ch < 4; ++ch) {
    long double mean = 0;
    for (int64_t h = 0; h < 7; ++h)
      for (int64_t w = 0; w < 19; ++w) {
        const int64_t i[5] = {0, ch, 0, h, w};
        mean += v.at(i);
      }
    mean /= 133;
    for (int64_t p = 0; p < 133; ++p) EXPECT_NEAR(static_cast<double>(out[ch * 133 + p]), static_cast<double>(mean), 1e-5);
  }
}

// A long sequence (thousands of keys) on every instruction set, in each dtype.
TEST(CpuKernel, ThousandsOfKeys) {
  Setting restore;
  for (const auto& arch : supported_archs())
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
      ASSERT_TRUE(cpu::set_arch(arch.c_str()));
      // 3 x 31 x 37 = 3441 keys.
      const Case c = parse(std::string("spatiotemporal ") + ref::name_of(dt) +
                           " B=1 C=10 Cv=6 heads=2 q=1x2x3 k=3x31x37 scale=0.7");
      const Verdict v = check_property(Property::semantics, kCpu, c, in_process());
      EXPECT_EQ(v.kind, Verdict::pass) << arch << " " << ref::name_of(dt) << ": " << v.summary
                                       << (v.details.empty() ? "" : "; " + v.details[0]);
    }
}

// Calls the kernel cannot serve are declined with a reason, not run.
TEST(CpuKernel, DeclinesWithAReason) {
  GuardedCase g(parse("spatial f32 B=1 C=4 Cv=4 heads=1 q=1x2x2 k=1x2x2 scale=0.5"));
  attncheck_attention call = *g.call();
  DLTensor t[4] = {*call.q, *call.k, *call.v, *call.out};
  for (auto& x : t) x.device = {kDLCUDA, 0};
  call.q = &t[0], call.k = &t[1], call.v = &t[2], call.out = &t[3];
  char msg[256] = "";
  EXPECT_EQ(cpu::attention(&call, msg, sizeof msg), ATTNCHECK_UNSUPPORTED);
  EXPECT_STRNE(msg, "");
  // A malformed call fails with validate_call's message.
  for (auto& x : t) x.device = {kDLCPU, 0};
  call.heads = 3;
  EXPECT_EQ(cpu::attention(&call, msg, sizeof msg), ATTNCHECK_FAILED);
  EXPECT_NE(std::string(msg).find("heads"), std::string::npos) << msg;
}

// The workspace is O(tile): it does not grow with the sequence lengths.
TEST(CpuKernel, WorkspaceIndependentOfSequenceLength) {
  Setting restore;
  cpu::set_threads(1);  // BQ shrinks with many threads and few queries
  // validate_call reads no element, so one float of storage serves every
  // view (all strides 0 for q, k, v; out is never written here).
  float cell = 0;
  auto bytes = [&](int64_t H, int64_t W) {
    int64_t qs[5] = {1, 128, 1, H, W}, zero[5] = {0, 0, 0, 0, 0};
    int64_t ostr[5] = {128 * H * W, H * W, H * W, W, 1};
    DLTensor q{&cell, {kDLCPU, 0}, 5, {kDLFloat, 32, 1}, qs, zero, 0};
    DLTensor o{&cell, {kDLCPU, 0}, 5, {kDLFloat, 32, 1}, qs, ostr, 0};
    attncheck_attention call{ATTNCHECK_SPATIAL, &q, &q, &q, &o, 2, 0.125};
    return cpu::workspace_bytes(&call);
  };
  const size_t s1k = bytes(32, 32), s16k = bytes(128, 128), s256k = bytes(512, 512);
  EXPECT_GT(s1k, 0u);
  EXPECT_EQ(s1k, s16k);
  EXPECT_EQ(s1k, s256k);
  EXPECT_LT(s256k, size_t{4} << 20);
}

}  // namespace attncheck
