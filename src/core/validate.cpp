#include <attncheck/validate.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

namespace attncheck {

int64_t dtype_size(DLDataType t) {
  if (t.lanes != 1) return 0;
  if (t.code == kDLFloat && t.bits == 32) return 4;
  if (t.code == kDLFloat && t.bits == 64) return 8;
  if (t.code == kDLFloat && t.bits == 16) return 2;
  if (t.code == kDLBfloat && t.bits == 16) return 2;
  return 0;
}

const char* dtype_name(DLDataType t) {
  if (t.lanes != 1) return "?";
  if (t.code == kDLFloat && t.bits == 32) return "f32";
  if (t.code == kDLFloat && t.bits == 64) return "f64";
  if (t.code == kDLFloat && t.bits == 16) return "f16";
  if (t.code == kDLBfloat && t.bits == 16) return "bf16";
  return "?";
}

void write_message(char* buffer, size_t size, const std::string& text) {
  if (buffer == nullptr || size == 0) return;
  size_t n = text.size() < size - 1 ? text.size() : size - 1;
  std::memcpy(buffer, text.data(), n);
  buffer[n] = '\0';
}

namespace {

constexpr const char* kNames[4] = {"q", "k", "v", "out"};
constexpr const char* kDims[5] = {"B", "C", "T", "H", "W"};

bool fail(std::string* error, const std::string& text) {
  if (error) *error = text;
  return false;
}

// Checks one tensor on its own; fills its effective strides. `output`:
// written by the call, so no zero stride.
bool check_named_tensor(const DLTensor* t, const std::string& name, bool output,
                        std::array<int64_t, 5>& strides, std::string* error) {
  if (t == nullptr) return fail(error, name + ": tensor pointer is null");
  if (t->ndim != 5)
    return fail(error, name + ": ndim is " + std::to_string(t->ndim) +
                           ", expected 5 (B, C, T, H, W)");
  // A device type from a newer DLPack (kDLHexagon = 16, ...) is outside
  // this header's enum: read its representation (loading it as the enum is
  // undefined), and accept only the types DLPack 0.6 defines.
  std::underlying_type_t<DLDeviceType> device;
  std::memcpy(&device, &t->device.device_type, sizeof device);
  if (device < kDLCPU || device > kDLCUDAManaged || device == 5 || device == 6)
    return fail(error, name + ": device type " + std::to_string(device) + " is not one DLPack 0.6 defines");
  if (t->shape == nullptr) return fail(error, name + ": shape is null");
  if (t->data == nullptr) return fail(error, name + ": data is null");
  if (dtype_size(t->dtype) == 0)
    return fail(error, name + ": unsupported dtype (code " +
                           std::to_string(t->dtype.code) + ", bits " +
                           std::to_string(t->dtype.bits) + ", lanes " +
                           std::to_string(t->dtype.lanes) + ")");
  for (int d = 0; d < 5; ++d)
    if (t->shape[d] < 1)
      return fail(error, name + ": shape[" + std::to_string(d) + "] (" + kDims[d] +
                             ") is " + std::to_string(t->shape[d]) + ", must be >= 1");
  // The element count fits in int64 whatever the strides (a broadcast view
  // may be small in memory and huge in elements); compact strides when
  // strides is NULL; checked arithmetic throughout.
  int64_t numel = 1;
  for (int d = 4; d >= 0; --d) {
    if (t->strides == nullptr) strides[d] = numel;
    if (__builtin_mul_overflow(numel, t->shape[d], &numel))
      return fail(error, name + ": element count overflows int64");
  }
  if (t->strides != nullptr) {
    for (int d = 0; d < 5; ++d) {
      strides[d] = t->strides[d];
      if (strides[d] < 0)
        return fail(error, name + ": strides[" + std::to_string(d) + "] (" + kDims[d] +
                               ") is " + std::to_string(strides[d]) + ", must be >= 0");
      if (output && strides[d] == 0)
        return fail(error, name + ": strides[" + std::to_string(d) + "] (" + kDims[d] +
                               ") is 0; " + name + " may not be a broadcast view");
    }
  }
  // The last element's byte offset must fit in int64 (and so in a pointer
  // difference): byte_offset + size * sum (n_j - 1) * stride_j.
  int64_t span = 0;
  for (int d = 0; d < 5; ++d) {
    int64_t term;
    if (__builtin_mul_overflow(t->shape[d] - 1, strides[d], &term) ||
        __builtin_add_overflow(span, term, &span))
      return fail(error, name + ": strides times shape overflow int64");
  }
  int64_t bytes;
  if (__builtin_mul_overflow(span, dtype_size(t->dtype), &bytes) ||
      t->byte_offset > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
      __builtin_add_overflow(bytes, static_cast<int64_t>(t->byte_offset), &bytes))
    return fail(error, name + ": byte extent (byte_offset + strides times shape) overflows int64");
  return true;
}

bool check_tensor(const DLTensor* t, int which, std::array<int64_t, 5>& strides,
                  std::string* error) {
  return check_named_tensor(t, kNames[which], which == 3, strides, error);
}

bool same_dtype(DLDataType a, DLDataType b) {
  return a.code == b.code && a.bits == b.bits && a.lanes == b.lanes;
}

std::string dim_mismatch(int which, int dim, int64_t got, int64_t want,
                         const char* why) {
  return std::string(kNames[which]) + ": shape[" + std::to_string(dim) + "] (" +
         kDims[dim] + ") is " + std::to_string(got) + ", expected " +
         std::to_string(want) + " (" + why + ")";
}

}  // namespace

bool validate_call(const attncheck_attention* call, CallShape* out_shape,
                   std::string* error) {
  if (call == nullptr) return fail(error, "call: pointer is null");
  const DLTensor* t[4] = {call->q, call->k, call->v, call->out};
  CallShape s;
  for (int i = 0; i < 4; ++i)
    if (!check_tensor(t[i], i, s.strides[i], error)) return false;
  // A caller in C may put any int in the enum: read its representation, not
  // the enum (loading an out-of-range enum value is undefined in C++).
  std::underlying_type_t<attncheck_axes> axes;
  std::memcpy(&axes, &call->axes, sizeof axes);
  if (axes != ATTNCHECK_SPATIAL && axes != ATTNCHECK_TEMPORAL && axes != ATTNCHECK_SPATIOTEMPORAL)
    return fail(error, "call: axes is " + std::to_string(axes) +
                           ", expected 0 (spatial), 1 (temporal) or 2 (spatiotemporal)");
  for (int i = 1; i < 4; ++i)
    if (!same_dtype(t[i]->dtype, t[0]->dtype))
      return fail(error, std::string(kNames[i]) + ": dtype " + dtype_name(t[i]->dtype) +
                             " differs from q's " + dtype_name(t[0]->dtype));
  for (int i = 1; i < 4; ++i)
    if (t[i]->device.device_type != t[0]->device.device_type ||
        t[i]->device.device_id != t[0]->device.device_id)
      return fail(error, std::string(kNames[i]) + ": device differs from q's");
  if (!std::isfinite(call->scale)) return fail(error, "call: scale is not finite");
  const int64_t* q = t[0]->shape;
  const int64_t* k = t[1]->shape;
  const int64_t* v = t[2]->shape;
  const int64_t* o = t[3]->shape;
  s.axes = call->axes;
  s.B = q[0];
  s.C = q[1];
  s.Cv = v[1];
  s.Tq = q[2], s.Hq = q[3], s.Wq = q[4];
  s.Tk = k[2], s.Hk = k[3], s.Wk = k[4];
  s.dtype = t[0]->dtype;
  // Batch and channels agree for every axes family.
  if (k[0] != s.B) return fail(error, dim_mismatch(1, 0, k[0], s.B, "q's B"));
  if (v[0] != s.B) return fail(error, dim_mismatch(2, 0, v[0], s.B, "q's B"));
  if (o[0] != s.B) return fail(error, dim_mismatch(3, 0, o[0], s.B, "q's B"));
  if (k[1] != s.C) return fail(error, dim_mismatch(1, 1, k[1], s.C, "q's C"));
  if (o[1] != s.Cv) return fail(error, dim_mismatch(3, 1, o[1], s.Cv, "v's C"));
  // v has k's positions; out has q's.
  for (int d = 2; d < 5; ++d) {
    if (v[d] != k[d]) return fail(error, dim_mismatch(2, d, v[d], k[d], "k's"));
    if (o[d] != q[d]) return fail(error, dim_mismatch(3, d, o[d], q[d], "q's"));
  }
  // Axes that are not attended over are shared by q and k.
  const char* why = call->axes == ATTNCHECK_SPATIAL    ? "spatial attention shares T"
                    : call->axes == ATTNCHECK_TEMPORAL ? "temporal attention shares H and W"
                                                       : "";
  if (call->axes == ATTNCHECK_SPATIAL && k[2] != q[2])
    return fail(error, dim_mismatch(1, 2, k[2], q[2], why));
  if (call->axes == ATTNCHECK_TEMPORAL) {
    if (k[3] != q[3]) return fail(error, dim_mismatch(1, 3, k[3], q[3], why));
    if (k[4] != q[4]) return fail(error, dim_mismatch(1, 4, k[4], q[4], why));
  }
  if (call->heads < 1)
    return fail(error, "call: heads is " + std::to_string(call->heads) + ", must be >= 1");
  if (s.C % call->heads != 0)
    return fail(error, "call: heads (" + std::to_string(call->heads) +
                           ") does not divide q's C (" + std::to_string(s.C) + ")");
  if (s.Cv % call->heads != 0)
    return fail(error, "call: heads (" + std::to_string(call->heads) +
                           ") does not divide v's C (" + std::to_string(s.Cv) + ")");
  s.heads = call->heads;
  s.D = s.C / s.heads;
  s.Dv = s.Cv / s.heads;
  // Products below cannot overflow: each factor is an extent of a tensor whose
  // element count was checked above... except across tensors, so check.
  bool ovf = false;
  auto mul = [&](int64_t a, int64_t b) {
    int64_t r;
    ovf |= __builtin_mul_overflow(a, b, &r);
    return r;
  };
  // geometry.h's counts, with every product checked for overflow: the sizes
  // here come from the caller and are not trusted yet.
  switch (call->axes) {
    case ATTNCHECK_SPATIAL:
      s.groups = mul(s.B, s.Tq);
      s.Sq = mul(s.Hq, s.Wq);
      s.Sk = mul(s.Hk, s.Wk);
      break;
    case ATTNCHECK_TEMPORAL:
      s.groups = mul(s.B, mul(s.Hq, s.Wq));
      s.Sq = s.Tq;
      s.Sk = s.Tk;
      break;
    case ATTNCHECK_SPATIOTEMPORAL:
      s.groups = s.B;
      s.Sq = mul(s.Tq, mul(s.Hq, s.Wq));
      s.Sk = mul(s.Tk, mul(s.Hk, s.Wk));
      break;
  }
  mul(mul(s.groups, s.heads), mul(s.Sq, s.Sk));
  if (ovf) return fail(error, "call: groups x heads x Sq x Sk overflows int64");
  if (out_shape) *out_shape = s;
  return true;
}

}  // namespace attncheck

