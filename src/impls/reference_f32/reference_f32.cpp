#include "reference_f32.h"

#include <attncheck/call_index.h>
#include <attncheck/half.h>

#include <cmath>
#include <algorithm>
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

// The backward pass: the spec's five formulas as loops, one query row at a
// time, accumulating in float (like the forward: this is the same-precision
// baseline, not a more accurate one). P is recomputed per row exactly as the
// forward computes it; `out` is not read (sum_r' P dP is formed directly, as
// the spec writes it). dk and dv are summed over the queries in float
// buffers of Sk x D and Sk x Dv per (group, head), then stored once.
attncheck_status backward(const attncheck_attention_backward* call, char* message, size_t message_size) {
  BackwardCallShape bs;
  std::string error;
  if (!validate_backward_call(call, &bs, &error)) {
    write_message(message, message_size, error);
    return ATTNCHECK_FAILED;
  }
  const CallShape& s = bs.forward;
  if (call->q->device.device_type != kDLCPU) {
    write_message(message, message_size, "reference_f32 runs on the CPU only");
    return ATTNCHECK_UNSUPPORTED;
  }
  if (s.dtype.code == kDLFloat && s.dtype.bits == 64) {
    write_message(message, message_size, "reference_f32 computes in float32: f64 declined");
    return ATTNCHECK_UNSUPPORTED;
  }
  if (!(std::fabs(call->scale) <= std::numeric_limits<float>::max())) {
    write_message(message, message_size, "reference_f32 computes in float32: |scale| above float's range declined");
    return ATTNCHECK_UNSUPPORTED;
  }
  const float scale = static_cast<float>(call->scale);
  // The gradients are indexed like the tensors they belong to: a CallShape
  // whose strides are theirs (dq in q's slot, ..., dout in out's).
  CallShape gs = s;
  gs.strides = {bs.grad_strides[kDq], bs.grad_strides[kDk], bs.grad_strides[kDv], bs.grad_strides[kDout]};
  const OperandIndex qi{&s, kQ}, ki{&s, kK}, vi{&s, kV};
  const OperandIndex dqi{&gs, kQ}, dki{&gs, kK}, dvi{&gs, kV}, doi{&gs, kOut};
  auto q = [&](int64_t n, int64_t c, int64_t p) { return load(call->q, qi.group(n) + qi.channel(c) + qi.position(p)); };
  auto k = [&](int64_t n, int64_t c, int64_t r) { return load(call->k, ki.group(n) + ki.channel(c) + ki.position(r)); };
  auto v = [&](int64_t n, int64_t c, int64_t r) { return load(call->v, vi.group(n) + vi.channel(c) + vi.position(r)); };
  auto dout = [&](int64_t n, int64_t c, int64_t p) {
    return load(call->dout, doi.group(n) + doi.channel(c) + doi.position(p));
  };
  std::vector<float> P(s.Sk), dP(s.Sk), dS(s.Sk), dk(s.Sk * s.D), dv(s.Sk * s.Dv);
  for (int64_t n = 0; n < s.groups; ++n)
    for (int64_t g = 0; g < s.heads; ++g) {
      std::fill(dk.begin(), dk.end(), 0.0f);
      std::fill(dv.begin(), dv.end(), 0.0f);
      for (int64_t i = 0; i < s.Sq; ++i) {
        float m = -std::numeric_limits<float>::infinity();
        for (int64_t r = 0; r < s.Sk; ++r) {
          float dot = 0;
          for (int64_t d = 0; d < s.D; ++d) dot += q(n, g * s.D + d, i) * k(n, g * s.D + d, r);
          P[r] = scale * dot;
          if (!std::isfinite(P[r])) {
            write_message(message, message_size,
                          "reference_f32 computes in float32: a logit scale * q.k is not finite in float32, declined");
            return ATTNCHECK_UNSUPPORTED;
          }
          m = std::fmax(m, P[r]);
        }
        float sum = 0;
        for (int64_t r = 0; r < s.Sk; ++r) {
          P[r] = std::exp(P[r] - m);
          sum += P[r];
        }
        for (int64_t r = 0; r < s.Sk; ++r) P[r] /= sum;
        // dP[p, r] = sum_e dout[e, p] v[e, r]; the row term sum_r P dP.
        float row = 0;
        for (int64_t r = 0; r < s.Sk; ++r) {
          float acc = 0;
          for (int64_t e = 0; e < s.Dv; ++e) acc += dout(n, g * s.Dv + e, i) * v(n, g * s.Dv + e, r);
          dP[r] = acc;
          row += P[r] * acc;
        }
        for (int64_t r = 0; r < s.Sk; ++r) dS[r] = P[r] * (dP[r] - row);
        for (int64_t d = 0; d < s.D; ++d) {
          const int64_t c = g * s.D + d;
          float acc = 0;
          for (int64_t r = 0; r < s.Sk; ++r) acc += dS[r] * k(n, c, r);
          store(call->dq, dqi.group(n) + dqi.channel(c) + dqi.position(i), scale * acc);
        }
        for (int64_t r = 0; r < s.Sk; ++r) {
          for (int64_t e = 0; e < s.Dv; ++e) dv[r * s.Dv + e] += P[r] * dout(n, g * s.Dv + e, i);
          for (int64_t d = 0; d < s.D; ++d) dk[r * s.D + d] += dS[r] * q(n, g * s.D + d, i);
        }
      }
      for (int64_t r = 0; r < s.Sk; ++r) {
        for (int64_t d = 0; d < s.D; ++d) {
          const int64_t c = g * s.D + d;
          store(call->dk, dki.group(n) + dki.channel(c) + dki.position(r), scale * dk[r * s.D + d]);
        }
        for (int64_t e = 0; e < s.Dv; ++e) {
          const int64_t c = g * s.Dv + e;
          store(call->dv, dvi.group(n) + dvi.channel(c) + dvi.position(r), dv[r * s.Dv + e]);
        }
      }
    }
  return ATTNCHECK_OK;
}

}  // namespace attncheck::reference_f32
