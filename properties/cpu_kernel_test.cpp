// Strict properties of the `cpu` kernel (src/impls/cpu), beyond what
// `attncheck verify` checks through the ABI: agreement with a long-double
// loop written from the spec's formula under a justified error bound, and
// bitwise determinism across layouts and thread counts.
//
// How main adds it (properties/CMakeLists.txt):
//
//   if(TARGET attncheck_cpu)
//     add_executable(cpu_kernel_properties cpu_kernel_test.cpp)
//     target_link_libraries(cpu_kernel_properties PRIVATE attncheck_cpu
//       rapidcheck rapidcheck_gtest GTest::gtest GTest::gtest_main)
//     gtest_discover_tests(cpu_kernel_properties DISCOVERY_TIMEOUT 60)
//   endif()
#include "cpu_attention.h"
#include "storage.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

namespace {

using attncheck::cpu::bf16_t;
using attncheck::cpu::f16_t;

enum class DT { f32, f64, bf16, f16 };
const char* name(DT t) {
  return t == DT::f32 ? "f32" : t == DT::f64 ? "f64" : t == DT::bf16 ? "bf16" : "f16";
}
int64_t size_of(DT t) { return t == DT::f64 ? 8 : t == DT::f32 ? 4 : 2; }
DLDataType dl(DT t) {
  switch (t) {
    case DT::f32:
      return {kDLFloat, 32, 1};
    case DT::f64:
      return {kDLFloat, 64, 1};
    case DT::bf16:
      return {kDLBfloat, 16, 1};
    case DT::f16:
      return {kDLFloat, 16, 1};
  }
  return {};
}
// Unit roundoff of a storage type.
double unit_roundoff(DT t) {
  return t == DT::f64 ? 0x1p-53 : t == DT::f32 ? 0x1p-24 : t == DT::bf16 ? 0x1p-8 : 0x1p-11;
}

double read(DT t, const std::byte* p) {
  switch (t) {
    case DT::f32: {
      float x;
      std::memcpy(&x, p, 4);
      return x;
    }
    case DT::f64: {
      double x;
      std::memcpy(&x, p, 8);
      return x;
    }
    case DT::bf16: {
      bf16_t x;
      std::memcpy(&x, p, 2);
      return attncheck::cpu::to_float(x);
    }
    case DT::f16: {
      f16_t x;
      std::memcpy(&x, p, 2);
      return attncheck::cpu::to_float(x);
    }
  }
  return 0;
}
void write(DT t, std::byte* p, double v) {
  switch (t) {
    case DT::f32: {
      float x = static_cast<float>(v);
      std::memcpy(p, &x, 4);
      break;
    }
    case DT::f64:
      std::memcpy(p, &v, 8);
      break;
    case DT::bf16: {
      bf16_t x = attncheck::cpu::to_bf16(static_cast<float>(v));
      std::memcpy(p, &x, 2);
      break;
    }
    case DT::f16: {
      f16_t x = attncheck::cpu::to_f16(static_cast<float>(v));
      std::memcpy(p, &x, 2);
      break;
    }
  }
}

using Shape = std::array<int64_t, 5>;  // (B, C, T, H, W)

// A layout: strides in elements and an offset, printed as CuTe does.
struct Layout {
  Shape shape{};
  Shape stride{};
  int64_t offset = 0;
  std::string str() const {
    std::ostringstream os;
    os << "(" << shape[0] << "," << shape[1] << "," << shape[2] << "," << shape[3] << ","
       << shape[4] << "):(" << stride[0] << "," << stride[1] << "," << stride[2] << ","
       << stride[3] << "," << stride[4] << ")+" << offset;
    return os.str();
  }
  int64_t at(const Shape& i) const {
    int64_t o = offset;
    for (int d = 0; d < 5; ++d) o += i[d] * stride[d];
    return o;
  }
  int64_t extent() const {
    int64_t e = offset + 1;
    for (int d = 0; d < 5; ++d) e += (shape[d] - 1) * stride[d];
    return e;
  }
};
void showValue(const Layout& l, std::ostream& os) { os << l.str(); }

template <class F>
void for_each_index(const Shape& s, F&& f) {
  Shape i{};
  for (i[0] = 0; i[0] < s[0]; ++i[0])
    for (i[1] = 0; i[1] < s[1]; ++i[1])
      for (i[2] = 0; i[2] < s[2]; ++i[2])
        for (i[3] = 0; i[3] < s[3]; ++i[3])
          for (i[4] = 0; i[4] < s[4]; ++i[4]) f(i);
}

// A random layout for shape: any order of the five dimensions in memory,
// padding after any dimension (the innermost too), an offset of 0..4
// elements (so the data is misaligned to 16 bytes), zero strides where
// allowed, and an arbitrary stride on size-1 dimensions.
rc::Gen<Layout> gen_layout(Shape shape, bool allow_zero) {
  return rc::gen::exec([shape, allow_zero] {
    Layout l;
    l.shape = shape;
    std::array<int, 5> order{0, 1, 2, 3, 4};  // order[0] outermost in memory
    const auto keys = *rc::gen::container<std::vector<int>>(5, rc::gen::inRange(0, 5));
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return keys[a] < keys[b]; });
    int64_t next = 1 + *rc::gen::weightedOneOf<int64_t>(
                           {{3, rc::gen::just<int64_t>(0)}, {1, rc::gen::inRange<int64_t>(1, 3)}});
    for (int i = 4; i >= 0; --i) {
      const int d = order[i];
      const bool zero = allow_zero && *rc::gen::weightedOneOf<bool>(
                                          {{6, rc::gen::just(false)}, {1, rc::gen::just(true)}});
      if (zero) {
        l.stride[d] = 0;
      } else if (shape[d] == 1 && *rc::gen::arbitrary<bool>()) {
        l.stride[d] = *rc::gen::inRange<int64_t>(allow_zero ? 0 : 1, 1000);  // out: never 0
      } else {
        l.stride[d] = next;
        next = next * shape[d] + *rc::gen::weightedOneOf<int64_t>(
                                     {{3, rc::gen::just<int64_t>(0)}, {1, rc::gen::inRange<int64_t>(1, 4)}});
      }
    }
    l.offset = *rc::gen::inRange<int64_t>(0, 5);
    return l;
  });
}