// The backward call (issue 19). Additive: validate_call is untouched.
namespace attncheck {
namespace {

// Beyond this many distinct addresses in the shared byte range, an overlap
// is not decided (the benefit of the doubt); no legal layout of the tests or
// the benchmarks comes near it.
constexpr int64_t kMaxOverlapAddresses = int64_t{1} << 24;

struct Extent {
  uintptr_t lo = 0, hi = 0;  // bytes [lo, hi) hold every element
};

Extent extent_of(const DLTensor* t, const std::array<int64_t, 5>& st) {
  const int64_t es = dtype_size(t->dtype);
  Extent e;
  e.lo = reinterpret_cast<uintptr_t>(t->data) + static_cast<uintptr_t>(t->byte_offset);
  int64_t span = 0;
  for (int d = 0; d < 5; ++d) span += (t->shape[d] - 1) * st[d];  // checked by check_named_tensor
  e.hi = e.lo + static_cast<uintptr_t>(span * es + es);
  return e;
}

// The sorted distinct element addresses of a view that fall in [lo, hi);
// false when there are too many to list.
bool addresses_in(const DLTensor* t, const std::array<int64_t, 5>& st, uintptr_t lo, uintptr_t hi,
                  std::vector<uintptr_t>& out) {
  const int64_t es = dtype_size(t->dtype);
  int64_t size[5], stride[5], n = 0, count = 1;
  for (int d = 0; d < 5; ++d)
    if (t->shape[d] > 1 && st[d] != 0) {  // broadcast dims repeat the same addresses
      size[n] = t->shape[d], stride[n] = st[d] * es, ++n;
      if (__builtin_mul_overflow(count, t->shape[d], &count) || count > kMaxOverlapAddresses) return false;
    }
  const uintptr_t base = reinterpret_cast<uintptr_t>(t->data) + static_cast<uintptr_t>(t->byte_offset);
  int64_t idx[5] = {0, 0, 0, 0, 0};
  for (int64_t i = 0; i < count; ++i) {
    uintptr_t a = base;
    for (int d = 0; d < n; ++d) a += static_cast<uintptr_t>(idx[d] * stride[d]);
    if (a + es > lo && a < hi) out.push_back(a);
    for (int d = n - 1; d >= 0 && ++idx[d] == size[d]; --d) idx[d] = 0;
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return true;
}

// Whether two views of the same element size share a byte.
bool views_overlap(const DLTensor* a, const std::array<int64_t, 5>& sa, const DLTensor* b,
                   const std::array<int64_t, 5>& sb) {
  const Extent ea = extent_of(a, sa), eb = extent_of(b, sb);
  const uintptr_t lo = std::max(ea.lo, eb.lo), hi = std::min(ea.hi, eb.hi);
  if (lo >= hi) return false;
  std::vector<uintptr_t> xa, xb;
  if (!addresses_in(a, sa, lo, hi, xa) || !addresses_in(b, sb, lo, hi, xb)) return false;
  const uintptr_t es = static_cast<uintptr_t>(dtype_size(a->dtype));
  size_t j = 0;
  for (uintptr_t x : xa) {  // elements [x, x+es) and [y, y+es) meet when |x - y| < es
    while (j < xb.size() && xb[j] + es <= x) ++j;
    if (j < xb.size() && xb[j] < x + es) return true;
  }
  return false;
}

}  // namespace

bool validate_backward_call(const attncheck_attention_backward* call, BackwardCallShape* out_shape,
                            std::string* error) {
  if (call == nullptr) return fail(error, "call: pointer is null");
  const attncheck_attention forward{call->axes, call->q, call->k, call->v, const_cast<DLTensor*>(call->out),
                                    call->heads, call->scale};
  BackwardCallShape s;
  if (!validate_call(&forward, &s.forward, error)) return false;
  const char* names[4] = {"dout", "dq", "dk", "dv"};
  const DLTensor* grads[4] = {call->dout, call->dq, call->dk, call->dv};
  const DLTensor* like[4] = {call->out, call->q, call->k, call->v};
  const char* like_names[4] = {"out", "q", "k", "v"};
  for (int i = 0; i < 4; ++i) {
    if (!check_named_tensor(grads[i], names[i], i != kDout, s.grad_strides[i], error)) return false;
    for (int d = 0; d < 5; ++d)
      if (grads[i]->shape[d] != like[i]->shape[d])
        return fail(error, std::string(names[i]) + ": shape[" + std::to_string(d) + "] (" + kDims[d] + ") is " +
                               std::to_string(grads[i]->shape[d]) + ", expected " +
                               std::to_string(like[i]->shape[d]) + " (" + like_names[i] + "'s)");
    if (!same_dtype(grads[i]->dtype, call->q->dtype))
      return fail(error, std::string(names[i]) + ": dtype " + dtype_name(grads[i]->dtype) + " differs from q's " +
                             dtype_name(call->q->dtype));
    if (grads[i]->device.device_type != call->q->device.device_type ||
        grads[i]->device.device_id != call->q->device.device_id)
      return fail(error, std::string(names[i]) + ": device differs from q's");
  }
  // dq, dk and dv against each other and against every input.
  const DLTensor* all[8] = {call->dq, call->dk, call->dv, call->q, call->k, call->v, call->out, call->dout};
  const char* all_names[8] = {"dq", "dk", "dv", "q", "k", "v", "out", "dout"};
  const std::array<int64_t, 5>* all_strides[8] = {&s.grad_strides[kDq], &s.grad_strides[kDk],
                                                  &s.grad_strides[kDv], &s.forward.strides[0],
                                                  &s.forward.strides[1], &s.forward.strides[2],
                                                  &s.forward.strides[3], &s.grad_strides[kDout]};
  for (int i = 0; i < 3; ++i)
    for (int j = i + 1; j < 8; ++j)
      if (views_overlap(all[i], *all_strides[i], all[j], *all_strides[j]))
        return fail(error, std::string(all_names[i]) + ": shares memory with " + all_names[j] +
                               " (dq, dk and dv may overlap neither each other nor an input)");
  if (out_shape) *out_shape = s;
  return true;
}

}  // namespace attncheck
