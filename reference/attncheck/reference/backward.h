// Ground-truth gradients of attention, as the plugin ABI's spec defines them
// ("The backward pass"), written literally in the grouped coordinates of the
// forward: for every group and head,
//     dv = dout P,  dP = dout^T v,  dS = P * (dP - rowsum(P * dP)),
//     dq = scale * k dS^T,  dk = scale * q dS,
// each an einsum (long double products, compensated sums), then ungrouped.
#pragma once

#include <attncheck/reference/attention.h>

namespace attncheck::ref {

// Throws std::invalid_argument (one line naming dout and the field) unless
// dout has out's shape (B, Cv, Tq, Hq, Wq). Any layout is accepted, zero
// strides included. Checks a itself first (check_args).
void check_dout(const AttentionArgs& a, const View& dout);

// Every intermediate of one backward evaluation, for error analysis.
struct BackwardTrace {
  AttentionTrace forward;  // the forward of the same semantics
  View dout;               // (N, heads, Dv, Sq), grouped as out
  Tensor dP, dS;           // (N, heads, Sq, Sk)
  Tensor dq, dk, dv;       // (B, C, Tq, Hq, Wq), (B, C, Tk, Hk, Wk), (B, Cv, Tk, Hk, Wk)
};

// The gradients of L = sum(out * dout) with respect to the logical q, k and v
// of a: every logical element gets its own entry, also where a view broadcasts
// (zero stride) or shares memory with another input, so nothing is reduced.
// A wrong semantics gives the gradient of that semantics' forward (the legacy
// reshape_without_permute one is what a legacy training run computed).
BackwardTrace trace_attention_backward(const AttentionArgs& a, const View& dout,
                                       Wrong semantics = Wrong::none);

struct AttentionGrads {
  Tensor dq, dk, dv;  // packed, shaped like q, k and v
};
AttentionGrads attention_backward(const AttentionArgs& a, const View& dout,
                                  Wrong semantics = Wrong::none);

inline AttentionGrads legacy_attention_backward(const AttentionArgs& a, const View& dout) {
  return attention_backward(a, dout, Wrong::reshape_without_permute);
}

}  // namespace attncheck::ref