// A tensor in its own allocation. Slots that are not elements hold a
// poison value (NaN for inputs): reading them shows up in the result.
struct Tensor {
  DT dt = DT::f32;
  Layout layout;
  std::vector<std::byte> mem;
  DLTensor t{};

  Tensor() = default;
  Tensor(DT d, const Layout& l, double poison) : dt(d), layout(l) {
    const int64_t n = l.extent() + 8;  // 8 slots of tail fence
    mem.resize(static_cast<size_t>(n * size_of(d)));
    for (int64_t i = 0; i < n; ++i) write(d, mem.data() + i * size_of(d), poison);
    t.data = mem.data();
    t.device = {kDLCPU, 0};
    t.ndim = 5;
    t.dtype = dl(d);
    t.shape = layout.shape.data();
    t.strides = layout.stride.data();
    // An odd offset moves the data pointer itself off 16-byte alignment; an
    // even one goes in byte_offset.
    if (l.offset % 2 == 1)
      t.data = mem.data() + l.offset * size_of(d);
    else
      t.byte_offset = static_cast<uint64_t>(l.offset * size_of(d));
  }
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;

  std::byte* slot(const Shape& i) {
    return mem.data() + (layout.at(i)) * size_of(dt);
  }
  double get(const Shape& i) { return read(dt, slot(i)); }
  void set(const Shape& i, double v) { write(dt, slot(i), v); }
};

// The logical values of a tensor, (B, C, T, H, W) row-major, as doubles.
struct Values {
  Shape shape{};
  std::vector<double> v;
  double& operator[](const Shape& i) {
    return v[(((i[0] * shape[1] + i[1]) * shape[2] + i[2]) * shape[3] + i[3]) * shape[4] + i[4]];
  }
};

// Writes values into a tensor through its layout, then reads them back:
// with zero strides several indices share a slot and the last write wins,
// so the tensor's logical values are what is read back.
Values fill(Tensor& t, Values want) {
  for_each_index(want.shape, [&](const Shape& i) { t.set(i, want[i]); });
  for_each_index(want.shape, [&](const Shape& i) { want[i] = t.get(i); });
  return want;
}

