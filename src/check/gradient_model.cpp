// The backward pass's error model (gradient_model.h gives the derivation)
// and the diagnosis of wrong gradients.
#include <attncheck/gradient_model.h>
#include <attncheck/reference/backward.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <memory>
#include <vector>

namespace attncheck {

namespace {

GradientExpectation expect_gradients(const ref::AttentionArgs& a, const ref::View& dout, DType dtype,
                                     Precision precision, ref::Wrong w, double K) {
  const Precision contract = contract_for(dtype, precision);
  const ref::BackwardTrace tr = ref::trace_attention_backward(a, dout, w);
  const ref::AttentionTrace& f = tr.forward;
  // The forward's bound on out, grouped as o: the out the call gets.
  const Expectation fo = expect(f, a, dtype, precision, w, K);
  const ref::Tensor Bo = ref::contiguous(ref::group(fo.bound.view(), a.axes, a.heads, w));  // (N, H, Dv, Sq)
  const ref::Tensor q = ref::contiguous(f.q), k = ref::contiguous(f.k), v = ref::contiguous(f.v);
  const ref::Tensor dO = ref::contiguous(tr.dout);
  const ref::Tensor& o = f.o;
  const int64_t N = f.o.shape[0], H = f.o.shape[1], Dv = f.o.shape[2], Sq = f.o.shape[3];
  const int64_t D = q.shape[2], Sk = f.P.shape[3];

  const bool half = dtype == DType::f16 || dtype == DType::bf16;
  const long double u = unit_roundoff(dtype), ua = unit_roundoff(accumulator(dtype));
  const long double ur = half ? u : 0, trr = half ? half_subnormal_spacing(dtype) : 0;
  const long double tinyA = smallest_normal(accumulator(dtype)), tinyO = half_subnormal_spacing(dtype);
  const long double scale = std::fabs(static_cast<long double>(a.scale)), K16 = kRoundingFactor;
  const long double tiny = K * (Sq + Sk + D + Dv + 8) * (tinyA + tinyO);

  ref::Tensor bq({N, H, D, Sq}), bk({N, H, D, Sk}), bv({N, H, Dv, Sk});
  std::vector<long double> moves(static_cast<size_t>(Sk)), dP_err(static_cast<size_t>(Sq * Sk)),
      dS_err(static_cast<size_t>(Sq * Sk)), dP_move(static_cast<size_t>(Sq * Sk));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t nh = n * H + h;
      const auto Q = [&](int64_t d, int64_t p) { return q[(nh * D + d) * Sq + p]; };
      const auto Kk = [&](int64_t d, int64_t r) { return k[(nh * D + d) * Sk + r]; };
      const auto V = [&](int64_t e, int64_t r) { return v[(nh * Dv + e) * Sk + r]; };
      const auto G = [&](int64_t e, int64_t p) { return dO[(nh * Dv + e) * Sq + p]; };
      const auto O = [&](int64_t e, int64_t p) { return o[(nh * Dv + e) * Sq + p]; };
      for (int64_t p = 0; p < Sq; ++p) {
        const int64_t row = (nh * Sq + p) * Sk;
        // The forward's largest |q.k| of the row and its weights' moves, with
        // the normaliser's and the row statistics' rounding on top.
        long double L = 0, Pmax = 0;
        for (int64_t r = 0; r < Sk; ++r) {
          long double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += std::fabs(Q(d, p) * Kk(d, r));
          L = std::max(L, dot), Pmax = std::max(Pmax, f.P[row + r]);
        }
        LogitError le = logit_error(contract, D, dtype, a.scale, L, K);
        le.el += K * (Sk + 4) * ua / 2;
        weight_moves(f.logits, f.P, row, Sk, Pmax, le, moves.data());
        long double delta = 0, delta_err = 0, PdP = 0;
        for (int64_t r = 0; r < Sk; ++r) {
          const long double P = f.P[row + r], dP = tr.dP[row + r];
          const long double dPm = std::min<long double>(moves[r] + K * tinyA, 1);
          long double mag = 0;
          for (int64_t e = 0; e < Dv; ++e) mag += std::fabs(G(e, p) * V(e, r));
          const long double EdP = K * (Dv + 2) * ua * mag + ur * std::fabs(dP) + trr;
          dP_err[p * Sk + r] = EdP, dP_move[p * Sk + r] = dPm;
          delta += P * dP;
          delta_err += dPm * std::fabs(dP) + P * EdP;
          PdP += P * std::fabs(dP);
        }
        // Δ from out (the implementation's own, within the forward's bound),
        // or recomputed as sum_r P dP: both errors.
        long double from_out = 0, out_mag = 0;
        for (int64_t e = 0; e < Dv; ++e) {
          from_out += std::fabs(G(e, p)) * Bo[(nh * Dv + e) * Sq + p];
          out_mag += std::fabs(G(e, p) * O(e, p));
        }
        const long double EDelta = from_out + K * (Dv + 2) * ua * out_mag + delta_err + K * (Sk + 2) * ua * PdP;
        for (int64_t r = 0; r < Sk; ++r) {
          const long double P = f.P[row + r], centred = std::fabs(tr.dP[row + r] - delta);
          const long double dPm = dP_move[p * Sk + r];
          dS_err[p * Sk + r] = dPm * centred + (P + dPm) * (dP_err[p * Sk + r] + EDelta) +
                               (3 * K * ua + ur) * P * centred + trr;
        }
      }
      const auto dS = [&](int64_t p, int64_t r) { return tr.dS[(nh * Sq + p) * Sk + r]; };
      for (int64_t d = 0; d < D; ++d) {
        for (int64_t p = 0; p < Sq; ++p) {
          long double carried = 0, mag = 0;
          for (int64_t r = 0; r < Sk; ++r) {
            carried += dS_err[p * Sk + r] * std::fabs(Kk(d, r));
            mag += std::fabs(dS(p, r) * Kk(d, r));
          }
          bq[(nh * D + d) * Sq + p] = scale * (carried + K * (Sk + 2) * ua * mag) + K16 * u * scale * mag + tiny;
        }
        for (int64_t r = 0; r < Sk; ++r) {
          long double carried = 0, mag = 0;
          for (int64_t p = 0; p < Sq; ++p) {
            carried += dS_err[p * Sk + r] * std::fabs(Q(d, p));
            mag += std::fabs(dS(p, r) * Q(d, p));
          }
          bk[(nh * D + d) * Sk + r] = scale * (carried + K * (Sq + 2) * ua * mag) + K16 * u * scale * mag + tiny;
        }
      }
      for (int64_t e = 0; e < Dv; ++e)
        for (int64_t r = 0; r < Sk; ++r) {
          long double carried = 0, mag = 0;
          for (int64_t p = 0; p < Sq; ++p) {
            const long double P = f.P[(nh * Sq + p) * Sk + r], g = std::fabs(G(e, p));
            carried += (dP_move[p * Sk + r] + ur * P + trr) * g;
            mag += P * g;
          }
          bv[(nh * Dv + e) * Sk + r] = carried + K * (Sq + 2) * ua * mag + K16 * u * mag + tiny;
        }
    }
  using ref::Positions;
  return {{tr.dq, tr.dk, tr.dv},
          {ref::ungroup(bq.view(), a, Positions::query, w), ref::ungroup(bk.view(), a, Positions::key, w),
           ref::ungroup(bv.view(), a, Positions::key, w)}};
}

bool within(const std::array<ref::Tensor, 3>& got, const GradientExpectation& e) {
  for (int i = 0; i < 3; ++i)
    if (!compare(got[i], Expectation{e.want[i], e.bound[i]}).ok) return false;
  return true;
}

}  // namespace

