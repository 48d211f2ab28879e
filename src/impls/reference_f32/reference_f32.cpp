#include "reference_f32.h"

#include <attncheck/call_index.h>
#include <attncheck/half.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace attncheck::reference_f32 {

namespace {

float load(const DLTensor* t, int64_t elem) {
  const char* p = static_cast<const char*>(t->data) + t->byte_offset;
  switch (t->dtype.bits) {
    case 32: { float x; std::memcpy(&x, p + 4 * elem, 4); return x; }
    default: {
      uint16_t b;
      std::memcpy(&b, p + 2 * elem, 2);
      return t->dtype.code == kDLBfloat ? bf16_to_float(b) : half_to_float(b);
    }
  }
}

void store(DLTensor* t, int64_t elem, float x) {
  char* p = static_cast<char*>(t->data) + t->byte_offset;
  switch (t->dtype.bits) {
    case 32: std::memcpy(p + 4 * elem, &x, 4); return;
    default: {
      uint16_t b = t->dtype.code == kDLBfloat ? float_to_bf16(x) : float_to_half(x);
      std::memcpy(p + 2 * elem, &b, 2);
    }
  }
}

}  // namespace

attncheck_status attention(const attncheck_attention* call, char* message, size_t message_size) {
  CallShape s;
  std::string error;
  if (!validate_call(call, &s, &error)) {
    write_message(message, message_size, error);
    return ATTNCHECK_FAILED;
  }
  if (call->q->device.device_type != kDLCPU) {
    write_message(message, message_size, "reference_f32 runs on the CPU only");
    return ATTNCHECK_UNSUPPORTED;
  }
  if (s.dtype.code == kDLFloat && s.dtype.bits == 64) {
    write_message(message, message_size, "reference_f32 computes in float32: f64 declined");
    return ATTNCHECK_UNSUPPORTED;
  }
  // The spec allows any finite scale; in float32 a scale above FLT_MAX, or
  // a logit scale * q.k beyond it, is inf and the max subtraction then
  // gives NaN. reference_f32 is the plain float32 baseline, not a
  // wide-range kernel: it declines those calls (found by the abi fuzz
  // target; an implementation may decline any call it does not serve).
  if (!(std::fabs(call->scale) <= std::numeric_limits<float>::max())) {
    write_message(message, message_size, "reference_f32 computes in float32: |scale| above float's range declined");
    return ATTNCHECK_UNSUPPORTED;
  }
  const float scale = static_cast<float>(call->scale);
  const OperandIndex qi{&s, kQ}, ki{&s, kK}, vi{&s, kV}, oi{&s, kOut};
  std::vector<float> p(s.Sk);
  for (int64_t n = 0; n < s.groups; ++n)
    for (int64_t g = 0; g < s.heads; ++g)
      for (int64_t i = 0; i < s.Sq; ++i) {
        float m = -std::numeric_limits<float>::infinity();
        for (int64_t r = 0; r < s.Sk; ++r) {
          float dot = 0;
          for (int64_t d = 0; d < s.D; ++d) {
            const int64_t c = g * s.D + d;
            dot += load(call->q, qi.group(n) + qi.channel(c) + qi.position(i)) *
                   load(call->k, ki.group(n) + ki.channel(c) + ki.position(r));
          }
          p[r] = scale * dot;
          if (!std::isfinite(p[r])) {
            write_message(message, message_size,
                          "reference_f32 computes in float32: a logit scale * q.k is not finite in float32, declined");
            return ATTNCHECK_UNSUPPORTED;
          }
          m = std::fmax(m, p[r]);
        }
        float sum = 0;
        for (int64_t r = 0; r < s.Sk; ++r) {
          p[r] = std::exp(p[r] - m);
          sum += p[r];
        }
        for (int64_t e = 0; e < s.Dv; ++e) {
          const int64_t c = g * s.Dv + e;
          float acc = 0;
          for (int64_t r = 0; r < s.Sk; ++r)
            acc += p[r] * load(call->v, vi.group(n) + vi.channel(c) + vi.position(r));
          store(call->out, oi.group(n) + oi.channel(c) + oi.position(i), acc / sum);
        }
      }
  return ATTNCHECK_OK;
}

}  // namespace attncheck::reference_f32