struct Case {
  int axes = 0;
  int64_t B = 1, heads = 1, D = 1, Dv = 1;
  int64_t Tq = 1, Hq = 1, Wq = 1, Tk = 1, Hk = 1, Wk = 1;
  double scale = 1;
  DT dt = DT::f32;
  int value_kind = 0;  // 0 normal, 1 small integers (exact ties), 2 mixed magnitudes
  Shape q() const { return {B, heads * D, Tq, Hq, Wq}; }
  Shape k() const { return {B, heads * D, Tk, Hk, Wk}; }
  Shape v() const { return {B, heads * Dv, Tk, Hk, Wk}; }
  Shape out() const { return {B, heads * Dv, Tq, Hq, Wq}; }
};
void showValue(const Case& c, std::ostream& os) {
  os << "axes=" << c.axes << " B=" << c.B << " heads=" << c.heads << " D=" << c.D
     << " Dv=" << c.Dv << " q(T,H,W)=(" << c.Tq << "," << c.Hq << "," << c.Wq << ") k(T,H,W)=("
     << c.Tk << "," << c.Hk << "," << c.Wk << ") scale=" << c.scale << " dtype=" << name(c.dt)
     << " values=" << c.value_kind;
}

// A count of attended positions: small ones, primes, and the key tile
// (128) and micro-tile (6 rows, 8 and 16 lanes) boundaries +-1.
rc::Gen<int64_t> gen_count(int64_t max) {
  return rc::gen::suchThat(
      rc::gen::weightedOneOf<int64_t>({
          {4, rc::gen::inRange<int64_t>(1, 20)},
          {2, rc::gen::element<int64_t>(1, 5, 6, 7, 15, 16, 17, 31, 32, 33, 97)},
          {2, rc::gen::element<int64_t>(127, 128, 129, 131, 255, 256, 257)},
          {1, rc::gen::inRange<int64_t>(20, 300)},
      }),
      [max](int64_t n) { return n <= max; });
}

// Splits n into `dims` factors (row-major), at random among its divisors.
std::vector<int64_t> gen_split(int64_t n, int dims) {
  std::vector<int64_t> f(dims, 1);
  for (int d = 0; d + 1 < dims; ++d) {
    std::vector<int64_t> divs;
    for (int64_t x = 1; x <= n; ++x)
      if (n % x == 0) divs.push_back(x);
    f[d] = *rc::gen::elementOf(divs);
    n /= f[d];
  }
  f[dims - 1] = n;
  return f;
}

rc::Gen<Case> gen_case(bool allow_all_dtypes) {
  return rc::gen::exec([allow_all_dtypes] {
    Case c;
    c.axes = *rc::gen::inRange(0, 3);
    c.B = *rc::gen::weightedOneOf<int64_t>({{3, rc::gen::just<int64_t>(1)}, {1, rc::gen::just<int64_t>(2)}});
    c.heads = *rc::gen::element<int64_t>(1, 1, 2, 3);
    auto head_dim = rc::gen::weightedOneOf<int64_t>(
        {{3, rc::gen::inRange<int64_t>(1, 20)}, {1, rc::gen::element<int64_t>(7, 8, 9, 15, 16, 17, 32, 33, 64)}});
    c.D = *head_dim;
    c.Dv = *rc::gen::weightedOneOf<int64_t>({{1, rc::gen::just(c.D)}, {1, head_dim}});
    // The axes that are not attended over, then the group count.
    const int64_t other = *rc::gen::inRange<int64_t>(1, 4);
    const int64_t other2 = *rc::gen::inRange<int64_t>(1, 3);
    const int64_t groups = c.axes == 0 ? c.B * other : c.axes == 1 ? c.B * other * other2 : c.B;
    // Keep the long-double loop cheap: groups x heads x Sq x Sk x (D + Dv)
    // bounded, by shrinking the query count.
    const int64_t Sk = *gen_count(300);
    const int64_t budget = 4'000'000 / (groups * c.heads * (c.D + c.Dv) * Sk);
    const int64_t Sq = std::max<int64_t>(1, std::min(*gen_count(300), budget));
    if (c.axes == 0) {
      auto q = gen_split(Sq, 2), k = gen_split(Sk, 2);
      c.Hq = q[0], c.Wq = q[1], c.Hk = k[0], c.Wk = k[1];
      c.Tq = c.Tk = other;
    } else if (c.axes == 1) {
      c.Tq = Sq, c.Tk = Sk;
      c.Hq = c.Hk = other;
      c.Wq = c.Wk = other2;
    } else {
      auto q = gen_split(Sq, 3), k = gen_split(Sk, 3);
      c.Tq = q[0], c.Hq = q[1], c.Wq = q[2], c.Tk = k[0], c.Hk = k[1], c.Wk = k[2];
    }
    const double inv = 1.0 / std::sqrt(static_cast<double>(c.D));
    c.scale = *rc::gen::element(inv, inv, -inv, 0.0, 1.0, 3.0, -7.5, 0.01, 40.0);
    c.value_kind = *rc::gen::element(0, 0, 1, 2);
    c.dt = allow_all_dtypes ? *rc::gen::element(DT::f32, DT::f32, DT::f32, DT::f64, DT::bf16, DT::f16)
                            : DT::f32;
    return c;
  });
}

