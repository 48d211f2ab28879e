#include <attncheck/reference/attention.h>
#include <attncheck/reference/einsum.h>
#include <attncheck/reference/ops.h>

#include <stdexcept>

namespace attncheck::ref {

const char* name_of(Axes a) {
  switch (a) {
    case Axes::spatial: return "spatial";
    case Axes::temporal: return "temporal";
    case Axes::spatiotemporal: return "spatiotemporal";
  }
  return "?";
}

const char* name_of(Wrong w) {
  switch (w) {
    case Wrong::none: return "spec";
    case Wrong::reshape_without_permute: return "reshape_without_permute";
    case Wrong::heads_interleaved: return "heads_interleaved";
    case Wrong::softmax_over_queries: return "softmax_over_queries";
  }
  return "?";
}

void check_args(const AttentionArgs& a) {
  auto bad = [](const std::string& s) { return std::invalid_argument("attention: " + s); };
  const View* t[3] = {&a.q, &a.k, &a.v};
  const char* names[3] = {"q", "k", "v"};
  for (int i = 0; i < 3; ++i) {
    if (t[i]->rank() != 5)
      throw bad(std::string(names[i]) + " has rank " + std::to_string(t[i]->rank()) +
                ", expected 5 (B, C, T, H, W)");
    for (int d = 0; d < 5; ++d)
      if (t[i]->shape()[d] < 1)
        throw bad(std::string(names[i]) + " shape[" + std::to_string(d) + "] is " +
                  std::to_string(t[i]->shape()[d]) + ", must be >= 1");
  }
  const auto &q = a.q.shape(), &k = a.k.shape(), &v = a.v.shape();
  auto agree = [&](const char* what, int64_t x, int64_t y) {
    if (x != y)
      throw bad(std::string(what) + " differ: " + std::to_string(x) + " vs " + std::to_string(y));
  };
  agree("q and k B", q[0], k[0]);
  agree("q and v B", q[0], v[0]);
  agree("q and k C", q[1], k[1]);
  for (int d = 2; d < 5; ++d) agree("k and v positions", k[d], v[d]);
  if (a.axes == Axes::spatial) agree("q and k T (spatial)", q[2], k[2]);
  if (a.axes == Axes::temporal) {
    agree("q and k H (temporal)", q[3], k[3]);
    agree("q and k W (temporal)", q[4], k[4]);
  }
  if (a.heads < 1 || q[1] % a.heads || v[1] % a.heads)
    throw bad("heads " + std::to_string(a.heads) + " does not divide C " +
              std::to_string(q[1]) + " and Cv " + std::to_string(v[1]));
}

View group(const View& x, Axes axes, int64_t heads, Wrong w) {
  const auto s = x.shape();
  const int64_t B = s[0], C = s[1], T = s[2], H = s[3], W = s[4];
  const bool permute_first = w != Wrong::reshape_without_permute;
  View g;
  switch (axes) {
    case Axes::spatial:
      g = reshape(permute_first ? permute(x, {0, 2, 1, 3, 4}) : x, {B * T, C, H * W});
      break;
    case Axes::temporal:
      g = reshape(permute_first ? permute(x, {0, 3, 4, 1, 2}) : x, {B * H * W, C, T});
      break;
    case Axes::spatiotemporal:
      g = reshape(x, {B, C, T * H * W});
      break;
  }
  const int64_t N = g.shape()[0], S = g.shape()[2];
  if (w == Wrong::heads_interleaved)
    return permute(reshape(g, {N, C / heads, heads, S}), {0, 2, 1, 3});
  return reshape(g, {N, heads, C / heads, S});
}

namespace {

// (N, heads, c, S) -> (B, heads*c, T, H, W), T, H, W those of `positions`
// (a (B, ., T, H, W) shape): the inverse of group.
Tensor from_groups(const View& o, Axes axes, const std::vector<int64_t>& positions, Wrong w) {
  const int64_t B = positions[0], T = positions[2], H = positions[3], W = positions[4];
  const int64_t N = o.shape()[0], heads = o.shape()[1], Dv = o.shape()[2], S = o.shape()[3];
  const int64_t Cv = heads * Dv;
  View g = w == Wrong::heads_interleaved ? reshape(permute(o, {0, 2, 1, 3}), {N, Cv, S})
                                         : reshape(o, {N, Cv, S});
  const bool permute_back = w != Wrong::reshape_without_permute;
  switch (axes) {
    case Axes::spatial:
      return contiguous(permute_back ? permute(reshape(g, {B, T, Cv, H, W}), {0, 2, 1, 3, 4})
                                     : reshape(g, {B, Cv, T, H, W}));
    case Axes::temporal:
      return contiguous(permute_back ? permute(reshape(g, {B, H, W, Cv, T}), {0, 3, 4, 1, 2})
                                     : reshape(g, {B, Cv, T, H, W}));
    case Axes::spatiotemporal:
      return contiguous(reshape(g, {B, Cv, T, H, W}));
  }
  throw std::invalid_argument("attention: unknown axes");
}

}  // namespace

AttentionTrace trace_attention(const AttentionArgs& a, Wrong w) {
  check_args(a);
  const View q = group(a.q, a.axes, a.heads, w);  // (N, heads, D, Sq)
  const View k = group(a.k, a.axes, a.heads, w);  // (N, heads, D, Sk)
  const View v = group(a.v, a.axes, a.heads, w);  // (N, heads, Dv, Sk)
  const View qk[2] = {q, k};
  Tensor logits = scaled(einsum("ngdp,ngdr->ngpr", qk).view(), a.scale);
  Tensor P = softmax(logits.view(), w == Wrong::softmax_over_queries ? 2 : 3);
  const View pv[2] = {P.view(), v};
  Tensor o = einsum("ngpr,ngdr->ngdp", pv);  // (N, heads, Dv, Sq)
  Tensor out = from_groups(o.view(), a.axes, a.q.shape(), w);
  return {q, k, v, std::move(logits), std::move(P), std::move(o), std::move(out)};
}

Tensor attention(const AttentionArgs& a, Wrong w) { return trace_attention(a, w).out; }

Tensor ungroup(const View& grouped, const AttentionArgs& a, Positions at, Wrong w) {
  return from_groups(grouped, a.axes, at == Positions::key ? a.k.shape() : a.q.shape(), w);
}

Tensor ungroup(const View& grouped, const AttentionArgs& a, Wrong w) {
  return ungroup(grouped, a, Positions::query, w);
}

}  // namespace attncheck::ref
