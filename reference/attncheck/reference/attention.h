// Ground-truth attention over video tensors (B, C, T, H, W), as the plugin
// ABI's spec defines it, written literally as
//     permute -> reshape -> einsum -> softmax -> einsum -> reshape -> permute
// over the caller's views where they lie.
#pragma once

#include <attncheck/reference/view.h>

#include <cstdint>
#include <string>

namespace attncheck::ref {

enum class Axes { spatial = 0, temporal = 1, spatiotemporal = 2 };
const char* name_of(Axes a);

struct AttentionArgs {
  Axes axes = Axes::spatial;
  View q, k, v;  // (B, C, Tq, Hq, Wq), (B, C, Tk, Hk, Wk), (B, Cv, Tk, Hk, Wk)
  int64_t heads = 1;
  real scale = 1;
};

// Known wrong semantics, named so that a failure can be diagnosed.
enum class Wrong {
  none,                   // the spec's definition
  reshape_without_permute,  // x.reshape(B*T, C, H*W) (spatial; the unfixed
                            // Open-Sora-Plan AttnBlock3D) or
                            // x.reshape(B*H*W, C, T) (temporal), and the
                            // inverse reshape without the permute
  heads_interleaved,      // channel c in head c % heads instead of c / D
  softmax_over_queries,   // normalized along p instead of r
};
const char* name_of(Wrong w);

// Throws std::invalid_argument (one line naming the tensor and field) when
// ranks, shapes or heads do not fit the spec.
void check_args(const AttentionArgs& a);

// out (B, Cv, Tq, Hq, Wq), packed, in long double.
Tensor attention(const AttentionArgs& a, Wrong semantics = Wrong::none);

// Every intermediate of one evaluation, in the grouped coordinates
// (N groups, heads, channel, position), for error analysis.
struct AttentionTrace {
  View q, k, v;     // (N, heads, D, Sq), (N, heads, D, Sk), (N, heads, Dv, Sk)
  Tensor logits;    // (N, heads, Sq, Sk), scale included
  Tensor P;         // (N, heads, Sq, Sk)
  Tensor o;         // (N, heads, Dv, Sq)
  Tensor out;       // (B, Cv, Tq, Hq, Wq)
};
AttentionTrace trace_attention(const AttentionArgs& a, Wrong semantics = Wrong::none);

// Whose positions a (B, channels, T, H, W) tensor has: the queries' (q, out,
// and the gradients dout, dq) or the keys' (k, v, dk, dv).
enum class Positions { query, key };

// (B, C, T, H, W) -> (N groups, heads, C/heads, S): the axes family's groups
// with channels split into heads, exactly as the forward reads q, k and v (a
// view of x's memory where the strides allow). dout groups like out.
View group(const View& x, Axes axes, int64_t heads, Wrong semantics = Wrong::none);

// The inverse of group: (N, heads, c, S) -> packed (B, heads*c, T, H, W) with
// the T, H, W of a's queries or keys. Without `at`, the query positions: a
// tensor shaped like trace.o, laid out as out.
Tensor ungroup(const View& grouped, const AttentionArgs& a, Positions at,
               Wrong semantics = Wrong::none);
Tensor ungroup(const View& grouped, const AttentionArgs& a, Wrong semantics = Wrong::none);

// The legacy semantics of the unfixed AttnBlock3D and its temporal twin.
inline Tensor legacy_attention(const AttentionArgs& a) {
  return attention(a, Wrong::reshape_without_permute);
}

}  // namespace attncheck::ref