// Random logical values for a shape, reproducible from the seed.
Values make_values(const Shape& s, uint64_t seed, int kind) {
  Values v;
  v.shape = s;
  v.v.resize(static_cast<size_t>(s[0] * s[1] * s[2] * s[3] * s[4]));
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  auto next = [&] {
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    return (x * 0x2545F4914F6CDD1Dull >> 11) * 0x1p-53;  // [0, 1)
  };
  for (auto& e : v.v) {
    const double u = next(), w = next();
    const double n = std::sqrt(-2 * std::log1p(-u)) * std::cos(6.283185307179586 * w);
    if (kind == 1)
      e = std::floor(u * 5) - 2;  // -2..2: many exact ties
    else if (kind == 2)
      e = n * std::ldexp(1.0, static_cast<int>(next() * 12) - 6);
    else
      e = n;
  }
  return v;
}

// The spec's formula in long double, and a bound on the error that a
// correct float kernel may make, per output element.
struct Expected {
  Values out, bound;
};

// Error bound. With u the compute type's unit roundoff (float: 2^-24 for
// f32/bf16/f16 inputs; 2^-53 for f64), a dot product of D terms is off by at
// most D u sum_d |q_d k_d| (sequential FMA, worst case), and scaling it
// adds u |logit|; call the largest such logit error over keys delta. Then
// each softmax weight P_r is off by a relative 2 delta + (Sk + 8) u (the max
// subtraction, exp, the running-sum rescales and the sum of Sk positive
// terms), and the output by that times sum_r P_r |v_r| plus (Sk + 4) u for
// the weighted sum and the division. The bound is that, doubled, plus half
// an ulp of the output's storage type, plus absolute terms for underflow; it is first-order and worst-case, so
// a correct kernel never exceeds it, while a kernel that drops a key, reads
// a wrong element or mis-scales is far outside it.
Expected expected(const Case& c, Values& q, Values& k, Values& v) {
  Expected e;
  e.out.shape = e.bound.shape = c.out();
  e.out.v.assign(q.v.size() / (c.heads * c.D) * (c.heads * c.Dv), 0);
  e.bound.v = e.out.v;
  const double u = c.dt == DT::f64 ? 0x1p-53 : 0x1p-24;
  const double u_out = unit_roundoff(c.dt);
  // Weights below the compute type's smallest normal lose their digits (a
  // weight far below it becomes 0), and the output may round to its storage
  // type's smallest subnormal: absolute terms.
  const double underflow = c.dt == DT::f64 ? 0x1p-1022 : 0x1p-126;
  const double out_tiny = c.dt == DT::f64 ? 0x1p-1074 : c.dt == DT::f16 ? 0x1p-25 : 0x1p-149;
  // Positions of a group as (t, h, w) lists.
  auto positions = [&](int64_t T, int64_t H, int64_t W) {
    std::vector<std::array<int64_t, 3>> p;
    if (c.axes == 0)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w) p.push_back({-1, h, w});
    else if (c.axes == 1)
      for (int64_t t = 0; t < T; ++t) p.push_back({t, -1, -1});
    else
      for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t w = 0; w < W; ++w) p.push_back({t, h, w});
    return p;
  };
  const auto qp = positions(c.Tq, c.Hq, c.Wq), kp = positions(c.Tk, c.Hk, c.Wk);
  std::vector<std::array<int64_t, 4>> groups;  // (b, t, h, w) with -1 for attended axes
  for (int64_t b = 0; b < c.B; ++b) {
    if (c.axes == 0)
      for (int64_t t = 0; t < c.Tq; ++t) groups.push_back({b, t, -1, -1});
    else if (c.axes == 1)
      for (int64_t h = 0; h < c.Hq; ++h)
        for (int64_t w = 0; w < c.Wq; ++w) groups.push_back({b, -1, h, w});
    else
      groups.push_back({b, -1, -1, -1});
  }
  auto at = [](const std::array<int64_t, 4>& g, const std::array<int64_t, 3>& p, int64_t ch) {
    return Shape{g[0], ch, g[1] >= 0 ? g[1] : p[0], g[2] >= 0 ? g[2] : p[1], g[3] >= 0 ? g[3] : p[2]};
  };
  const int64_t Sk = static_cast<int64_t>(kp.size());
  std::vector<long double> logit(Sk), delta(Sk);
  for (const auto& g : groups)
    for (int64_t hd = 0; hd < c.heads; ++hd)
      for (const auto& pq : qp) {
        long double mx = -std::numeric_limits<long double>::infinity();
        double dmax = 0;
        for (int64_t r = 0; r < Sk; ++r) {
          long double s = 0, a = 0;
          for (int64_t d = 0; d < c.D; ++d) {
            const long double x = q[at(g, pq, hd * c.D + d)], y = k[at(g, kp[r], hd * c.D + d)];
            s += x * y;
            a += std::fabs(x * y);
          }
          logit[r] = c.scale * s;
          delta[r] = c.D * u * std::fabs(c.scale) * a + u * std::fabs(logit[r]);
          mx = std::max(mx, logit[r]);
          dmax = std::max<double>(dmax, delta[r]);
        }
        long double den = 0;
        for (int64_t r = 0; r < Sk; ++r) den += std::exp(logit[r] - mx);
        const double rel = 2 * (2 * dmax + (2 * Sk + 12) * u);
        for (int64_t e2 = 0; e2 < c.Dv; ++e2) {
          long double num = 0, mag = 0;
          double vmax = 0;
          for (int64_t r = 0; r < Sk; ++r) vmax = std::max(vmax, std::fabs(v[at(g, kp[r], hd * c.Dv + e2)]));
          for (int64_t r = 0; r < Sk; ++r) {
            const long double p = std::exp(logit[r] - mx) / den;
            const long double x = v[at(g, kp[r], hd * c.Dv + e2)];
            num += p * x;
            mag += p * std::fabs(x);
          }
          const Shape o = at(g, pq, hd * c.Dv + e2);
          e.out[o] = static_cast<double>(num);
          e.bound[o] = rel * static_cast<double>(mag) + u_out * std::fabs(static_cast<double>(num)) +
                       underflow * static_cast<double>(Sk) * vmax + out_tiny;
        }
      }
  return e;
}

