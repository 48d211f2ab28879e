// Correct float32 attention kernels that sum in other orders than
// reference_f32 (online softmax over key tiles, reversed sums, double
// accumulation): the error model must not call them wrong, and the
// diagnosis tests build deliberate misreadings on them.
#pragma once

#include <attncheck/call_index.h>
#include <attncheck/plugin.h>
#include <attncheck/validate.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace attncheck {

// Correct float32 kernels that sum in other orders than reference_f32.
enum class Order { online_tiles, reversed, double_accumulation };

template <Order order>
attncheck_status variant(const attncheck_attention* call, char* msg, size_t n) {
  CallShape s;
  std::string err;
  if (!validate_call(call, &s, &err)) {
    write_message(msg, n, err);
    return ATTNCHECK_FAILED;
  }
  if (s.dtype.bits != 32) return ATTNCHECK_UNSUPPORTED;
  const OperandIndex qi{&s, kQ}, ki{&s, kK}, vi{&s, kV}, oi{&s, kOut};
  auto at = [](const DLTensor* t, int64_t e) {
    float x;
    std::memcpy(&x, static_cast<const char*>(t->data) + t->byte_offset + 4 * e, 4);
    return x;
  };
  const float scale = static_cast<float>(call->scale);
  std::vector<float> logit(s.Sk), acc(s.Dv);
  std::vector<double> dacc(s.Dv);
  for (int64_t g = 0; g < s.groups; ++g)
    for (int64_t h = 0; h < s.heads; ++h)
      for (int64_t p = 0; p < s.Sq; ++p) {
        for (int64_t r = 0; r < s.Sk; ++r) {
          float dot = 0;
          double ddot = 0;
          for (int64_t dd = 0; dd < s.D; ++dd) {
            const int64_t d = order == Order::reversed ? s.D - 1 - dd : dd;
            const float a = at(call->q, qi.group(g) + qi.channel(h * s.D + d) + qi.position(p));
            const float b = at(call->k, ki.group(g) + ki.channel(h * s.D + d) + ki.position(r));
            dot += a * b;
            ddot += static_cast<double>(a) * b;
          }
          logit[r] = order == Order::double_accumulation ? static_cast<float>(scale * ddot) : scale * dot;
        }
        auto v = [&](int64_t e, int64_t r) {
          return at(call->v, vi.group(g) + vi.channel(h * s.Dv + e) + vi.position(r));
        };
        float out_scale = 0;
        if (order == Order::online_tiles) {
          // Flash-attention: key tiles of 16, running max and sum, rescaling.
          float m = -INFINITY, l = 0;
          std::fill(acc.begin(), acc.end(), 0.0f);
          for (int64_t t0 = 0; t0 < s.Sk; t0 += 16) {
            const int64_t t1 = std::min(s.Sk, t0 + 16);
            float mt = m;
            for (int64_t r = t0; r < t1; ++r) mt = std::fmax(mt, logit[r]);
            const float rescale = std::exp(m - mt);
            l *= rescale;
            for (auto& a : acc) a *= rescale;
            for (int64_t r = t0; r < t1; ++r) {
              const float pr = std::exp(logit[r] - mt);
              l += pr;
              for (int64_t e = 0; e < s.Dv; ++e) acc[e] += pr * v(e, r);
            }
            m = mt;
          }
          out_scale = 1 / l;
        } else {
          float m = -INFINITY;
          for (float x : logit) m = std::fmax(m, x);
          float l = 0;
          double dl = 0;
          std::fill(acc.begin(), acc.end(), 0.0f);
          std::fill(dacc.begin(), dacc.end(), 0.0);
          for (int64_t rr = 0; rr < s.Sk; ++rr) {
            const int64_t r = order == Order::reversed ? s.Sk - 1 - rr : rr;
            const float pr = std::exp(logit[r] - m);
            l += pr;
            dl += pr;
            for (int64_t e = 0; e < s.Dv; ++e) {
              acc[e] += pr * v(e, r);
              dacc[e] += static_cast<double>(pr) * v(e, r);
            }
          }
          if (order == Order::double_accumulation) {
            for (int64_t e = 0; e < s.Dv; ++e) acc[e] = static_cast<float>(dacc[e] / dl);
            out_scale = 1;
          } else {
            out_scale = 1 / l;
          }
        }
        for (int64_t e = 0; e < s.Dv; ++e) {
          const float o = order == Order::double_accumulation ? acc[e] : acc[e] * out_scale;
          std::memcpy(static_cast<char*>(call->out->data) + call->out->byte_offset +
                          4 * (oi.group(g) + oi.channel(h * s.Dv + e) + oi.position(p)),
                      &o, 4);
        }
      }
  return ATTNCHECK_OK;
}

}  // namespace attncheck
