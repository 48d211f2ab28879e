#include <attncheck/error_model.h>
#include <attncheck/reference/einsum.h>

#include <cmath>
#include <limits>
#include <stdexcept>

namespace attncheck {

const char* name_of(Precision p) {
  switch (p) {
    case Precision::fused: return "fused";
    case Precision::unfused: return "unfused";
    case Precision::input: return "input";
  }
  return "?";
}

Precision parse_precision(const std::string& name) {
  for (Precision p : {Precision::fused, Precision::unfused, Precision::input})
    if (name == name_of(p)) return p;
  throw std::invalid_argument("unknown precision contract '" + name + "' (expected fused, unfused or input)");
}

static bool is16(DType t) { return t == DType::f16 || t == DType::bf16; }

Precision contract_for(DType dtype, Precision requested) { return is16(dtype) ? requested : Precision::input; }

std::string describe(Precision p, DType dtype) {
  if (!is16(dtype)) return std::string("every sum in ") + ref::name_of(dtype) + " itself";
  switch (p) {
    case Precision::fused:
      return "logits, softmax and P.V accumulated in f32, P rounded once to the input dtype, out rounded once";
    case Precision::unfused:
      return "logits and probabilities materialised in the input dtype between f32-accumulated products";
    case Precision::input:
      return "every sum accumulated in the input dtype (the loosest contract)";
  }
  return "?";
}

double unit_roundoff(DType t) {
  switch (t) {
    case DType::f32: return 0x1p-24;
    case DType::f64: return 0x1p-53;
    case DType::f16: return 0x1p-11;
    case DType::bf16: return 0x1p-8;
    case DType::ext: return 0x1p-64;
  }
  return 0x1p-24;
}

double smallest_normal(DType t) {
  switch (t) {
    case DType::f32: return std::numeric_limits<float>::min();
    case DType::f64: return std::numeric_limits<double>::min();
    case DType::f16: return 0x1p-14;
    case DType::bf16: return std::numeric_limits<float>::min();
    case DType::ext: return 0;
  }
  return 0;
}

// Half the spacing of t's subnormals: the largest absolute error of
// rounding a value below t's smallest normal.
long double half_subnormal_spacing(DType t) {
  switch (t) {
    case DType::f32: return 0x1p-150L;
    case DType::f64: return 0x1p-1075L;
    case DType::f16: return 0x1p-25;
    case DType::bf16: return 0x1p-134L;
    case DType::ext: return 0;
  }
  return 0;
}

// The dtype a contract accumulates in.
DType accumulator(DType t) { return t == DType::f64 ? DType::f64 : DType::f32; }

LogitError logit_error(Precision contract, int64_t D, DType dtype, double scale, long double L, double K) {
  const double u = unit_roundoff(dtype), ua = unit_roundoff(accumulator(dtype));
  const long double s = std::fabs(static_cast<long double>(scale));
  // The largest error of a logit, e_l (input: K on the whole softmax term,
  // as on the accumulation terms).
  if (contract == Precision::input) return {(D + 2) * u * s * L, K};
  long double el = K * (D + 2) * ua * s * L;
  if (contract == Precision::unfused) el += kRoundingFactor * 3 * u * s * L;
  return {el, 1};
}

void weight_moves(const ref::Tensor& logits, const ref::Tensor& P, int64_t row, int64_t Sk, long double Pmax,
                  const LogitError& le, long double* moves) {
  // Logits perturbed by at most e_l move P_r by at most P_r expm1(2 e_l),
  // and never by more than 1 (where e_l is large, rounding can merge huge
  // logits into ties and a key worth nothing become everything). Past long
  // double's exp range this is taken in logs: log P_r = s_r - max s + log P_max.
  const long double el = le.el;
  long double top = -std::numeric_limits<long double>::infinity();
  for (int64_t r = 0; r < Sk; ++r) top = std::max(top, logits[row + r]);
  const long double growth = std::expm1(std::min<long double>(2 * el, 11000));
  for (int64_t r = 0; r < Sk; ++r) {
    if (2 * el < 11000) {
      moves[r] = std::min<long double>(le.factor * P[row + r] * growth, 1);
    } else {
      const long double lg = logits[row + r] - top + std::log(Pmax) + 2 * el + std::log(le.factor);
      moves[r] = lg >= 0 ? 1 : std::exp(lg);
    }
  }
}

ref::AttentionArgs reference_args(const GuardedCase& g) {
  const Case& c = g.spec();
  return {c.axes, g.view(kRoleQ), g.view(kRoleK), g.view(kRoleV), c.heads, c.scale};
}

Expectation expect(const GuardedCase& g, Precision p, double K) {
  return expect(reference_args(g), g.spec().dtype, p, {}, K);
}

Expectation expect(const ref::AttentionArgs& a, DType dtype, Precision precision, ref::Wrong w, double K) {
  return expect(ref::trace_attention(a, w), a, dtype, precision, w, K);
}

Expectation expect(const ref::AttentionTrace& tr, const ref::AttentionArgs& a, DType dtype, Precision precision,
                   ref::Wrong w, double K) {
  const Precision contract = contract_for(dtype, precision);
  const int64_t N = tr.o.shape[0], H = tr.o.shape[1], Dv = tr.o.shape[2], Sq = tr.o.shape[3];
  const int64_t Sk = tr.P.shape[3], D = tr.q.shape()[2];
  // sum_d |q_d k_rd| for every (group, head, query, key), in double (an
  // upper bound's ingredient: its own rounding, 1e-16 relative, is covered
  // by the safety factors).
  std::vector<double> absdot(static_cast<size_t>(N * H * Sq * Sk));
  {
    const ref::Tensor q = ref::contiguous(tr.q), k = ref::contiguous(tr.k);  // (N, H, D, Sq), (N, H, D, Sk)
    std::vector<double> kd(static_cast<size_t>(D * Sk));
    for (int64_t nh = 0; nh < N * H; ++nh) {
      for (int64_t i = 0; i < D * Sk; ++i) kd[i] = std::fabs(static_cast<double>(k[nh * D * Sk + i]));
      double* out = absdot.data() + nh * Sq * Sk;
      for (int64_t p = 0; p < Sq; ++p)
        for (int64_t d = 0; d < D; ++d) {
          const double x = std::fabs(static_cast<double>(q[(nh * D + d) * Sq + p]));
          const double* kr = kd.data() + d * Sk;
          for (int64_t r = 0; r < Sk; ++r) out[p * Sk + r] += x * kr[r];
        }
    }
  }
  const double u = unit_roundoff(dtype);
  const double ua = unit_roundoff(accumulator(dtype));
  const long double K16 = kRoundingFactor;
  const long double tinyP = half_subnormal_spacing(dtype), tinyA = smallest_normal(accumulator(dtype));
  const long double tinyO = half_subnormal_spacing(dtype);
  const ref::Tensor v = ref::contiguous(tr.v);  // (N, heads, Dv, Sk)
  ref::Tensor bound(tr.o.shape);
  std::vector<long double> moves(static_cast<size_t>(Sk));
  std::vector<double> Pd(static_cast<size_t>(Sk)), moved_d(static_cast<size_t>(Sk));
  std::vector<double> vd(static_cast<size_t>(v.numel()));
  for (int64_t i = 0; i < v.numel(); ++i) vd[i] = static_cast<double>(v[i]);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t p = 0; p < Sq; ++p) {
        const int64_t row = ((n * H + h) * Sq + p) * Sk;
        long double L = 0, Pmax = 0;
        for (int64_t r = 0; r < Sk; ++r) L = std::max<long double>(L, absdot[row + r] * (1 + 0x1p-50)), Pmax = std::max(Pmax, tr.P[row + r]);
        const LogitError le = logit_error(contract, D, dtype, a.scale, L, K);
        weight_moves(tr.logits, tr.P, row, Sk, Pmax, le, moves.data());
        for (int64_t r = 0; r < Sk; ++r) Pd[r] = static_cast<double>(tr.P[row + r]), moved_d[r] = static_cast<double>(moves[r]);
        for (int64_t e = 0; e < Dv; ++e) {
          const int64_t oi = ((n * H + h) * Dv + e) * Sq + p;
          const double* vr = vd.data() + ((n * H + h) * Dv + e) * Sk;
          // The bound's ingredients in double (their own rounding, 1e-16
          // relative, is far inside the safety factors).
          const double od = static_cast<double>(tr.o[oi]);
          double spread_d = 0, mag_d = 0, sum_v_d = 0, moved_s = 0;
          for (int64_t r = 0; r < Sk; ++r) {
            const double x = vr[r], dist = std::fabs(x - od);
            spread_d += Pd[r] * dist;
            mag_d += Pd[r] * std::fabs(x);
            sum_v_d += std::fabs(x);
            moved_s += moved_d[r] * dist;
          }
          const long double o = tr.o[oi];
          const long double slack = 1 + 0x1p-40;
          const long double spread = spread_d * slack, mag = mag_d * slack, sum_v = sum_v_d * slack;
          // |v_r - o| in double is off by at most 2^-53 (|v_r| + |o|) each.
          const long double moved = moved_s * slack + 0x1p-50L * (mag + std::fabs(o));
          if (contract == Precision::input) {
            // Every sum in the input dtype (f32 and f64: the dtype itself).
            bound[oi] = moved + K * (Sk + D + 8) * u * mag + u * std::fabs(o) +
                        K * (Sk + 1) * smallest_normal(dtype);
            continue;
          }
          bound[oi] = moved + K * (Sk + D + 8) * ua * mag +
                      K16 * u * (std::max(mag, spread) + std::fabs(o)) +
                      tinyP * (1 + (contract == Precision::unfused ? 1 : Pmax) * sum_v) +
                      K * (Sk + 1) * tinyA * (1 + Pmax * sum_v) + tinyO;
        }
      }
  return {tr.out, ref::ungroup(bound.view(), a, w)};
}

