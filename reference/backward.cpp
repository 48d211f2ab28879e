#include <attncheck/reference/backward.h>
#include <attncheck/reference/einsum.h>
#include <attncheck/reference/ops.h>

#include <stdexcept>
#include <string>

namespace attncheck::ref {

void check_dout(const AttentionArgs& a, const View& dout) {
  check_args(a);
  auto bad = [](const std::string& s) {
    return std::invalid_argument("attention backward: dout " + s);
  };
  if (dout.rank() != 5)
    throw bad("has rank " + std::to_string(dout.rank()) + ", expected 5 (B, Cv, Tq, Hq, Wq)");
  // out's shape: q's batch and positions, v's channels.
  const int64_t want[5] = {a.q.shape()[0], a.v.shape()[1], a.q.shape()[2], a.q.shape()[3],
                           a.q.shape()[4]};
  const char* field[5] = {"B", "Cv", "Tq", "Hq", "Wq"};
  for (int d = 0; d < 5; ++d)
    if (dout.shape()[d] != want[d])
      throw bad("shape[" + std::to_string(d) + "] (" + field[d] + ") is " +
                std::to_string(dout.shape()[d]) + ", expected " + std::to_string(want[d]));
}

BackwardTrace trace_attention_backward(const AttentionArgs& a, const View& dout_in, Wrong w) {
  check_dout(a, dout_in);
  AttentionTrace fw = trace_attention(a, w);
  // out = ungroup(o) only moves elements, so dL/do is dout moved back the same
  // way: grouped exactly as the forward groups its inputs.
  const View dout = group(dout_in, a.axes, a.heads, w);  // (N, heads, Dv, Sq)
  const View P = fw.P.view();
  const View P_dout[2] = {P, dout};
  Tensor dv = einsum("ngpr,ngep->nger", P_dout);  // (N, heads, Dv, Sk)
  const View dout_v[2] = {dout, fw.v};
  Tensor dP = einsum("ngep,nger->ngpr", dout_v);  // (N, heads, Sq, Sk)

  // The softmax's Jacobian: subtract, along the axis the softmax normalised
  // (keys; queries for the wrong softmax_over_queries), the P-weighted mean
  // of dP.
  const bool over_queries = w == Wrong::softmax_over_queries;
  const View P_dP[2] = {P, dP.view()};
  const Tensor mean = einsum(over_queries ? "ngpr,ngpr->ngr" : "ngpr,ngpr->ngp", P_dP);
  const int64_t Sq = dP.shape[2], Sk = dP.shape[3];
  Tensor dS(dP.shape);
  for (int64_t i = 0; i < dS.numel(); ++i) {
    const int64_t row = i / Sk;                    // (n, g, p) flattened
    const int64_t col = (row / Sq) * Sk + i % Sk;  // (n, g, r) flattened
    dS[i] = fw.P[i] * (dP[i] - mean[over_queries ? col : row]);
  }

  const View dS_k[2] = {dS.view(), fw.k};
  const View dS_q[2] = {dS.view(), fw.q};
  const Tensor dq = scaled(einsum("ngpr,ngdr->ngdp", dS_k).view(), a.scale);  // (N, heads, D, Sq)
  const Tensor dk = scaled(einsum("ngpr,ngdp->ngdr", dS_q).view(), a.scale);  // (N, heads, D, Sk)
  // dq at the queries' positions, dk and dv at the keys', each a packed
  // tensor of the full logical shape (a broadcast input is not reduced).
  return {.forward = std::move(fw),
          .dout = dout,
          .dP = std::move(dP),
          .dS = std::move(dS),
          .dq = ungroup(dq.view(), a, Positions::query, w),
          .dk = ungroup(dk.view(), a, Positions::key, w),
          .dv = ungroup(dv.view(), a, Positions::key, w)};
}

AttentionGrads attention_backward(const AttentionArgs& a, const View& dout, Wrong w) {
  BackwardTrace t = trace_attention_backward(a, dout, w);
  return {std::move(t.dq), std::move(t.dk), std::move(t.dv)};
}

}  // namespace attncheck::ref
