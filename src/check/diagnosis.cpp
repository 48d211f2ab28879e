#include <attncheck/diagnosis.h>

#include <cmath>
#include <functional>

namespace attncheck {

namespace {

bool matches(const ref::Tensor& got, const ref::Tensor& cand, const Expectation& e) {
  bool differs_from_spec = false;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const long double g = got[i], c = cand[i];
    if (std::isnan(c) != std::isnan(g)) return false;
    if (std::isnan(c)) {  // both read poison here; the spec reads a value
      differs_from_spec |= !std::isnan(e.want[i]);
      continue;
    }
    if (!std::isfinite(c) || !std::isfinite(g)) {
      if (c != g) return false;
      continue;
    }
    if (std::fabs(g - c) > 2 * e.bound[i] + 1e-5L * std::fabs(c)) return false;
    differs_from_spec |= std::fabs(c - e.want[i]) > e.bound[i];
  }
  return differs_from_spec;
}

}  // namespace

std::string diagnose(const GuardedCase& g, const ref::Tensor& got, const Expectation& e) {
  const Case& c = g.spec();
  const ref::AttentionArgs a = reference_args(g);
  struct Candidate {
    std::string text;
    std::function<ref::Tensor()> eval;
  };
  std::vector<Candidate> cands;
  auto with_args = [&](ref::AttentionArgs b, ref::Wrong w = ref::Wrong::none) {
    return [b, w] { return ref::attention(b, w); };
  };
  if (c.axes == Axes::spatial)
    cands.push_back({"output equals spatial attention computed with reshape(B*T, C, H*W) without the "
                     "permute (the unfixed Open-Sora-Plan AttnBlock3D)",
                     with_args(a, ref::Wrong::reshape_without_permute)});
  if (c.axes == Axes::temporal)
    cands.push_back({"output equals temporal attention computed with reshape(B*H*W, C, T) without the "
                     "permute (the temporal twin of the unfixed AttnBlock3D)",
                     with_args(a, ref::Wrong::reshape_without_permute)});
  cands.push_back({"output equals attention with heads interleaved (channel c in head c % heads) "
                   "instead of head-major",
                   with_args(a, ref::Wrong::heads_interleaved)});
  cands.push_back({"output equals attention with the softmax taken over the queries instead of the keys",
                   with_args(a, ref::Wrong::softmax_over_queries)});
  auto scaled = [&](double s) {
    ref::AttentionArgs b = a;
    b.scale = s;
    return b;
  };
  cands.push_back({"output equals attention with the scale ignored (taken as 1)", with_args(scaled(1))});
  cands.push_back({"output equals attention with scale 1/sqrt(C) (all channels) instead of the given " +
                       std::to_string(c.scale),
                   with_args(scaled(1 / std::sqrt(static_cast<double>(c.C))))});
  cands.push_back({"output equals attention with scale 1/sqrt(D) instead of the given " +
                       std::to_string(c.scale),
                   with_args(scaled(1 / std::sqrt(static_cast<double>(c.D()))))});
  // Misread layouts: the same memory read with other strides or offsets;
  // only where those reads stay inside the tensor's mapping (elsewhere the
  // implementation would have faulted).
  const char* names[3] = {"q", "k", "v"};
  for (int r = 0; r < 3; ++r) {
    const ref::View real = g.view(r);
    auto variant = [&](const std::string& what, Layout l) {
      ref::View v = real;
      v.layout = l;
      if (!g.readable(v)) return;
      ref::AttentionArgs b = a;
      (r == 0 ? b.q : r == 1 ? b.k : b.v) = v;
      cands.push_back({"output equals attention reading " + std::string(names[r]) + " " + what,
                       with_args(b)});
    };
    if (!real.layout.is_compact())
      variant("as if it were compact (strides computed from the shape)",
              Layout::compact(real.layout.shape, real.layout.offset));
    if (real.layout.offset != 0) {
      Layout l = real.layout;
      l.offset = 0;
      variant("without its byte_offset", l);
    }
    if (real.layout.stride[4] != 1 || real.layout.stride[1] != 1) {
      // Honouring only the innermost dimension's stride as 1.
      Layout l = real.layout;
      const auto order = real.layout.stride;
      int inner = 0;
      for (int d = 1; d < 5; ++d)
        if (order[d] != 0 && (order[inner] == 0 || order[d] < order[inner])) inner = d;
      if (l.stride[inner] > 1) {
        const int64_t s = l.stride[inner];
        for (auto& x : l.stride) x = x / s;
        variant("with its innermost stride taken as 1", l);
      }
    }
  }
  {
    const ref::View v = g.view(kRoleV);
    Layout l = v.layout;
    l.stride = g.view(kRoleK).layout.stride;
    if (l.stride != v.layout.stride) {
      ref::View w = v;
      w.layout = l;
      if (g.readable(w)) {
        ref::AttentionArgs b = a;
        b.v = w;
        cands.push_back({"output equals attention reading v with k's strides", with_args(b)});
      }
    }
  }
  // Every candidate is evaluated: on a small case several can give the same
  // output (k compact makes "v with k's strides" and "v as if compact" one
  // reading), and the user should see each.
  std::vector<std::string> hits;
  for (const auto& cand : cands) {
    try {
      if (matches(got, cand.eval(), e)) hits.push_back(cand.text);
    } catch (const std::exception&) {
    }
  }
  if (!hits.empty()) {
    std::string text = hits[0];
    const std::string prefix = "output equals ";
    for (size_t i = 1; i < hits.size(); ++i) {
      const std::string& h = hits[i];
      text += (i == 1 ? " (on this case, equally: " : "; ") +
              (h.rfind(prefix, 0) == 0 ? h.substr(prefix.size()) : h);
    }
    return hits.size() > 1 ? text + ")" : text;
  }
  return "";
}

}  // namespace attncheck