int64_t numel(const Shape& s) { return s[0] * s[1] * s[2] * s[3] * s[4]; }

// One call's tensors: q, k, v (k may be q's tensor, v may be k's) and out,
// and the logical values the kernel reads.
struct Call {
  std::unique_ptr<Tensor> q, k, v, out;
  Values qv, kv, vv;
  attncheck_attention call{};
};

Values read_all(Tensor& t, const Shape& s) {
  Values v;
  v.shape = s;
  v.v.resize(static_cast<size_t>(numel(s)));
  for_each_index(s, [&](const Shape& i) { v[i] = t.get(i); });
  return v;
}

// Builds tensors in the given layouts holding values made from seed.
void build(Call& call, const Case& c, const Layout& lq, const Layout& lk, const Layout& lv,
           const Layout& lo, uint64_t seed, bool k_is_q, bool v_is_k) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  call.q = std::make_unique<Tensor>(c.dt, lq, nan);
  fill(*call.q, make_values(c.q(), seed, c.value_kind));
  if (!k_is_q) {
    call.k = std::make_unique<Tensor>(c.dt, lk, nan);
    fill(*call.k, make_values(c.k(), seed + 1, c.value_kind));
  }
  Tensor& kt = k_is_q ? *call.q : *call.k;
  if (!v_is_k) {
    call.v = std::make_unique<Tensor>(c.dt, lv, nan);
    fill(*call.v, make_values(c.v(), seed + 2, c.value_kind));
  }
  Tensor& vt = v_is_k ? kt : *call.v;
  call.qv = read_all(*call.q, c.q());
  call.kv = read_all(kt, c.k());
  call.vv = read_all(vt, c.v());
  // A finite poison in out: a write outside out's elements changes it.
  call.out = std::make_unique<Tensor>(c.dt, lo, -1000.0);
  call.call = attncheck_attention{static_cast<attncheck_axes>(c.axes), &call.q->t, &kt.t, &vt.t,
                                  &call.out->t, c.heads, c.scale};
}

