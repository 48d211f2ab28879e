// Properties of the backward pass (issue 19): the `cpu` kernel's and
// reference_f32's gradients against the exact ones, the `cpu` kernel's
// bitwise determinism across layouts, thread counts and on every
// instruction set this machine has, validation of malformed calls, and the
// export through builtin.so. q, k, v and out come from the suite's case
// model in guarded memory (inputs write-protected during the calls); dout,
// dq, dk and dv are strided buffers of this file (backward_buffers.h is not
// part of the suite yet).
//
// Tolerance. Each implementation is held to a first-order bound on its own
// rounding error, per element, computed in long double from the exact
// inputs (u = 2^-24 in f32, 2^-53 in f64; n-term sums cost (n + 2) u of
// their sum of magnitudes):
//   logits   |dS_pr| <= (D + 2) u M_pr,  M_pr = |scale| sum_d |q_dp k_dr|
//   P        relative eta_p = 2 (D + 2) u max_r M_pr + (Sk + 8) u (the logit
//            error enters exp twice, through S and through lse; exp 4 ulp)
//   dP       (Dv + 2) u A_pr,  A_pr = sum_e |dout_ep v_er|
//   row term eps_R = sum_r P_pr A_pr (eta_p + (Sk + Dv + 8) u) (sum_r P dP,
//            or the cpu's sum_e dout out from its own forward's out)
//   dS       P (|dP - R| eta_p + (Dv + 2) u A + eps_R) + u |dS|
//   dq_dp    |scale| sum_r (err(dS_pr) |k_dr| + (Sk + 2) u |dS_pr k_dr|)
//   dk_dr    |scale| sum_p (err(dS_pr) |q_dp| + (Sq + 2) u |dS_pr q_dp|)
//   dv_er    sum_p P_pr |dout_ep| (eta_p + (Sq + 2) u)
// so the cpu kernel and reference_f32 agree within twice the bound.
#include <attncheck/generators.h>
#include <attncheck/geometry.h>
#include <attncheck/guarded.h>
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <impls/reference_f32/reference_f32.h>
#include <rapidcheck/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cpu_attention.h"

namespace attncheck {
namespace {

using ref::real;
using Backward = attncheck_status (*)(const attncheck_attention_backward*, char*, size_t);

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

int64_t flat(const std::vector<int64_t>& shape, const Index5& i) {
  int64_t f = 0;
  for (int d = 0; d < 5; ++d) f = f * shape[d] + i[d];
  return f;
}

// A (B, C, T, H, W) tensor in its own heap buffer, laid out by a recipe.
// Its values (set by fill) depend on the logical index only, never on the
// layout; dims broadcast by the recipe are ignored by the value.
struct Strided {
  DType dtype;
  std::vector<int64_t> shape;
  Layout layout;
  std::vector<int64_t> stride;
  std::vector<std::byte> bytes;
  DLTensor dl{};