namespace {

// One operation's result rounded to t.
long double rnd(DType t, long double x) {
  switch (t) {
    case DType::f32: return static_cast<float>(x);
    case DType::f64: return static_cast<double>(x);
    case DType::ext: return x;
    default: return ref::round_to(t, x);
  }
}

}  // namespace

ref::Tensor literal(const ref::AttentionArgs& a, DType dtype, Precision precision) {
  return literal(ref::trace_attention(a), a, dtype, precision);
}

ref::Tensor literal(const ref::AttentionTrace& tr, const ref::AttentionArgs& a, DType dtype, Precision precision) {
  const Precision contract = contract_for(dtype, precision);
  const ref::Tensor q = ref::contiguous(tr.q), k = ref::contiguous(tr.k), v = ref::contiguous(tr.v);
  const int64_t N = tr.o.shape[0], H = tr.o.shape[1], Dv = tr.o.shape[2], Sq = tr.o.shape[3];
  const int64_t Sk = tr.P.shape[3], D = tr.q.shape()[2];
  const DType in = dtype, acc = contract == Precision::input ? dtype : accumulator(dtype);
  auto A = [acc](long double x) { return rnd(acc, x); };
  auto I = [in](long double x) { return rnd(in, x); };
  const long double scale = rnd(accumulator(dtype), a.scale);
  // unfused: q and k each scaled by sqrt(|scale|) in the input dtype, the
  // sign on k (PyTorch's math SDPA).
  const long double root = std::sqrt(std::fabs(scale)), sign = scale < 0 ? -1 : 1;
  std::vector<long double> s(Sk), w(Sk);
  ref::Tensor o(tr.o.shape);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t p = 0; p < Sq; ++p) {
        const int64_t qb = (n * H + h) * D * Sq, kb = (n * H + h) * D * Sk;
        for (int64_t r = 0; r < Sk; ++r) {
          long double dot = 0;
          for (int64_t d = 0; d < D; ++d) {
            long double x = q[qb + d * Sq + p], y = k[kb + d * Sk + r];
            if (contract == Precision::unfused) x = I(x * root), y = I(y * root * sign);
            dot = A(dot + A(x * y));
          }
          s[r] = contract == Precision::unfused ? I(dot) : A(dot * scale);  // input: A is I
        }
        long double m = -std::numeric_limits<long double>::infinity();
        for (long double x : s) m = std::max(m, x);
        long double ell = 0;
        for (int64_t r = 0; r < Sk; ++r) {
          // exp in double, then rounded to the accumulator (f32 and
          // 16-bit; f64 and ext take long double's exp).
          w[r] = A(acc == DType::f32 || is16(acc) ? static_cast<long double>(std::exp(static_cast<double>(s[r] - m)))
                                                  : std::exp(s[r] - m));
          ell = A(ell + w[r]);
        }
        for (int64_t r = 0; r < Sk; ++r) {
          if (contract == Precision::fused) w[r] = I(w[r]);
          if (contract == Precision::unfused) w[r] = I(A(w[r] / ell));
        }
        for (int64_t e = 0; e < Dv; ++e) {
          const int64_t vb = ((n * H + h) * Dv + e) * Sk;
          long double sum = 0;
          for (int64_t r = 0; r < Sk; ++r) sum = A(sum + A(w[r] * v[vb + r]));
          o[((n * H + h) * Dv + e) * Sq + p] = I(contract == Precision::unfused ? sum : A(sum / ell));
        }
      }
  return ref::ungroup(o.view(), a);
}