// The output's logical values, and whether every non-element slot of out
// still holds the poison.
Values read_out(Call& call, const Case& c, bool* fence_ok) {
  Values o;
  o.shape = c.out();
  o.v.resize(static_cast<size_t>(o.shape[0] * o.shape[1] * o.shape[2] * o.shape[3] * o.shape[4]));
  std::vector<char> is_elem(call.out->mem.size() / size_of(c.dt), 0);
  for_each_index(o.shape, [&](const Shape& i) {
    o[i] = call.out->get(i);
    is_elem[call.out->layout.at(i)] = 1;
  });
  *fence_ok = true;
  for (size_t s = 0; s < is_elem.size(); ++s)
    if (!is_elem[s] && read(c.dt, call.out->mem.data() + s * size_of(c.dt)) != -1000.0) *fence_ok = false;
  return o;
}

// Raw bytes of out's elements in logical order, for bitwise comparison.
std::vector<std::byte> out_bytes(Call& call, const Case& c) {
  std::vector<std::byte> b;
  for_each_index(c.out(), [&](const Shape& i) {
    const std::byte* p = call.out->slot(i);
    b.insert(b.end(), p, p + size_of(c.dt));
  });
  return b;
}

struct Setting {
  ~Setting() {
    attncheck::cpu::set_threads(0);
    attncheck::cpu::set_arch(nullptr);
  }
};

std::vector<std::string> supported_archs() {
  std::vector<std::string> a;
  for (const char* n : {"avx512", "avx2", "sse2"})
    if (attncheck::cpu::set_arch(n)) a.push_back(n);
  attncheck::cpu::set_arch(nullptr);
  return a;
}

attncheck_status run(Call& call, std::string* msg) {
  char buf[256] = "";
  const attncheck_status s = attncheck::cpu::attention(&call.call, buf, sizeof buf);
  *msg = buf;
  return s;
}

}  // namespace

namespace {
std::string str(double x) {
  char b[40];
  std::snprintf(b, sizeof b, "%.17g", x);
  return b;
}
}  // namespace

// (1) Agreement with the formula, every axes family, layout and dtype, on
// every instruction set this machine has.
RC_GTEST_PROP(CpuKernel, MatchesLongDoubleFormulaOnAnyLayout, ()) {
  Setting restore;
  const Case c = *gen_case(true);
  const auto archs = supported_archs();
  const std::string arch = *rc::gen::elementOf(archs);
  const int threads = *rc::gen::element(1, 2, 3);
  const bool k_is_q = c.q() == c.k() && *rc::gen::weightedOneOf<bool>({{4, rc::gen::just(false)}, {1, rc::gen::just(true)}});
  const bool v_is_k = c.k() == c.v() && *rc::gen::weightedOneOf<bool>({{4, rc::gen::just(false)}, {1, rc::gen::just(true)}});
  const Layout lq = *gen_layout(c.q(), true), lk = *gen_layout(c.k(), true),
               lv = *gen_layout(c.v(), true), lo = *gen_layout(c.out(), false);
  const uint64_t seed = *rc::gen::inRange<uint64_t>(0, 1000000);
  RC_TAG(c.axes, arch);
  Call call;
  build(call, c, lq, lk, lv, lo, seed, k_is_q, v_is_k);
  attncheck::cpu::set_threads(threads);
  RC_ASSERT(attncheck::cpu::set_arch(arch.c_str()));
  std::string msg;
  const attncheck_status st = run(call, &msg);
  RC_ASSERT(st == ATTNCHECK_OK);
  const Expected want = expected(c, call.qv, call.kv, call.vv);
  bool fence_ok = false;
  Values got = read_out(call, c, &fence_ok);
  RC_ASSERT(fence_ok);
  for (size_t i = 0; i < got.v.size(); ++i) {
    const double err = std::fabs(got.v[i] - want.out.v[i]);
    if (!(err <= want.bound.v[i])) {
      RC_FAIL("element " + std::to_string(i) + ": got " + str(got.v[i]) + " want " + str(want.out.v[i]) + " bound " + str(want.bound.v[i]) +
              " | q " + lq.str() + " k " + lk.str() + " v " + lv.str() + " out " + lo.str());
    }
  }
}

