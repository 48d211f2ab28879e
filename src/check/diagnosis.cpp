#include <attncheck/diagnosis.h>
#include <attncheck/runner.h>
#include <attncheck/reference/einsum.h>

#include <cmath>
#include <functional>
#include <limits>
#include <optional>

namespace attncheck {

namespace {

// Whether a candidate's output agrees with the implementation's, element by
// element (NaN where it has NaN: both read poison), and whether it differs
// from the spec anywhere (else it explains nothing).
struct Match {
  bool agrees = true;
  bool differs = false;
  bool clearer = false;  // clearly closer to the output than the spec (see match)
};

// A candidate's output and, where it is attention on other arguments, the
// error model's bound for computing that in the case's dtype.
struct Eval {
  ref::Tensor out;
  std::optional<ref::Tensor> bound;
};

// Agreement within twice the larger of the spec's bound and the candidate's
// own (a misreading can involve larger logits than the spec); and whether
// it is closer to the output than the spec by a clear margin: its largest
// distance (in those bounds) at most half the spec's. A candidate must be
// clearer in at least one run: one whose own bound is wide (softmax over
// one query sums v) would otherwise "explain" an output that is only a
// little off, as low-precision bugs' outputs are.
Match match(const ref::Tensor& got, const Eval& cand_eval, const Expectation& e) {
  const ref::Tensor& cand = cand_eval.out;
  Match m;
  long double cand_far = 0, spec_far = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const long double g = got[i], c = cand[i];
    if (std::isnan(c) != std::isnan(g)) return {false, false};
    if (std::isnan(c)) {  // both read poison here; the spec reads a value
      m.differs |= !std::isnan(e.want[i]);
      if (!std::isnan(e.want[i])) spec_far = std::numeric_limits<long double>::infinity();
      continue;
    }
    if (!std::isfinite(c) || !std::isfinite(g)) {
      if (c != g) return {false, false};
      if (g != e.want[i]) spec_far = std::numeric_limits<long double>::infinity();
      continue;
    }
    long double b = e.bound[i];
    if (cand_eval.bound && std::isfinite((*cand_eval.bound)[i])) b = std::max(b, (*cand_eval.bound)[i]);
    const long double slack = b + 5e-6L * std::fabs(c);
    if (std::fabs(g - c) > 2 * slack) return {false, false};
    m.differs |= std::fabs(c - e.want[i]) > e.bound[i];
    if (slack > 0) {
      cand_far = std::max(cand_far, std::fabs(g - c) / slack);
      spec_far = std::max(spec_far, std::fabs(g - e.want[i]) / slack);
    } else if (g != e.want[i]) {
      spec_far = std::numeric_limits<long double>::infinity();
    }
  }
  m.clearer = cand_far <= spec_far / 2;
  return m;
}

// Packed channels-last strides, (B, T, H, W, C) in memory, for a (B, C, T, H, W) shape.
std::vector<int64_t> channels_last_strides(const std::vector<int64_t>& s) {
  return {s[1] * s[2] * s[3] * s[4], 1, s[3] * s[4] * s[1], s[4] * s[1], s[1]};
}

struct Candidate {
  std::string text;
  std::function<Eval()> eval;  // reads the case's memory when called
};

// Each candidate's output, evaluated now, or nullopt where it throws.
std::vector<std::optional<Eval>> evaluate(const std::vector<Candidate>& cands) {
  std::vector<std::optional<Eval>> out;
  for (const auto& cand : cands) {
    try {
      out.emplace_back(cand.eval());
    } catch (const std::exception&) {
      out.emplace_back(std::nullopt);
    }
  }
  return out;
}

// One sentence: the first hit, and in parentheses the others.
std::string name_hits(const std::vector<std::string>& hits) {
  if (hits.empty()) return "";
  std::string text = hits[0];
  const std::string prefix = "output equals ";
  for (size_t i = 1; i < hits.size(); ++i) {
    const std::string& h = hits[i];
    text += (i == 1 ? " (on this case, equally: " : "; ") + (h.rfind(prefix, 0) == 0 ? h.substr(prefix.size()) : h);
  }
  return hits.size() > 1 ? text + ")" : text;
}

// The known wrong semantics of this case, each as the reference computes it
// on the case's memory.
std::vector<Candidate> candidates(const GuardedCase& g, Precision precision) {
  const Case& c = g.spec();
  const ref::AttentionArgs a = reference_args(g);
  std::vector<Candidate> cands;
  auto with_args = [&](ref::AttentionArgs b, ref::Wrong w = ref::Wrong::none) {
    return [b, w, dtype = c.dtype, precision] {
      Expectation x = expect(b, dtype, precision, w);
      return Eval{std::move(x.want), std::move(x.bound)};
    };
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
    if (real.layout.stride[1] == 1) {
      // A size-1 (or any) C with stride 1 taken for channels-last, and the
      // strides rebuilt for it packed.
      Layout l = real.layout;
      l.stride = channels_last_strides(l.shape);
      if (l.stride != real.layout.stride)
        variant("as packed channels-last (B, T, H, W, C): its C stride is 1, so a format check took it for "
                "channels-last",
                l);
    }
  }
  {
    // The format check applied to every input at once (it usually is).
    ref::AttentionArgs b = a;
    ref::View* views[3] = {&b.q, &b.k, &b.v};
    std::string names;
    bool readable = true;
    for (int r = 0; r < 3; ++r) {
      ref::View& v = *views[r];
      const std::vector<int64_t> cl = channels_last_strides(v.layout.shape);
      if (v.layout.stride[1] != 1 || v.layout.stride == cl) continue;
      v.layout.stride = cl;
      readable &= g.readable(v);
      names += (names.empty() ? "" : ", ") + std::string(role_name(r));
    }
    if (readable && names.find(',') != std::string::npos)
      cands.push_back({"output equals attention reading " + names +
                           " as packed channels-last (B, T, H, W, C): their C stride is 1, so a format check "
                           "took them for channels-last",
                       with_args(b)});
  }
  // Wrong softmax arithmetic, from the reference's own intermediates.
  {
    const ref::AttentionTrace t = ref::trace_attention(a);
    const int64_t N = t.P.shape[0], heads = t.P.shape[1], Sq = t.P.shape[2], Sk = t.P.shape[3];
    const int64_t Dv = t.o.shape[2];
    // Keys padded to a tile multiple with logit 0 and value 0, whose exp(0 - max) still enters the
    // normalizer (flashinfer PR #5090).
    int64_t last_extra = 0;
    for (int64_t tile : {8, 16, 32, 64, 128}) {
      const int64_t extra = (Sk + tile - 1) / tile * tile - Sk;
      if (extra == 0 || extra == last_extra) continue;  // no padding, or the previous tile's
      last_extra = extra;
      cands.push_back({"output equals attention with the keys padded to a multiple of " + std::to_string(tile) +
                           " and the padding's exp(0 - max) counted in the softmax's normalizer (a tail tile "
                           "not masked)",
                       [t, a, N, heads, Sq, Sk, Dv, extra] {
                         ref::Tensor o(t.o.shape);
                         for (int64_t n = 0; n < N; ++n)
                           for (int64_t h = 0; h < heads; ++h)
                             for (int64_t p = 0; p < Sq; ++p) {
                               long double m = -INFINITY, s = 0;
                               for (int64_t r = 0; r < Sk; ++r)
                                 m = std::max(m, t.logits[((n * heads + h) * Sq + p) * Sk + r]);
                               for (int64_t r = 0; r < Sk; ++r)
                                 s += std::exp(t.logits[((n * heads + h) * Sq + p) * Sk + r] - m);
                               const long double f = s / (s + extra * std::exp(-m));
                               for (int64_t e = 0; e < Dv; ++e) {
                                 const int64_t i = ((n * heads + h) * Dv + e) * Sq + p;
                                 o[i] = t.o[i] * f;
                               }
                             }
                         return Eval{ref::ungroup(o.view(), a), std::nullopt};
                       }});
    }
    // A 16-bit output rounded through the other 16-bit type on its way out.
    if (c.dtype == DType::f16 || c.dtype == DType::bf16) {
      const DType dt = c.dtype, other = dt == DType::f16 ? DType::bf16 : DType::f16;
      cands.push_back({std::string("output equals the spec's output rounded to ") + ref::name_of(other) +
                           " before " + ref::name_of(dt),
                       [t, dt, other] {
                         ref::Tensor o(t.out.shape);
                         for (int64_t i = 0; i < o.numel(); ++i)
                           o[i] = ref::round_to(dt, ref::round_to(other, t.out[i]));
                         return Eval{o, std::nullopt};
                       }});
    }
    // The probabilities rounded to bfloat16 before the PV product.
    cands.push_back({"output equals attention with the probabilities rounded to bfloat16 before the product "
                     "with v",
                     [t, a] {
                       ref::Tensor P = t.P;
                       P.data = std::make_shared<std::vector<ref::real>>(*t.P.data);
                       for (int64_t i = 0; i < P.numel(); ++i) P[i] = ref::round_to(DType::bf16, P[i]);
                       const ref::View pv[2] = {P.view(), t.v};
                       return Eval{ref::ungroup(ref::einsum("ngpr,ngdr->ngdp", pv).view(), a), std::nullopt};
                     }});
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
  return cands;
}

// The candidates that give the implementation's output in every run (each
// evaluated on the memory as it was for that run) and differ from the spec
// in at least one, named in one sentence. Every candidate is evaluated: on
// a small case several can give the same output (k compact makes "v with
// k's strides" and "v as if compact" one reading), and the user should see
// each.
struct Run {
  const ref::Tensor* got;
  std::vector<std::optional<Eval>> cands;
};

std::string name_matches(const std::vector<Candidate>& cands, const std::vector<Run>& runs, const Expectation& e) {
  std::vector<std::string> hits;
  for (size_t i = 0; i < cands.size(); ++i) {
    bool agrees = true, differs = false, clearer = false;
    for (const Run& r : runs) {
      if (!r.cands[i]) {
        agrees = false;
        break;
      }
      const Match m = match(*r.got, *r.cands[i], e);
      agrees &= m.agrees;
      differs |= m.differs;
      clearer |= m.clearer;
    }
    if (agrees && differs && clearer) hits.push_back(cands[i].text);
  }
  return name_hits(hits);
}

}  // namespace

std::string diagnose(const GuardedCase& g, const ref::Tensor& got, const Expectation& e, Precision p) {
  const std::vector<Candidate> cands = candidates(g, p);
  return name_matches(cands, {{&got, evaluate(cands)}}, e);
}

std::string diagnose(GuardedCase& g, const ref::Tensor& got, const ref::Tensor& got_finite, const Expectation& e,
                     Precision p) {
  const std::vector<Candidate> cands = candidates(g, p);
  g.refill_around_inputs(kInputPoison);
  Run poisoned{&got, evaluate(cands)};
  g.refill_around_inputs(kFinitePoison);
  Run finite{&got_finite, evaluate(cands)};
  g.refill_around_inputs(kInputPoison);
  return name_matches(cands, {std::move(poisoned), std::move(finite)}, e);
}

NanSource nan_source(const attncheck_impl& impl, GuardedCase& g, const ref::Tensor& got, const ref::Tensor& want,
                     const RunOptions& opt) {
  NanSource s;
  int64_t first = -1;
  for (int64_t i = 0; i < got.numel() && first < 0; ++i)
    if (std::isnan(got[i]) && !std::isnan(want[i])) first = i;
  if (first < 0) return s;
  for (int d = 4; d >= 0; --d) s.at[d] = first % want.shape[d], first /= want.shape[d];
  g.refill_around_inputs(kFinitePoison);
  g.reset_outputs();
  const RunResult run = run_call(impl, g, opt);
  g.refill_around_inputs(kInputPoison);
  if (!run.ok()) {
    s.kind = NanSource::unknown;
    s.rerun = !run.error.empty()     ? run.error
              : run.finding.empty() ? "status " + std::to_string(run.status) + ": " + run.message
                                    : run.finding;
    return s;
  }
  s.finite_out = read_out(g.view(kRoleOut));
  s.kind = NanSource::arithmetic;
  for (int64_t i = 0; i < got.numel(); ++i)
    if (std::isnan(got[i]) && !std::isnan(want[i]) && !std::isnan(s.finite_out[i])) s.kind = NanSource::poison;
  return s;
}

std::string nan_diagnosis(const NanSource& s, const GuardedCase& g, Precision precision) {
  const std::string where = "out" + index_text(s.at) + " is NaN where the reference has a value";
  switch (s.kind) {
    case NanSource::none: return "";
    case NanSource::poison:
      return where + ", and finite when the memory around the views holds finite values instead of NaN: the "
                     "implementation read memory outside the views";
    case NanSource::unknown: return where + "; rerun with finite memory around the views: " + s.rerun;
    case NanSource::arithmetic: break;
  }
  std::string text = where + ", also with finite memory around the views: the arithmetic made it";
  // Logits past exp's overflow: the classic cause.
  const ref::AttentionTrace t = ref::trace_attention(reference_args(g));
  long double top = 0;
  for (int64_t i = 0; i < t.logits.numel(); ++i) top = std::max(top, std::fabs(t.logits[i]));
  const double overflow = g.spec().dtype == DType::f64 ? 709.78 : 88.72;  // log of the accumulator's max
  const std::string range = contract_overflow(reference_args(g), g.spec().dtype, precision);
  if (!range.empty()) return text + " (" + range + ")";
  if (top > overflow) {
    char b[200];
    std::snprintf(b, sizeof b,
                  " (logits reach %.4g, past exp's overflow at %.2f: without the maximum subtracted exp gives "
                  "inf, and inf/inf is NaN)",
                  static_cast<double>(top), overflow);
    text += b;
  } else {
    text += " (inf - inf or 0/0)";
  }
  return text;
}

}  // namespace attncheck
