// Fuzz target `abi`: bytes -> DLTensors and attention calls, mostly
// malformed (wrong ndim, zero, negative or huge sizes, strides that
// overflow, mismatched shapes, null pointers, heads not dividing C, odd
// dtypes and devices, non-finite scales, out-of-range axes).
//
// validate_call (src/core/validate.cpp) must reject each bad call with a
// one-line message and accept only calls an independent check (below, in
// __int128 arithmetic) finds valid. The built-in implementations must
// return ATTNCHECK_FAILED with a message for every rejected call, and must
// never touch tensor memory doing so: every data pointer points into a
// PROT_NONE mapping, so a read is a fault. For accepted calls only the
// cpu kernel's planning (workspace_bytes), which reads no element, runs.
// A quarter of the inputs are instead small valid calls with extreme values
// (extreme_values below).
#include <attncheck/validate.h>

#include <FuzzedDataProvider.h>
#include <sys/mman.h>

#include "../src/impls/cpu/cpu_attention.h"
#include "../src/impls/reference_f32/reference_f32.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace {

using namespace attncheck;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "abi fuzz: %s\n", what.c_str());
  std::abort();
}

// Memory no call may touch.
std::byte* forbidden() {
  static std::byte* p = [] {
    void* m = mmap(nullptr, 1 << 16, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) std::abort();
    return static_cast<std::byte*>(m);
  }();
  return p;
}

int64_t any_size(FuzzedDataProvider& in) {
  static constexpr int64_t kEdges[] = {0, -1, INT64_MIN, INT64_MAX, int64_t{1} << 31, int64_t{1} << 32,
                                       3037000500, int64_t{1} << 62, 65536, 7};
  switch (in.ConsumeIntegralInRange<int>(0, 7)) {
    case 0: return in.PickValueInArray(kEdges);
    case 1: return in.ConsumeIntegral<int64_t>();
    default: return in.ConsumeIntegralInRange<int64_t>(1, 6);
  }
}

struct Tensor {
  std::array<int64_t, 8> shape{}, strides{};
  DLTensor dl{};
};

void make_tensor(FuzzedDataProvider& in, Tensor& t, const Tensor* like) {
  // Mostly a plausible tensor (often another's shape), then one or more
  // fields broken.
  t.dl.ndim = in.ConsumeIntegralInRange<int>(0, 15) == 0 ? in.ConsumeIntegralInRange<int>(-2, 8) : 5;
  for (int d = 0; d < 8; ++d) t.shape[d] = like && in.ConsumeBool() ? like->shape[d] : any_size(in);
  for (int d = 0; d < 8; ++d)
    t.strides[d] = in.ConsumeBool() ? in.ConsumeIntegralInRange<int64_t>(0, 64) : any_size(in);
  t.dl.shape = in.ConsumeIntegralInRange<int>(0, 31) == 0 ? nullptr : t.shape.data();
  t.dl.strides = in.ConsumeBool() ? nullptr : t.strides.data();
  t.dl.data = in.ConsumeIntegralInRange<int>(0, 31) == 0 ? nullptr : forbidden() + in.ConsumeIntegralInRange<int>(0, 64);
  t.dl.byte_offset = in.ConsumeBool() ? 0 : static_cast<uint64_t>(any_size(in));
  static constexpr DLDataType kTypes[] = {{kDLFloat, 32, 1}, {kDLFloat, 64, 1}, {kDLFloat, 16, 1},
                                          {kDLBfloat, 16, 1}, {kDLFloat, 32, 4}, {kDLInt, 32, 1},
                                          {kDLFloat, 8, 1},  {kDLBfloat, 32, 1}};
  t.dl.dtype = in.ConsumeIntegralInRange<int>(0, 3) == 0 ? in.PickValueInArray(kTypes) : kTypes[0];
  t.dl.device = {kDLCPU, 0};
  if (in.ConsumeIntegralInRange<int>(0, 15) == 0) {
    // Any int, as a C caller (or a newer DLPack) may put there.
    const int device = in.ConsumeIntegralInRange<int>(-1, 20);
    std::memcpy(&t.dl.device.device_type, &device, sizeof device);
    t.dl.device.device_id = in.ConsumeIntegralInRange<int>(0, 2);
  }
}