// (2) The same values in two different layouts give bitwise the same output.
RC_GTEST_PROP(CpuKernel, BitwiseIdenticalAcrossLayouts, ()) {
  Setting restore;
  const Case c = *gen_case(true);
  const uint64_t seed = *rc::gen::inRange<uint64_t>(0, 1000000);
  // Logical values fixed first (zero strides would collapse them, so these
  // layouts have none: the point is that only the layout differs).
  std::vector<std::vector<std::byte>> outs;
  for (int run_i = 0; run_i < 2; ++run_i) {
    const Layout lq = *gen_layout(c.q(), false), lk = *gen_layout(c.k(), false),
                 lv = *gen_layout(c.v(), false), lo = *gen_layout(c.out(), false);
    Call call;
    build(call, c, lq, lk, lv, lo, seed, false, false);
    std::string msg;
    RC_ASSERT(run(call, &msg) == ATTNCHECK_OK);
    outs.push_back(out_bytes(call, c));
  }
  RC_ASSERT(outs[0] == outs[1]);
}

// (3) Thread counts 1, 2, 3 and 7 give bitwise the same output.
RC_GTEST_PROP(CpuKernel, BitwiseIdenticalAcrossThreadCounts, ()) {
  Setting restore;
  const Case c = *gen_case(true);
  const uint64_t seed = *rc::gen::inRange<uint64_t>(0, 1000000);
  const Layout lq = *gen_layout(c.q(), true), lk = *gen_layout(c.k(), true),
               lv = *gen_layout(c.v(), true), lo = *gen_layout(c.out(), false);
  Call call;
  build(call, c, lq, lk, lv, lo, seed, false, false);
  std::vector<std::byte> first;
  for (int threads : {1, 2, 3, 7}) {
    attncheck::cpu::set_threads(threads);
    std::string msg;
    RC_ASSERT(run(call, &msg) == ATTNCHECK_OK);
    const auto got = out_bytes(call, c);
    if (threads == 1)
      first = got;
    else
      RC_ASSERT(got == first);
  }
}

namespace {
Case spatial_case(int64_t B, int64_t C, int64_t T, int64_t H, int64_t W, int64_t heads) {
  Case c;
  c.B = B, c.heads = heads, c.D = c.Dv = C / heads, c.Tq = c.Tk = T;
  c.Hq = c.Hk = H, c.Wq = c.Wk = W;
  c.scale = 1 / std::sqrt(static_cast<double>(c.D));
  return c;
}
Layout compact(const Shape& s) {
  Layout l;
  l.shape = s;
  int64_t n = 1;
  for (int d = 4; d >= 0; --d) l.stride[d] = n, n *= s[d];
  return l;
}
}  // namespace

// One key: softmax of one logit is exactly 1, so out is exactly v.
TEST(CpuKernel, OneKeyGivesV) {
  Case c = spatial_case(2, 12, 3, 1, 1, 3);
  c.Hq = 4, c.Wq = 5;
  c.scale = 1e30;  // whatever the logit, its weight is 1
  Call call;
  build(call, c, compact(c.q()), compact(c.k()), compact(c.v()), compact(c.out()), 7, false, false);
  std::string msg;
  ASSERT_EQ(run(call, &msg), ATTNCHECK_OK) << msg;
  bool fence_ok;
  Values got = read_out(call, c, &fence_ok);
  for_each_index(c.out(), [&](const Shape& i) {
    const Shape vi{i[0], i[1], i[2], 0, 0};
    ASSERT_EQ(got[i], call.vv[vi]);
  });
}

// Logits far beyond float's range (scale 1e36): the kernel recomputes in
// double and still matches the formula.
TEST(CpuKernel, HugeLogitsStillMatch) {
  Case c = spatial_case(1, 8, 2, 3, 5, 2);
  c.scale = 1e36;
  Call call;
  build(call, c, compact(c.q()), compact(c.k()), compact(c.v()), compact(c.out()), 3, false, false);
  std::string msg;
  ASSERT_EQ(run(call, &msg), ATTNCHECK_OK) << msg;
  Expected want = expected(c, call.qv, call.kv, call.vv);
  bool fence_ok;
  Values got = read_out(call, c, &fence_ok);
  for (size_t i = 0; i < got.v.size(); ++i)
    EXPECT_NEAR(got.v[i], want.out.v[i], 1e-6 * (1 + std::fabs(want.out.v[i]))) << i;
}