ref::Tensor within_range(const ref::Tensor& got, const ref::Tensor& want, const ref::Tensor& bound, DType dtype) {
  long double largest = 0;
  switch (dtype) {
    case DType::f16: largest = 65504; break;
    case DType::bf16: largest = 0x1.fep127L; break;
    case DType::f32: largest = std::numeric_limits<float>::max(); break;
    case DType::f64: largest = std::numeric_limits<double>::max(); break;
    case DType::ext: return got;
  }
  const long double overflow = largest * (1 + unit_roundoff(dtype) / 2);
  ref::Tensor r = got;
  r.data = std::make_shared<std::vector<ref::real>>(*got.data);
  for (int64_t i = 0; i < r.numel(); ++i)
    if (std::isinf(got[i]) && std::signbit(got[i]) == std::signbit(want[i]) &&
        std::fabs(want[i]) + bound[i] >= overflow)
      r[i] = want[i];
  return r;
}

std::string gradient_contract_overflow(const GuardedCase& g, Precision p) {
  const DType dtype = g.spec().dtype;
  if (dtype != DType::f16) return "";
  const Precision contract = contract_for(dtype, p);
  const ref::BackwardTrace tr = ref::trace_attention_backward(reference_args(g), g.view(kRoleDout));
  const long double limit = 65504 * (1 - 4 * unit_roundoff(dtype));  // rounding on the way keeps a margin
  const std::pair<const char*, const ref::Tensor*> rounded[] = {{"dS", &tr.dS}, {"dP", &tr.dP}};
  for (const auto& [name, t] : rounded) {
    if (t == &tr.dP && contract == Precision::fused) continue;  // fused keeps dP in f32
    for (int64_t i = 0; i < t->numel(); ++i)
      if (std::fabs((*t)[i]) > limit) {
        char b[200];
        std::snprintf(b, sizeof b,
                      "the contract rounds %s to f16, and %s reaches %.6Lg, past f16's largest finite value 65504: "
                      "no kernel of this contract computes the case",
                      name, name, static_cast<long double>((*t)[i]));
        return b;
      }
  }
  return "";
}