// What the ABI says of one tensor, restated in 128-bit arithmetic.
bool tensor_ok(const DLTensor* t, bool is_out, std::array<int64_t, 5>& strides) {
  if (!t || t->ndim != 5 || !t->shape || !t->data || dtype_size(t->dtype) == 0) return false;
  int device;
  std::memcpy(&device, &t->device.device_type, sizeof device);
  if (device < 1 || device > 13 || device == 5 || device == 6) return false;
  __int128 numel = 1;
  for (int d = 0; d < 5; ++d) {
    if (t->shape[d] < 1) return false;
    numel *= t->shape[d];
    if (numel > std::numeric_limits<int64_t>::max()) return false;
  }
  __int128 s = 1, span = 0;
  for (int d = 4; d >= 0; --d) {
    strides[d] = t->strides ? t->strides[d] : static_cast<int64_t>(s);
    s *= t->shape[d];
    if (strides[d] < 0 || (is_out && strides[d] == 0)) return false;
    span += static_cast<__int128>(t->shape[d] - 1) * strides[d];  // each term < 2^126
    if (span > std::numeric_limits<int64_t>::max()) return false;     // so the sum never wraps
  }
  const __int128 bytes = span * dtype_size(t->dtype) + static_cast<__int128>(t->byte_offset);
  return bytes <= std::numeric_limits<int64_t>::max();
}

bool call_ok(const attncheck_attention& c) {
  const DLTensor* t[4] = {c.q, c.k, c.v, c.out};
  std::array<int64_t, 5> st;
  for (int i = 0; i < 4; ++i)
    if (!tensor_ok(t[i], i == 3, st)) return false;
  int axes;
  std::memcpy(&axes, &c.axes, sizeof axes);
  if (axes < 0 || axes > 2 || !std::isfinite(c.scale) || c.heads < 1) return false;
  for (int i = 1; i < 4; ++i) {
    const auto &a = t[i]->dtype, &b = t[0]->dtype;
    if (a.code != b.code || a.bits != b.bits || a.lanes != b.lanes) return false;
    if (std::memcmp(&t[i]->device, &t[0]->device, sizeof(DLDevice)) != 0) return false;
  }
  const int64_t *q = c.q->shape, *k = c.k->shape, *v = c.v->shape, *o = c.out->shape;
  if (k[0] != q[0] || v[0] != q[0] || o[0] != q[0] || k[1] != q[1] || o[1] != v[1]) return false;
  for (int d = 2; d < 5; ++d)
    if (v[d] != k[d] || o[d] != q[d]) return false;
  if (axes == 0 && k[2] != q[2]) return false;
  if (axes == 1 && (k[3] != q[3] || k[4] != q[4])) return false;
  if (q[1] % c.heads || v[1] % c.heads) return false;
  const __int128 groups = axes == 0 ? __int128{q[0]} * q[2] : axes == 1 ? __int128{q[0]} * q[3] * q[4] : q[0];
  const __int128 sq = axes == 0 ? __int128{q[3]} * q[4] : axes == 1 ? q[2] : __int128{q[2]} * q[3] * q[4];
  const __int128 sk = axes == 0 ? __int128{k[3]} * k[4] : axes == 1 ? k[2] : __int128{k[2]} * k[3] * k[4];
  // groups * heads * Sq * Sk in int64, as validate_call promises; the
  // product of four int64s fits in 256 bits, so check it by steps.
  const __int128 max = std::numeric_limits<int64_t>::max();
  if (groups > max || sq > max || sk > max) return false;
  const __int128 gh = groups * c.heads, qk = sq * sk;  // each < 2^126
  if (gh > max || qk > max) return false;
  return gh * qk <= max;
}

