// The mutants' skeleton: a plain, correct float32 kernel of the spec into
// which one realistic bug from shared/real-bugs.md can be planted
// (Bug::none plants nothing). Used by mutants.cpp and the misbehaving test
// plugins (properties/plugins/misbehaving.cpp).
#pragma once

#include <attncheck/geometry.h>
#include <attncheck/plugin.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

namespace mutant {

enum class Bug {
  none,                 // the skeleton as it is: must pass verify --strict
  legacy_reshape,       // Open-Sora-Plan #171: reshape(B*T, C, H*W) without permute
  assumes_packed,       // flash-attention #2665: strides built from the shape
  last_stride_only,     // TransformerEngine #1195: only stride(-1) honoured
  zero_stride_packed,   // flash-attention #325: an expand()ed input read as packed
  ignores_byte_offset,  // pytorch #146377: a sliced view read from its allocation
  aligned_read16,       // pytorch #183484: a 16-byte aligned read of an offset view
  size1_format_flip,    // pytorch #82060: C == 1 makes channels-last detection flip
  v_uses_k_strides,     // flash-attention PR #818: dV built like K
  out_uses_q_strides,   // flash-attention #355: another tensor's strides for out
  tail_tile_exp0,       // flashinfer PR #5090: padded keys get weight exp(0)
  no_max_subtraction,   // exp overflows for large logits
  inner_stride_one,     // pytorch PR #187506: last-dim stride > 1 ignored
  heads_interleaved,    // channel c in head c % heads
  scale_sqrt_c,         // 1/sqrt(C) instead of the given scale
  bf16_probabilities,   // probabilities rounded to bfloat16 once
  writes_past_end,      // writes one element past out's last
  reads_past_end,       // reads key Sk (one past the end) of k
};

struct Strided {
  char* base;
  int64_t stride[5];
  float* at(const int64_t i[5]) const {
    int64_t off = 0;
    for (int d = 0; d < 5; ++d) off += i[d] * stride[d];
    return reinterpret_cast<float*>(base) + off;
  }
};

inline void packed_strides(const DLTensor* t, int64_t s[5]) {
  int64_t x = 1;
  for (int d = 4; d >= 0; --d) s[d] = x, x *= t->shape[d];
}

inline Strided wrap(const DLTensor* t, const DLTensor* strides_from, Bug bug, bool is_input) {
  Strided w{static_cast<char*>(t->data) + t->byte_offset, {}};
  int64_t packed[5];
  packed_strides(t, packed);
  for (int d = 0; d < 5; ++d) w.stride[d] = strides_from->strides ? strides_from->strides[d] : packed[d];
  bool any_zero = false;
  for (int d = 0; d < 5; ++d) any_zero |= w.stride[d] == 0;
  switch (bug) {
    case Bug::assumes_packed: std::memcpy(w.stride, packed, sizeof packed); break;
    case Bug::last_stride_only:
      for (int d = 0; d < 4; ++d) w.stride[d] = packed[d] * w.stride[4];
      break;
    case Bug::zero_stride_packed:
      if (is_input && any_zero) std::memcpy(w.stride, packed, sizeof packed);
      break;
    case Bug::ignores_byte_offset: w.base = static_cast<char*>(t->data); break;
    case Bug::aligned_read16:
      if (is_input) w.base = reinterpret_cast<char*>(reinterpret_cast<uintptr_t>(w.base) & ~uintptr_t{15});
      break;
    case Bug::size1_format_flip:
      if (w.stride[1] == 1 && t->shape[1] > 0) {
        // "channels-last": strides rebuilt for (B, T, H, W, C) packed.
        const int64_t C = t->shape[1], T = t->shape[2], H = t->shape[3], W = t->shape[4];
        w.stride[1] = 1, w.stride[4] = C, w.stride[3] = W * C, w.stride[2] = H * W * C, w.stride[0] = T * H * W * C;
      }
      break;
    case Bug::inner_stride_one:
      w.stride[4] = 1;
      break;
    default: break;
  }
  return w;
}

inline void index_of(const DLTensor* t, attncheck_axes axes, int64_t n, int64_t c, int64_t p, bool legacy, int64_t o[5]) {
  const attncheck::Index5 at = legacy && axes == ATTNCHECK_SPATIAL
                                   ? attncheck::legacy_spatial_index(t->shape, n, c, p)
                                   : attncheck::geometry_of(axes, t->shape).index(n, c, p);
  for (int d = 0; d < 5; ++d) o[d] = at[d];
}

// The spec's groups, query positions and key positions of a call.
struct Sizes {
  int64_t groups, Sq, Sk;
};
inline Sizes sizes_of(const attncheck_attention* call) {
  const attncheck::Geometry q = attncheck::geometry_of(call->axes, call->q->shape),
                            k = attncheck::geometry_of(call->axes, call->k->shape);
  return {q.groups(call->q->shape[0]), q.positions(), k.positions()};
}

inline float round_bf16(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  b += 0x7fff + ((b >> 16) & 1);
  b &= 0xffff0000u;
  std::memcpy(&x, &b, 4);
  return x;
}

template <Bug bug>
attncheck_status attention(const attncheck_attention* call, char* message, size_t size) {
  const DLTensor *q = call->q, *k = call->k, *v = call->v, *o = call->out;
  for (const DLTensor* t : {q, k, v, o})
    if (t->dtype.code != kDLFloat || t->dtype.bits != 32 || t->dtype.lanes != 1) {
      std::snprintf(message, size, "float32 only");
      return ATTNCHECK_UNSUPPORTED;
    }
  const Strided Q = wrap(q, q, bug, true), K = wrap(k, k, bug, true);
  const Strided V = wrap(v, bug == Bug::v_uses_k_strides ? k : v, bug, true);
  const Strided O = wrap(o, bug == Bug::out_uses_q_strides ? q : o, bug, false);
  const bool legacy = bug == Bug::legacy_reshape;
  const int64_t heads = call->heads, C = q->shape[1], D = C / heads, Dv = v->shape[1] / heads;
  const auto [groups, Sq, Sk] = sizes_of(call);
  const float scale = bug == Bug::scale_sqrt_c ? 1.0f / std::sqrt(static_cast<float>(C))
                                               : static_cast<float>(call->scale);
  auto channel = [&](int64_t g, int64_t d, int64_t per) {
    return bug == Bug::heads_interleaved ? d * heads + g : g * per + d;
  };
  const int64_t tile = 32, padded = (Sk + tile - 1) / tile * tile;
  std::vector<float> P(padded);
  int64_t i[5];
  for (int64_t n = 0; n < groups; ++n)
    for (int64_t g = 0; g < heads; ++g)
      for (int64_t p = 0; p < Sq; ++p) {
        float m = -INFINITY;
        const int64_t keys = bug == Bug::reads_past_end ? Sk + 1 : Sk;
        for (int64_t r = 0; r < keys; ++r) {
          float dot = 0;
          for (int64_t d = 0; d < D; ++d) {
            index_of(q, call->axes, n, channel(g, d, D), p, legacy, i);
            const float qv = *Q.at(i);
            index_of(k, call->axes, n, channel(g, d, D), r, legacy, i);
            dot += qv * *K.at(i);
          }
          if (r < Sk) P[r] = scale * dot;
          m = std::fmax(m, scale * dot);
        }
        if (bug == Bug::no_max_subtraction) m = 0;
        float sum = 0;
        for (int64_t r = 0; r < Sk; ++r) sum += P[r] = std::exp(P[r] - m);
        if (bug == Bug::tail_tile_exp0)
          for (int64_t r = Sk; r < padded; ++r) sum += std::exp(0.0f - m);
        if (bug == Bug::bf16_probabilities)
          for (int64_t r = 0; r < Sk; ++r) P[r] = round_bf16(P[r] / sum) * sum;
        for (int64_t e = 0; e < Dv; ++e) {
          float acc = 0;
          for (int64_t r = 0; r < Sk; ++r) {
            index_of(v, call->axes, n, channel(g, e, Dv), r, legacy, i);
            acc += P[r] * *V.at(i);
          }
          index_of(o, call->axes, n, channel(g, e, Dv), p, legacy, i);
          *O.at(i) = acc / sum;
        }
      }
  if (bug == Bug::writes_past_end) {
    int64_t last[5];
    for (int d = 0; d < 5; ++d) last[d] = o->shape[d] - 1;
    O.at(last)[1] = 0.0f;
  }
  return ATTNCHECK_OK;
}

}  // namespace mutant