GradientExpectation expect_gradients(const GuardedCase& g, Precision p, double K) {
  return expect_gradients(reference_args(g), g.view(kRoleDout), g.spec().dtype, p, ref::Wrong::none, K);
}

std::string describe_gradients(Precision p, DType dtype) {
  if (dtype == DType::f32 || dtype == DType::f64)
    return std::string("every sum in ") + ref::name_of(dtype) + ", in any order";
  switch (p) {
    case Precision::fused:
      return "sums in f32, P and dS rounded once to the input dtype before their products, dq, dk, dv rounded once";
    case Precision::unfused:
      return "as fused, with the forward's logits and probabilities materialised in the input dtype";
    case Precision::input:
      return "every sum accumulated in the input dtype (the loosest contract)";
  }
  return "?";
}

std::string diagnose_gradients(const GuardedCase& g, const std::array<ref::Tensor, 3>& got,
                               const GradientExpectation& e, Precision p) {
  (void)e;
  const Case& c = g.spec();
  const ref::AttentionArgs a = reference_args(g);
  const ref::View dout = g.view(kRoleDout);
  struct Candidate {
    std::string words;
    std::function<GradientExpectation()> eval;
  };
  std::vector<Candidate> cands;
  if (c.axes == Axes::spatial)
    cands.push_back({"gradients equal those of spatial attention computed with reshape(B*T, C, H*W) without the "
                     "permute (the unfixed Open-Sora-Plan AttnBlock3D)",
                     [&] { return expect_gradients(a, dout, c.dtype, p, ref::Wrong::reshape_without_permute, kSafetyFactor); }});
  if (c.axes == Axes::temporal)
    cands.push_back({"gradients equal those of temporal attention computed with reshape(B*H*W, C, T) without the "
                     "permute (the temporal twin of the unfixed AttnBlock3D)",
                     [&] { return expect_gradients(a, dout, c.dtype, p, ref::Wrong::reshape_without_permute, kSafetyFactor); }});
  // dout misread (flash-attention #355: read with out's strides; #325: an
  // expanded dout read as if packed).
  auto misread = [&](const std::string& words, std::vector<int64_t> strides) {
    ref::View d = dout;
    d.layout.stride = std::move(strides);
    if (d.layout.stride == dout.layout.stride || !g.readable(d)) return;
    cands.push_back({words, [&, d] { return expect_gradients(a, d, c.dtype, p, ref::Wrong::none, kSafetyFactor); }});
  };
  const std::vector<int64_t> out_strides = g.view(kRoleOut).layout.stride,
                             packed = Layout::compact(dout.layout.shape).stride;
  if (out_strides == packed) {
    misread("gradients equal those of reading dout as if it were compact, as out is here (flash-attention #325: "
            "an expanded dout read as packed; #355: dout read with out's strides)",
            packed);
  } else {
    misread("gradients equal those of reading dout with out's strides (flash-attention #355)", out_strides);
    misread("gradients equal those of reading dout as if it were compact (flash-attention #325: an expanded dout "
            "read as packed)",
            packed);
  }
  for (const auto& cand : cands)
    if (within(got, cand.eval())) return cand.words;
  return "";
}

}  // namespace attncheck