// A small valid call in real memory with extreme values: any finite scale,
// q and k anywhere in float's range (logits overflow float, or double), v
// within +-1e30. Each implementation either declines or returns an out
// whose every element lies within [min v, max v] (softmax weights are a
// convex combination); FAILED on a valid call, NaN or an element outside
// the range is a finding, and so is undefined behaviour on the way (UBSan:
// a scale that does not fit in float, cast).
void extreme_values(FuzzedDataProvider& in) {
  const int axes = in.ConsumeIntegralInRange<int>(0, 2);
  const int64_t heads = in.ConsumeIntegralInRange<int64_t>(1, 2);
  const int64_t B = in.ConsumeIntegralInRange<int64_t>(1, 2), C = heads * in.ConsumeIntegralInRange<int64_t>(1, 2);
  const int64_t Cv = heads * in.ConsumeIntegralInRange<int64_t>(1, 2);
  int64_t q[5] = {B, C, 1, 1, 1}, k[5] = {B, C, 1, 1, 1};
  for (int d = 2; d < 5; ++d) q[d] = in.ConsumeIntegralInRange<int64_t>(1, 3), k[d] = in.ConsumeIntegralInRange<int64_t>(1, 3);
  if (axes == 0) k[2] = q[2];
  if (axes == 1) k[3] = q[3], k[4] = q[4];
  int64_t v[5] = {B, Cv, k[2], k[3], k[4]}, o[5] = {B, Cv, q[2], q[3], q[4]};
  const bool f64 = in.ConsumeBool();
  auto numel = [](const int64_t* s) { return s[0] * s[1] * s[2] * s[3] * s[4]; };
  std::vector<double> qd(numel(q)), kd(numel(k)), vd(numel(v));
  auto any_finite = [&](double lim) {
    static constexpr double kEdges[] = {0.0, 1.0, -1.0, 3.4e38, -3.4e38, 1e30, -1e30, 1e19, -1e19, 88.0, -104.0};
    const double x = in.ConsumeBool() ? in.PickValueInArray(kEdges) : in.ConsumeFloatingPoint<float>();
    return std::isfinite(x) ? std::max(-lim, std::min(lim, x)) : 0.0;
  };
  for (auto& x : qd) x = any_finite(3.4e38);
  for (auto& x : kd) x = any_finite(3.4e38);
  for (auto& x : vd) x = any_finite(1e30);
  static constexpr double kScales[] = {1.0, 1e300, -1e300, 3.5e38, -3.5e38, 1e-300, 0.0, 1e38};
  double scale = in.ConsumeBool() ? in.PickValueInArray(kScales) : in.ConsumeFloatingPoint<double>();
  if (!std::isfinite(scale)) scale = 1e308;
  const DLDataType dt = f64 ? DLDataType{kDLFloat, 64, 1} : DLDataType{kDLFloat, 32, 1};
  auto pack = [&](const std::vector<double>& x) {
    std::vector<std::byte> b(x.size() * (f64 ? 8 : 4));
    for (size_t i = 0; i < x.size(); ++i) {
      if (f64) std::memcpy(&b[i * 8], &x[i], 8);
      else {
        const float f = static_cast<float>(x[i]);  // |x| <= 3.4e38: in range
        std::memcpy(&b[i * 4], &f, 4);
      }
    }
    return b;
  };
  auto qb = pack(qd), kb = pack(kd), vb = pack(vd);
  std::vector<std::byte> ob(numel(o) * (f64 ? 8 : 4));
  auto dl = [&](std::vector<std::byte>& b, int64_t* shape) {
    DLTensor t{};
    t.data = b.data();
    t.device = {kDLCPU, 0};
    t.ndim = 5;
    t.dtype = dt;
    t.shape = shape;
    return t;
  };
  DLTensor tq = dl(qb, q), tk = dl(kb, k), tv = dl(vb, v), to = dl(ob, o);
  attncheck_attention call{static_cast<attncheck_axes>(axes), &tq, &tk, &tv, &to, heads, scale};
  std::string error;
  if (!validate_call(&call, nullptr, &error)) fail("validate_call rejected a valid call: " + error);
  const double lo = *std::min_element(vd.begin(), vd.end()), hi = *std::max_element(vd.begin(), vd.end());
  const double slack = 1e-3 * std::max(std::fabs(lo), std::fabs(hi)) + 1e-30;
  using Fn = attncheck_status (*)(const attncheck_attention*, char*, size_t);
  const std::pair<const char*, Fn> impls[] = {{"cpu", &cpu::attention}, {"reference_f32", &reference_f32::attention}};
  for (const auto& [name, f] : impls) {
    char message[256] = "";
    const attncheck_status st = f(&call, message, sizeof message);
    if (st == ATTNCHECK_UNSUPPORTED) continue;
    if (st != ATTNCHECK_OK) fail(std::string(name) + " failed a valid call (scale " + std::to_string(scale) + "): " + message);
    for (int64_t i = 0; i < numel(o); ++i) {
      double x;
      if (f64) std::memcpy(&x, &ob[i * 8], 8);
      else {
        float f;
        std::memcpy(&f, &ob[i * 4], 4);
        x = f;
      }
      if (!(x >= lo - slack && x <= hi + slack)) {
        // The whole call, so the finding can be reproduced by hand.
        auto list = [](const char* what, const std::vector<double>& v) {
          std::fprintf(stderr, "  %s:", what);
          for (double x : v) std::fprintf(stderr, " %.9g", x);
          std::fprintf(stderr, "\n");
        };
        std::fprintf(stderr, "  axes %d heads %lld %s q (%lld,%lld,%lld,%lld,%lld) k (%lld,%lld,%lld,%lld,%lld) Cv %lld\n",
                     axes, static_cast<long long>(heads), f64 ? "f64" : "f32", static_cast<long long>(q[0]),
                     static_cast<long long>(q[1]), static_cast<long long>(q[2]), static_cast<long long>(q[3]),
                     static_cast<long long>(q[4]), static_cast<long long>(k[0]), static_cast<long long>(k[1]),
                     static_cast<long long>(k[2]), static_cast<long long>(k[3]), static_cast<long long>(k[4]),
                     static_cast<long long>(Cv));
        list("q", qd), list("k", kd), list("v", vd);
        fail(std::string(name) + " returned OK with out element " + std::to_string(x) + " outside [" +
             std::to_string(lo) + ", " + std::to_string(hi) + "] (scale " + std::to_string(scale) + ")");
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  cpu::set_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  if (in.ConsumeIntegralInRange<int>(0, 3) == 0) {
    extreme_values(in);
    return 0;
  }
  Tensor t[4];
  for (int i = 0; i < 4; ++i) make_tensor(in, t[i], i ? &t[in.ConsumeIntegralInRange<int>(0, i - 1)] : nullptr);
  attncheck_attention call{};
  const int axes = in.ConsumeIntegralInRange<int>(0, 15) == 0 ? in.ConsumeIntegral<int>()
                                                              : in.ConsumeIntegralInRange<int>(0, 2);
  std::memcpy(&call.axes, &axes, sizeof axes);  // any int, as a C caller may pass
  const DLTensor* null = nullptr;
  call.q = in.ConsumeIntegralInRange<int>(0, 31) ? &t[0].dl : null;
  call.k = in.ConsumeIntegralInRange<int>(0, 31) ? &t[1].dl : null;
  call.v = in.ConsumeIntegralInRange<int>(0, 31) ? &t[2].dl : null;
  call.out = in.ConsumeIntegralInRange<int>(0, 31) ? &t[3].dl : nullptr;
  call.heads = in.ConsumeBool() ? in.ConsumeIntegralInRange<int64_t>(1, 4) : any_size(in);
  static constexpr double kScales[] = {1.0, 0.125, -1.0, 0.0, 1e300, -1e300, 3.5e38, 1e-320,
                                       std::numeric_limits<double>::infinity(),
                                       std::numeric_limits<double>::quiet_NaN()};
  call.scale = in.ConsumeBool() ? in.PickValueInArray(kScales) : in.ConsumeFloatingPoint<double>();
  const bool null_call = in.ConsumeIntegralInRange<int>(0, 63) == 0;
  const attncheck_attention* c = null_call ? nullptr : &call;

  CallShape shape;
  std::string error;
  const bool accepted = validate_call(c, &shape, &error);
  const bool valid = c && call_ok(call);
  if (accepted != valid)
    fail(std::string("validate_call ") + (accepted ? "accepted an invalid call" : "rejected a valid call: " + error));
  if (accepted) {
    // Planning reads no element; it must not overflow either.
    (void)cpu::workspace_bytes(c);
    return 0;
  }
  if (error.empty() || error.find('\n') != std::string::npos) fail("rejection message is not one line: '" + error + "'");
  // The implementations reject it too, with the message, touching nothing.
  char message[256];
  const size_t message_size = in.ConsumeBool() ? sizeof message : in.ConsumeIntegralInRange<size_t>(0, 8);
  using Fn = attncheck_status (*)(const attncheck_attention*, char*, size_t);
  const Fn impls[] = {&cpu::attention, &reference_f32::attention};
  for (Fn f : impls) {
    std::memset(message, 'x', sizeof message);
    const attncheck_status s = f(c, message_size ? message : nullptr, message_size);
    if (s != ATTNCHECK_FAILED) fail("an implementation did not fail a call validate_call rejects: " + error);
    if (message_size > 0 && strnlen(message, message_size) == message_size)
      fail("message not NUL-terminated in its buffer");
    if (message_size > 8 && message[0] == '\0') fail("an implementation failed a call without a message");
    for (size_t i = message_size; i < sizeof message; ++i)
      if (message[i] != 'x') fail("an implementation wrote past its message buffer");
  }
  return 0;
}