  Strided(std::vector<int64_t> sh, DType dt, const LayoutRecipe& r)
      : dtype(dt), shape(std::move(sh)) {
    layout = make_layout(r, shape);
    stride = layout.stride;
    bytes.resize((layout.max_offset() + 1) * ref::size_of(dt));
    const DLDataType t = dt == DType::f32   ? DLDataType{kDLFloat, 32, 1}
                         : dt == DType::f64 ? DLDataType{kDLFloat, 64, 1}
                         : dt == DType::f16 ? DLDataType{kDLFloat, 16, 1}
                                            : DLDataType{kDLBfloat, 16, 1};
    dl = DLTensor{bytes.data(),
                  {kDLCPU, 0},
                  5,
                  t,
                  shape.data(),
                  stride.data(),
                  static_cast<uint64_t>(layout.offset * ref::size_of(dt))};
  }
  std::byte* at(const Index5& i) { return bytes.data() + ref::size_of(dtype) * layout.index(i); }
  real get(const Index5& i) { return ref::read(dtype, at(i)); }
  // Values in [-1, 1) from a hash of (seed, index); index 0 on the dims in
  // `broadcast`, so a zero-stride layout holds the same logical values.
  void fill(uint32_t seed, int broadcast) {
    ref::for_each_index(shape, [&](std::span<const int64_t> s) {
      Index5 i{s[0], s[1], s[2], s[3], s[4]};
      uint64_t h = splitmix64(seed);
      for (int d = 0; d < 5; ++d)
        h = splitmix64(h ^ static_cast<uint64_t>(broadcast & (1 << d) ? 0 : i[d]));
      ref::write(dtype, at(i), static_cast<real>(static_cast<double>(h >> 11) * 0x1p-52 - 1.0));
    });
  }
  std::vector<real> values() {
    std::vector<real> v;
    ref::for_each_index(shape, [&](std::span<const int64_t> s) {
      v.push_back(get({s[0], s[1], s[2], s[3], s[4]}));
    });
    return v;
  }
};

// The gradients of one case: dout (values from seed), dq, dk, dv buffers.
struct Grads {
  Strided dout, dq, dk, dv;
  Grads(const Case& c, const LayoutRecipe& ldout, const std::array<LayoutRecipe, 3>& lg,
        uint32_t seed)
      : dout(c.shape(kRoleOut), c.dtype, ldout),
        dq(c.shape(kRoleQ), c.dtype, lg[0]),
        dk(c.shape(kRoleK), c.dtype, lg[1]),
        dv(c.shape(kRoleV), c.dtype, lg[2]) {
    dout.fill(seed, ldout.broadcast);
  }
  attncheck_attention_backward call(GuardedCase& g) {
    const attncheck_attention* f = g.call();
    return {f->axes, f->q,   f->k,   f->v,     f->out,  &dout.dl,
            &dq.dl,  &dk.dl, &dv.dl, f->heads, f->scale};
  }
};

// Exact gradients and each element's error bound (see the top of the file).
struct Exact {
  std::vector<real> dq, dk, dv, bq, bk, bv;
};

Exact exact(const GuardedCase& g, Strided& dout, real u) {
  const Case& c = g.spec();
  const ref::View qv = g.view(kRoleQ), kv = g.view(kRoleK), vv = g.view(kRoleV);
  const Geometry gq = c.geometry(kRoleQ), gk = c.geometry(kRoleK);
  const int64_t D = c.D(), Dv = c.Dv(), Sq = c.Sq(), Sk = c.Sk();
  const real scale = c.scale, as = std::fabs(scale);
  const auto sq = c.shape(kRoleQ), sk = c.shape(kRoleK), sv = c.shape(kRoleV);
  Exact x;
  x.dq.assign(flat(sq, {c.B - 1, c.C - 1, c.Tq - 1, c.Hq - 1, c.Wq - 1}) + 1, 0);
  x.bq = x.dq;
  x.dk.assign(flat(sk, {c.B - 1, c.C - 1, c.Tk - 1, c.Hk - 1, c.Wk - 1}) + 1, 0);
  x.bk = x.dk;
  x.dv.assign(flat(sv, {c.B - 1, c.Cv - 1, c.Tk - 1, c.Hk - 1, c.Wk - 1}) + 1, 0);
  x.bv = x.dv;
  std::vector<real> Q(Sq * D), K(Sk * D), V(Sk * Dv), dO(Sq * Dv), P(Sk), dP(Sk), A(Sk), M(Sk),
      dS(Sk), eS(Sk);
  for (int64_t n = 0; n < c.groups(); ++n)
    for (int64_t h = 0; h < c.heads; ++h) {
      for (int64_t p = 0; p < Sq; ++p) {
        for (int64_t d = 0; d < D; ++d) Q[p * D + d] = qv.at(gq.index(n, h * D + d, p));
        for (int64_t e = 0; e < Dv; ++e) dO[p * Dv + e] = dout.get(gq.index(n, h * Dv + e, p));
      }
      for (int64_t r = 0; r < Sk; ++r) {
        for (int64_t d = 0; d < D; ++d) K[r * D + d] = kv.at(gk.index(n, h * D + d, r));
        for (int64_t e = 0; e < Dv; ++e) V[r * Dv + e] = vv.at(gk.index(n, h * Dv + e, r));
      }
      std::vector<real> dk(Sk * D, 0), bk(Sk * D, 0);
      for (int64_t p = 0; p < Sq; ++p) {
        real mx = -INFINITY, mmax = 0;
        for (int64_t r = 0; r < Sk; ++r) {
          real s = 0, m = 0, dp = 0, a = 0;
          for (int64_t d = 0; d < D; ++d)
            s += Q[p * D + d] * K[r * D + d], m += std::fabs(Q[p * D + d] * K[r * D + d]);
          for (int64_t e = 0; e < Dv; ++e)
            dp += dO[p * Dv + e] * V[r * Dv + e], a += std::fabs(dO[p * Dv + e] * V[r * Dv + e]);
          P[r] = scale * s, M[r] = as * m, dP[r] = dp, A[r] = a;
          mx = std::max(mx, P[r]), mmax = std::max(mmax, M[r]);
        }
        real sum = 0, R = 0, eR = 0;
        for (int64_t r = 0; r < Sk; ++r) sum += (P[r] = std::exp(P[r] - mx));
        const real eta = 2 * (D + 2) * u * mmax + (Sk + 8) * u;
        for (int64_t r = 0; r < Sk; ++r) {
          P[r] /= sum;
          R += P[r] * dP[r];
          eR += P[r] * A[r] * (eta + (Sk + Dv + 8) * u);
        }
        for (int64_t r = 0; r < Sk; ++r) {
          dS[r] = P[r] * (dP[r] - R);
          eS[r] =
              P[r] * (std::fabs(dP[r] - R) * eta + (Dv + 2) * u * A[r] + eR) + u * std::fabs(dS[r]);
        }
        for (int64_t d = 0; d < D; ++d) {
          real acc = 0, b = 0;
          for (int64_t r = 0; r < Sk; ++r) {
            acc += dS[r] * K[r * D + d];
            b += eS[r] * std::fabs(K[r * D + d]) + (Sk + 2) * u * std::fabs(dS[r] * K[r * D + d]);
          }
          const int64_t f = flat(sq, gq.index(n, h * D + d, p));
          x.dq[f] = scale * acc, x.bq[f] = as * b;
        }
        for (int64_t r = 0; r < Sk; ++r) {
          for (int64_t d = 0; d < D; ++d) {
            dk[r * D + d] += dS[r] * Q[p * D + d];
            bk[r * D + d] +=
                eS[r] * std::fabs(Q[p * D + d]) + (Sq + 2) * u * std::fabs(dS[r] * Q[p * D + d]);
          }
          for (int64_t e = 0; e < Dv; ++e) {
            const int64_t f = flat(sv, gk.index(n, h * Dv + e, r));
            x.dv[f] += P[r] * dO[p * Dv + e];
            x.bv[f] += P[r] * std::fabs(dO[p * Dv + e]) * (eta + (Sq + 2) * u);
          }
        }
      }
      for (int64_t r = 0; r < Sk; ++r)
        for (int64_t d = 0; d < D; ++d) {
          const int64_t f = flat(sk, gk.index(n, h * D + d, r));
          x.dk[f] = scale * dk[r * D + d], x.bk[f] = as * bk[r * D + d];
        }
    }
  return x;
}

// The first element outside its bound, or "".
std::string outside(const char* name, const std::vector<real>& got, const std::vector<real>& want,
                    const std::vector<real>& bound, real floor) {
  for (size_t i = 0; i < got.size(); ++i)
    if (!(std::fabs(got[i] - want[i]) <= bound[i] + floor)) {
      char text[200];
      std::snprintf(text, sizeof text,
                    "[%zu] = %.10Lg, exact %.10Lg, error %.3Lg above the bound %.3Lg", i, got[i],
                    want[i], std::fabs(got[i] - want[i]), bound[i]);
      return name + std::string(text) + " (flat row-major index)";
    }
  return "";
}

// Runs a backward on the case (the cpu forward's out first), inputs
// write-protected. Throws when the call is not OK or touched an input.
void run(Backward fn, GuardedCase& g, Grads& gr) {
  char msg[256] = "";
  if (cpu::attention(g.call(), msg, sizeof msg) != ATTNCHECK_OK)
    throw std::runtime_error(std::string("forward: ") + msg);
  const attncheck_attention_backward call = gr.call(g);
  g.protect_inputs(true);
  const attncheck_status s = fn(&call, msg, sizeof msg);
  g.protect_inputs(false);
  if (s != ATTNCHECK_OK) throw std::runtime_error(std::string("backward: ") + msg);
  if (const std::string m = g.check_memory(); !m.empty()) throw std::runtime_error(m);
}

std::string within_bound(Backward fn, GuardedCase& g, Grads& gr, const Exact& x, real floor) {
  run(fn, g, gr);
  for (auto [name, t, want, bound] :
       {std::tuple{"dq", &gr.dq, &x.dq, &x.bq}, std::tuple{"dk", &gr.dk, &x.dk, &x.bk},
        std::tuple{"dv", &gr.dv, &x.dv, &x.bv}})
    if (std::string e = outside(name, t->values(), *want, *bound, floor); !e.empty()) return e;
  return "";
}

rc::Gen<Case> case_of(DType dt) {
  gen::CaseOptions o;
  o.dtype = dt;
  o.max_flops = 5e5;
  return gen::attention_case(o);
}

std::array<LayoutRecipe, 3> grad_layouts() {
  return {*gen::layout_recipe(false), *gen::layout_recipe(false), *gen::layout_recipe(false)};
}

}  // namespace

// (a) + (c): both implementations within the bound of the exact gradients
// (so within twice it of each other), every axes family, heads, layouts and
// shared inputs the generator makes, on every instruction set here; f64 on
// the cpu kernel alone (reference_f32 declines it).
RC_GTEST_PROP(CpuBackward, MatchesTheExactGradientsOnEveryArch, ()) {
  Setting restore;
  const DType dt = *rc::gen::element(DType::f32, DType::f64);
  const Case c = *case_of(dt);
  RC_TAG(ref::name_of(dt), ref::name_of(c.axes));
  RC_CLASSIFY(c.Sk() > 64, "several key tiles");
  RC_CLASSIFY(c.Sq() > 96, "several query tiles");
  GuardedCase g(c);
  Grads gr(c, *gen::layout_recipe(true), grad_layouts(), *rc::gen::arbitrary<uint32_t>());
  const real u = dt == DType::f32 ? 0x1p-24L : 0x1p-53L;
  const Exact x = exact(g, gr.dout, u);
  const real floor = dt == DType::f32 ? 1e-30L : 1e-290L;
  cpu::set_threads(*rc::gen::element(1, 2, 3));
  for (const auto& arch : supported_archs()) {
    RC_ASSERT(cpu::set_arch(arch.c_str()));
    const std::string e = within_bound(cpu::backward, g, gr, x, floor);
    if (!e.empty()) RC_FAIL("cpu " + arch + ": " + e);
  }
  if (dt == DType::f32) {
    const std::string e = within_bound(reference_f32::backward, g, gr, x, floor);
    if (!e.empty()) RC_FAIL("reference_f32: " + e);
  }
}

// (b) + (c): the same logical inputs under other layouts (q, k, v, out,
// dout, dq, dk, dv; dout broadcast or not) and on 1, 2, 3 and 7 threads give
// bitwise the same dq, dk and dv, on each instruction set.
RC_GTEST_PROP(CpuBackward, BitwiseIdenticalAcrossLayoutsAndThreads, ()) {
  Setting restore;
  const Case c = *case_of(*rc::gen::element(DType::f32, DType::f64, DType::bf16, DType::f16));
  Case other = c;
  for (int t = 0; t < 4; ++t) {
    other.layout[t] = *gen::layout_recipe(false);
    other.layout[t].broadcast = c.layout[t].broadcast;  // broadcast masks are part of the values
  }
  if (c.share == Share::kv_overlap) other.layout[kRoleK].broadcast &= ~2;
  other.normalize();
  // dout broadcast (zero strides) in one layout, materialized in the other:
  // the values ignore the broadcast dims in both.
  LayoutRecipe da = *gen::layout_recipe(true), db = *gen::layout_recipe(false);
  const int mask = da.broadcast;
  const uint32_t seed = *rc::gen::arbitrary<uint32_t>();
  GuardedCase ga(c), gb(other);
  Grads a(c, da, grad_layouts(), seed), b(other, db, grad_layouts(), seed);
  b.dout.fill(seed, mask);
  RC_TAG(mask ? "dout broadcast" : "dout full");
  for (const auto& arch : supported_archs()) {
    RC_ASSERT(cpu::set_arch(arch.c_str()));
    cpu::set_threads(1);
    run(cpu::backward, ga, a);
    const auto dq = a.dq.values(), dk = a.dk.values(), dv = a.dv.values();
    for (int threads : {1, 2, 3, 7}) {
      cpu::set_threads(threads);
      run(cpu::backward, gb, b);
      auto same = [](const std::vector<real>& x, const std::vector<real>& y) {
        return x.size() == y.size() &&
               std::equal(x.begin(), x.end(), y.begin(), [](real p, real q) {
                 return p == q ? std::signbit(p) == std::signbit(q)
                               : std::isnan(p) && std::isnan(q);
               });
      };
      RC_ASSERT(same(b.dq.values(), dq));
      RC_ASSERT(same(b.dk.values(), dk));
      RC_ASSERT(same(b.dv.values(), dv));
    }
  }
}

namespace {

Case parse(const std::string& sizes) {
  return Case::parse(
      sizes +
      " share=none place=low Lq=0/1/0:0:0:0:0/0/a/0/0 Lk=0/1/0:0:0:0:0/0/a/0/0 "
      "Lv=0/1/0:0:0:0:0/0/a/0/0 Lout=0/1/0:0:0:0:0/0/a/0/0 Vq=normal:4 Vk=normal:5 Vv=normal:6");
}

std::array<LayoutRecipe, 3> compact3() { return {}; }

}  // namespace

// Thousands of keys and hundreds of queries (many tiles of each, partial
// last tiles), on every instruction set, f32 and f64, two threads.
TEST(CpuBackward, LongSequencesAcrossTiles) {
  Setting restore;
  cpu::set_threads(2);
  for (DType dt : {DType::f32, DType::f64}) {
    // 3 x 31 x 37 = 3441 keys, 2 x 11 x 9 = 198 queries.
    GuardedCase g(parse(std::string("spatiotemporal ") + ref::name_of(dt) +
                        " B=1 C=10 Cv=6 heads=2 q=2x11x9 k=3x31x37 scale=0.7"));
    Grads gr(g.spec(), LayoutRecipe{}, compact3(), 7);
    const Exact x = exact(g, gr.dout, dt == DType::f32 ? 0x1p-24L : 0x1p-53L);
    for (const auto& arch : supported_archs()) {
      ASSERT_TRUE(cpu::set_arch(arch.c_str()));
      EXPECT_EQ(within_bound(cpu::backward, g, gr, x, 1e-30L), "")
          << arch << " " << ref::name_of(dt);
    }
    if (dt == DType::f32) {
      EXPECT_EQ(within_bound(reference_f32::backward, g, gr, x, 1e-30L), "");
    }
  }
}

// Logits beyond float's range: the cpu kernel recomputes in double and
// stays within the f32 bound (vacuous for the logits, but no NaN, no inf);
// reference_f32 declines a scale float cannot hold.
TEST(CpuBackward, HugeLogitsFallBackToDouble) {
  for (const char* scale : {"3e38", "1e300"}) {
    GuardedCase g(
        parse(std::string("spatial f32 B=1 C=4 Cv=4 heads=2 q=1x3x5 k=1x3x5 scale=") + scale));
    Grads gr(g.spec(), LayoutRecipe{}, compact3(), 3);
    const Exact x = exact(g, gr.dout, 0x1p-24L);
    EXPECT_EQ(within_bound(cpu::backward, g, gr, x, 1e-30L), "") << scale;
  }
  GuardedCase g(parse("spatial f32 B=1 C=4 Cv=4 heads=2 q=1x3x5 k=1x3x5 scale=1e300"));
  Grads gr(g.spec(), LayoutRecipe{}, compact3(), 3);
  char msg[256] = "";
  const attncheck_attention_backward call = gr.call(g);
  EXPECT_EQ(reference_f32::backward(&call, msg, sizeof msg), ATTNCHECK_UNSUPPORTED);
}

// (d): malformed calls fail with one line naming the problem, before any
// memory is touched; a legal interleaving of dq, dk, dv in one buffer is
// not mistaken for an overlap.
TEST(CpuBackward, MalformedCallsFailWithOneLine) {
  GuardedCase g(parse("spatial f32 B=1 C=4 Cv=4 heads=2 q=1x3x5 k=1x3x5 scale=0.5"));
  Grads gr(g.spec(), LayoutRecipe{}, compact3(), 5);
  const attncheck_attention_backward good = gr.call(g);
  for (Backward fn : {Backward{cpu::backward}, Backward{reference_f32::backward}}) {
    auto expect_failed = [&](attncheck_attention_backward call, const std::string& needle) {
      std::fill(gr.dq.bytes.begin(), gr.dq.bytes.end(), std::byte{0xa5});
      char msg[256] = "";
      EXPECT_EQ(fn(&call, msg, sizeof msg), ATTNCHECK_FAILED) << needle;
      EXPECT_NE(std::string(msg).find(needle), std::string::npos) << msg;
      EXPECT_EQ(std::string(msg).find('\n'), std::string::npos) << msg;
      for (std::byte b : gr.dq.bytes)
        ASSERT_EQ(b, std::byte{0xa5}) << "dq written by a failed call: " << needle;
    };
    // dout shaped unlike out.
    DLTensor dout = *good.dout;
    int64_t shape[5] = {1, 4, 1, 3, 4};
    dout.shape = shape;
    attncheck_attention_backward call = good;
    call.dout = &dout;
    expect_failed(call, "dout: shape[4] (W) is 4, expected 5");
    // A broadcast dq.
    DLTensor dq = *good.dq;
    int64_t zero[5] = {0, 0, 0, 0, 0};
    dq.strides = zero;
    call = good;
    call.dq = &dq;
    expect_failed(call, "dq: strides[0] (B) is 0");
    // dq on q's memory.
    dq = *good.q;
    call = good;
    call.dq = &dq;
    expect_failed(call, "dq: shares memory with q");
    // dv overlapping dk by one element.
    call = good;
    DLTensor dv = *good.dk;
    dv.byte_offset += 4 * (4 * 15 - 1);
    call.dv = &dv;
    expect_failed(call, "dk: shares memory with dv");
  }
  // dq, dk, dv interleaved channels-last in one buffer: legal.
  std::vector<float> fused(15 * 12);
  int64_t shape[5] = {1, 4, 1, 3, 5}, st[5] = {180, 1, 180, 60, 12};
  DLTensor t[3];
  for (int i = 0; i < 3; ++i)
    t[i] = DLTensor{fused.data(), {kDLCPU, 0}, 5, {kDLFloat, 32, 1}, shape, st, uint64_t(16 * i)};
  attncheck_attention_backward call = good;
  call.dq = &t[0], call.dk = &t[1], call.dv = &t[2];
  char msg[256] = "";
  EXPECT_EQ(cpu::backward(&call, msg, sizeof msg), ATTNCHECK_OK) << msg;
}

// builtin.so exports both backward implementations under their forward names.
TEST(CpuBackward, ExportedByBuiltin) {
  void* lib = dlopen(ATTNCHECK_BUILTIN_PATH, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(lib, nullptr) << dlerror();
  using Table = const attncheck_backward_impl* (*)(int, size_t*);
  auto table = reinterpret_cast<Table>(dlsym(lib, "attncheck_backward_impls"));
  ASSERT_NE(table, nullptr);
  size_t n = 0;
  EXPECT_EQ(table(ATTNCHECK_BACKWARD_ABI_VERSION + 1, &n), nullptr);
  const attncheck_backward_impl* impls = table(ATTNCHECK_BACKWARD_ABI_VERSION, &n);
  ASSERT_NE(impls, nullptr);
  std::vector<std::string> names;
  for (size_t i = 0; i < n; ++i) names.push_back(impls[i].name);
  EXPECT_EQ(names, (std::vector<std::string>{"cpu", "reference_f32"}));
  // The exported cpu entry computes what the in-process one does.
  GuardedCase g(parse("temporal f32 B=2 C=6 Cv=4 heads=2 q=3x2x2 k=5x2x2 scale=0.4"));
  Grads a(g.spec(), LayoutRecipe{}, compact3(), 9), b(g.spec(), LayoutRecipe{}, compact3(), 9);
  run(cpu::backward, g, a);
  run(impls[0].backward, g, b);
  EXPECT_EQ(a.dq.bytes, b.dq.bytes);
  EXPECT_EQ(a.dk.bytes, b.dk.bytes);
  EXPECT_EQ(a.dv.bytes, b.dv.bytes);
  dlclose(lib);
}

}  // namespace attncheck