// Ties: q = k = all ones gives equal logits, so out is the mean of v.
TEST(CpuKernel, ExactTiesAverage) {
  Case c = spatial_case(1, 4, 1, 7, 19, 1);
  Call call;
  build(call, c, compact(c.q()), compact(c.k()), compact(c.v()), compact(c.out()), 5, false, false);
  for_each_index(c.q(), [&](const Shape& i) { call.q->set(i, 1.0); });
  for_each_index(c.k(), [&](const Shape& i) { call.k->set(i, 1.0); });
  std::string msg;
  ASSERT_EQ(run(call, &msg), ATTNCHECK_OK) << msg;
  bool fence_ok;
  Values got = read_out(call, c, &fence_ok);
  for (int64_t ch = 0; ch < 4; ++ch) {
    long double mean = 0;
    for (int64_t h = 0; h < 7; ++h)
      for (int64_t w = 0; w < 19; ++w) mean += call.vv[(Shape{0, ch, 0, h, w})];
    mean /= 133;
    for (int64_t h = 0; h < 7; ++h)
      for (int64_t w = 0; w < 19; ++w)
        EXPECT_NEAR(got[(Shape{0, ch, 0, h, w})], static_cast<double>(mean), 1e-5);
  }
}

// A long sequence (thousands of keys) on every instruction set.
TEST(CpuKernel, ThousandsOfKeys) {
  Setting restore;
  Case c;
  c.axes = 2, c.heads = 2, c.D = 5, c.Dv = 3, c.Tq = 1, c.Hq = 2, c.Wq = 3;
  c.Tk = 3, c.Hk = 31, c.Wk = 37;  // 3441 keys
  c.scale = 0.7;
  for (const auto& arch : supported_archs()) {
    ASSERT_TRUE(attncheck::cpu::set_arch(arch.c_str()));
    Call call;
    build(call, c, compact(c.q()), compact(c.k()), compact(c.v()), compact(c.out()), 11, false, false);
    std::string msg;
    ASSERT_EQ(run(call, &msg), ATTNCHECK_OK) << msg;
    Expected want = expected(c, call.qv, call.kv, call.vv);
    bool fence_ok;
    Values got = read_out(call, c, &fence_ok);
    EXPECT_TRUE(fence_ok);
    for (size_t i = 0; i < got.v.size(); ++i) EXPECT_LE(std::fabs(got.v[i] - want.out.v[i]), want.bound.v[i]) << arch << " " << i;
  }
}

// Calls the kernel cannot serve are declined with a reason, not run.
TEST(CpuKernel, DeclinesWithAReason) {
  Case c = spatial_case(1, 4, 1, 2, 2, 1);
  Call call;
  build(call, c, compact(c.q()), compact(c.k()), compact(c.v()), compact(c.out()), 1, false, false);
  for (DLTensor* t : {&call.q->t, &call.k->t, &call.v->t, &call.out->t}) t->device = {kDLCUDA, 0};
  std::string msg;
  EXPECT_EQ(run(call, &msg), ATTNCHECK_UNSUPPORTED);
  EXPECT_FALSE(msg.empty());
  // A malformed call fails with validate_call's message.
  for (DLTensor* t : {&call.q->t, &call.k->t, &call.v->t, &call.out->t}) t->device = {kDLCPU, 0};
  call.call.heads = 3;
  EXPECT_EQ(run(call, &msg), ATTNCHECK_FAILED);
  EXPECT_NE(msg.find("heads"), std::string::npos) << msg;
}

// The workspace is O(tile): it does not grow with the sequence lengths.
TEST(CpuKernel, WorkspaceIndependentOfSequenceLength) {
  Setting restore;
  attncheck::cpu::set_threads(1);  // BQ shrinks with many threads and few queries
  // validate_call reads no element, so one float of storage serves every
  // view (all strides 0 for q, k, v; out is never written here).
  float cell = 0;
  auto bytes = [&](int64_t H, int64_t W) {
    int64_t qs[5] = {1, 128, 1, H, W}, zero[5] = {0, 0, 0, 0, 0};
    int64_t ostr[5] = {128 * H * W, H * W, H * W, W, 1};
    DLTensor q{&cell, {kDLCPU, 0}, 5, {kDLFloat, 32, 1}, qs, zero, 0};
    DLTensor o{&cell, {kDLCPU, 0}, 5, {kDLFloat, 32, 1}, qs, ostr, 0};
    attncheck_attention call{ATTNCHECK_SPATIAL, &q, &q, &q, &o, 2, 0.125};
    return attncheck::cpu::workspace_bytes(&call);
  };
  const size_t s1k = bytes(32, 32), s16k = bytes(128, 128), s256k = bytes(512, 512);
  EXPECT_GT(s1k, 0u);
  EXPECT_EQ(s1k, s16k);
  EXPECT_EQ(s1k, s256k);
  EXPECT_LT(s256k, size_t{4} << 20);
}