std::string contract_overflow(const ref::AttentionArgs& a, DType dtype, Precision precision) {
  const Precision contract = contract_for(dtype, precision);
  if (dtype != DType::f16 || contract == Precision::fused) return "";
  const long double limit = 65504 * (1 - 4 * unit_roundoff(dtype));  // rounding on the way keeps a margin
  const ref::AttentionTrace tr = ref::trace_attention(a);
  const ref::Tensor q = ref::contiguous(tr.q), k = ref::contiguous(tr.k), v = ref::contiguous(tr.v);
  const long double scale = std::fabs(static_cast<long double>(a.scale));
  auto largest = [](const ref::Tensor& t) {
    long double m = 0;
    for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::fabs(t[i]));
    return m;
  };
  // |q.k| and the logits at their largest.
  long double dot = 0, logit = 0;
  const int64_t N = tr.P.shape[0], H = tr.P.shape[1], Sq = tr.P.shape[2], Sk = tr.P.shape[3];
  const int64_t D = tr.q.shape()[2], Dv = tr.v.shape()[2];
  for (int64_t nh = 0; nh < N * H; ++nh)
    for (int64_t p = 0; p < Sq; ++p)
      for (int64_t r = 0; r < Sk; ++r) {
        long double x = 0;
        for (int64_t d = 0; d < D; ++d) x += std::fabs(q[(nh * D + d) * Sq + p] * k[(nh * D + d) * Sk + r]);
        dot = std::max(dot, x);
      }
  logit = dot * scale;
  char b[300];
  auto say = [&](const char* what, long double x) {
    std::snprintf(b, sizeof b,
                  "%s reaches %.4Lg, past f16's largest finite value 65504: the %s contract materialises it in "
                  "f16, where it overflows to inf; the case is outside what that contract can compute",
                  what, x, name_of(contract));
    return std::string(b);
  };
  if (contract == Precision::unfused) {
    const long double root = std::sqrt(scale);
    if (largest(q) * root >= limit) return say("q * sqrt(|scale|)", largest(q) * root);
    if (largest(k) * root >= limit) return say("k * sqrt(|scale|)", largest(k) * root);
    if (logit >= limit) return say("|logit|", logit);
    // bmm, then the scale: the unscaled products materialised.
    if (dot >= limit) return say("sum_d |q_d k_d| (before the scale)", dot);
    return "";
  }
  if (dot >= limit) return say("sum_d |q_d k_d|", dot);
  if (logit >= limit) return say("|logit|", logit);
  long double sum_v = 0;
  for (int64_t row = 0; row < N * H * Dv; ++row) {
    long double x = 0;
    for (int64_t r = 0; r < Sk; ++r) x += std::fabs(v[row * Sk + r]);
    sum_v = std::max(sum_v, x);
  }
  if (sum_v >= limit) return say("an unnormalised P.V sum (at most sum_r |v_r|)", sum_v);
  return "";
}

std::string index_text(const std::array<int64_t, 5>& i) {
  return "[" + std::to_string(i[0]) + "," + std::to_string(i[1]) + "," + std::to_string(i[2]) + "," +
         std::to_string(i[3]) + "," + std::to_string(i[4]) + "]";
}

Comparison compare(const ref::Tensor& got, const Expectation& e) {
  Comparison c;
  int64_t flat = 0;
  ref::for_each_index(e.want.shape, [&](std::span<const int64_t> idx) {
    const long double w = e.want[flat], g = got[flat], b = e.bound[flat];
    ++flat;
    const long double err = std::fabs(g - w);
    const bool finite = std::isfinite(g);
    if (finite) {
      c.max_error = std::max(c.max_error, err);
      if (b > 0) c.worst_ratio = std::max(c.worst_ratio, static_cast<double>(err / b));
    }
    if (!finite || err > b) {
      if (c.ok) {
        c.ok = false;
        for (int d = 0; d < 5; ++d) c.first[d] = idx[d];
        c.want = w, c.got = g, c.bound = b;
      }
      ++c.failing;
      if (!finite) c.worst_ratio = std::numeric_limits<double>::infinity();
    }
  });
  return c;
}

}  // namespace attncheck
