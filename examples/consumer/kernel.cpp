// The team's kernel: float32 attention with plain loops over the ABI's
// tensors. Built with -DBROKEN_KERNEL it computes element addresses from the
// shape (as if every tensor were packed), the bug of flash-attention #2665.
#include "kernel.h"

#include <attncheck/call_index.h>

#include <cmath>
#include <cstring>
#include <vector>

namespace {

float load(const DLTensor* t, int64_t e) {
  float x;
  std::memcpy(&x, static_cast<const char*>(t->data) + t->byte_offset + 4 * e, 4);
  return x;
}

}  // namespace

attncheck_status my_attention(const attncheck_attention* call, char* message, size_t size) {
  attncheck::CallShape s;
  std::string error;
  if (!attncheck::validate_call(call, &s, &error)) {
    attncheck::write_message(message, size, error);
    return ATTNCHECK_FAILED;
  }
  if (s.dtype.code != kDLFloat || s.dtype.bits != 32) {
    attncheck::write_message(message, size, "my_attention: float32 only");
    return ATTNCHECK_UNSUPPORTED;
  }
#ifdef BROKEN_KERNEL
  for (int t = 0; t < 4; ++t) {  // "the strides are the packed ones"
    int64_t stride = 1;
    const DLTensor* x = t == 0 ? call->q : t == 1 ? call->k : t == 2 ? call->v : call->out;
    for (int d = 4; d >= 0; --d) s.strides[t][d] = stride, stride *= x->shape[d];
  }
#endif
  const attncheck::OperandIndex q{&s, attncheck::kQ}, k{&s, attncheck::kK}, v{&s, attncheck::kV},
      o{&s, attncheck::kOut};
  std::vector<float> p(s.Sk);
  for (int64_t n = 0; n < s.groups; ++n)
    for (int64_t h = 0; h < s.heads; ++h)
      for (int64_t i = 0; i < s.Sq; ++i) {
        float m = -INFINITY;
        for (int64_t r = 0; r < s.Sk; ++r) {
          float dot = 0;
          for (int64_t d = 0; d < s.D; ++d)
            dot += load(call->q, q.group(n) + q.channel(h * s.D + d) + q.position(i)) *
                   load(call->k, k.group(n) + k.channel(h * s.D + d) + k.position(r));
          p[r] = static_cast<float>(call->scale) * dot;
          m = std::fmax(m, p[r]);
        }
        float sum = 0;
        for (auto& x : p) sum += x = std::exp(x - m);
        for (int64_t e = 0; e < s.Dv; ++e) {
          float acc = 0;
          for (int64_t r = 0; r < s.Sk; ++r)
            acc += p[r] * load(call->v, v.group(n) + v.channel(h * s.Dv + e) + v.position(r));
          const float out = acc / sum;
          std::memcpy(static_cast<char*>(call->out->data) + call->out->byte_offset +
                          4 * (o.group(n) + o.channel(h * s.Dv + e) + o.position(i)),
                      &out, 4);
        }
      }
  return ATTNCHECK_OK;
}
