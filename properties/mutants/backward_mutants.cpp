// Backward mutants: a plain, correct float32 backward of the spec (the
// forward is the skeleton's, correct) into which one realistic bug of the
// backward pass is planted per implementation. Each is pinned in
// properties/CMakeLists.txt to what must catch it.
#include "skeleton.h"

namespace {

using mutant::Strided;

enum class BackwardBug {
  none,                   // must pass verify --strict
  dout_uses_out_strides,  // flash-attention #355: dout read with out's strides
  dout_assumed_packed,    // flash-attention #325: an expanded (zero-stride) dout read as packed
  dv_uses_k_strides,      // flash-attention PR #818: dV written with K's layout
  no_rowsum_term,         // dS = P * dP: the sum_r P dP term dropped
  dk_missing_scale,       // dk without the scale
  dk_ds_transposed,       // dk built from dS transposed
  dq_accumulates,         // dq += into memory it did not zero
};

Strided strided(const DLTensor* t, const DLTensor* strides_from, bool packed) {
  Strided w{static_cast<char*>(t->data) + t->byte_offset, {}};
  int64_t compact[5];
  mutant::packed_strides(t, compact);
  for (int d = 0; d < 5; ++d)
    w.stride[d] = strides_from->strides && !packed ? strides_from->strides[d] : compact[d];
  return w;
}

template <BackwardBug bug>
attncheck_status backward(const attncheck_attention_backward* call, char* message, size_t size) {
  const DLTensor *q = call->q, *k = call->k, *v = call->v, *dout = call->dout;
  for (const DLTensor* t : {q, k, v, call->out, dout, static_cast<const DLTensor*>(call->dq),
                            static_cast<const DLTensor*>(call->dk), static_cast<const DLTensor*>(call->dv)})
    if (t->dtype.code != kDLFloat || t->dtype.bits != 32 || t->dtype.lanes != 1) {
      std::snprintf(message, size, "float32 only");
      return ATTNCHECK_UNSUPPORTED;
    }
  const Strided Q = strided(q, q, false), K = strided(k, k, false), V = strided(v, v, false);
  const Strided G = strided(dout, bug == BackwardBug::dout_uses_out_strides ? call->out : dout,
                            bug == BackwardBug::dout_assumed_packed);
  const Strided dQ = strided(call->dq, call->dq, false), dK = strided(call->dk, call->dk, false);
  const Strided dV = strided(call->dv, bug == BackwardBug::dv_uses_k_strides ? k : call->dv, false);
  const attncheck::Geometry qg = attncheck::geometry_of(call->axes, q->shape),
                            kg = attncheck::geometry_of(call->axes, k->shape);
  const int64_t heads = call->heads, D = q->shape[1] / heads, Dv = v->shape[1] / heads;
  const int64_t groups = qg.groups(q->shape[0]), Sq = qg.positions(), Sk = kg.positions();
  const float scale = static_cast<float>(call->scale);
  auto at = [](const Strided& s, const attncheck::Index5& i) {
    const int64_t idx[5] = {i[0], i[1], i[2], i[3], i[4]};
    return s.at(idx);
  };
  std::vector<float> P(static_cast<size_t>(Sq * Sk)), dS(static_cast<size_t>(Sq * Sk));
  for (int64_t n = 0; n < groups; ++n)
    for (int64_t h = 0; h < heads; ++h) {
      // P, then dP and dS, row by row.
      for (int64_t p = 0; p < Sq; ++p) {
        float m = -INFINITY, sum = 0;
        for (int64_t r = 0; r < Sk; ++r) {
          float dot = 0;
          for (int64_t d = 0; d < D; ++d)
            dot += *at(Q, qg.index(n, h * D + d, p)) * *at(K, kg.index(n, h * D + d, r));
          P[p * Sk + r] = scale * dot;
          m = std::fmax(m, scale * dot);
        }
        for (int64_t r = 0; r < Sk; ++r) sum += P[p * Sk + r] = std::exp(P[p * Sk + r] - m);
        float delta = 0;
        for (int64_t r = 0; r < Sk; ++r) {
          P[p * Sk + r] /= sum;
          float dP = 0;
          for (int64_t e = 0; e < Dv; ++e)
            dP += *at(G, qg.index(n, h * Dv + e, p)) * *at(V, kg.index(n, h * Dv + e, r));
          dS[p * Sk + r] = dP;
          delta += P[p * Sk + r] * dP;
        }
        if (bug == BackwardBug::no_rowsum_term) delta = 0;
        for (int64_t r = 0; r < Sk; ++r) dS[p * Sk + r] = P[p * Sk + r] * (dS[p * Sk + r] - delta);
      }
      for (int64_t d = 0; d < D; ++d) {
        for (int64_t p = 0; p < Sq; ++p) {
          float acc = 0;
          for (int64_t r = 0; r < Sk; ++r) acc += dS[p * Sk + r] * *at(K, kg.index(n, h * D + d, r));
          float* out = at(dQ, qg.index(n, h * D + d, p));
          *out = bug == BackwardBug::dq_accumulates ? *out + scale * acc : scale * acc;
        }
        for (int64_t r = 0; r < Sk; ++r) {
          float acc = 0;
          for (int64_t p = 0; p < Sq; ++p) {
            // Transposed: dS[r, p] where it exists (self-attention's square
            // case), the rest left out.
            const float s = bug != BackwardBug::dk_ds_transposed ? dS[p * Sk + r]
                            : r < Sq && p < Sk                   ? dS[r * Sk + p]
                                                                 : 0.0f;
            acc += s * *at(Q, qg.index(n, h * D + d, p));
          }
          *at(dK, kg.index(n, h * D + d, r)) = bug == BackwardBug::dk_missing_scale ? acc : scale * acc;
        }
      }
      for (int64_t e = 0; e < Dv; ++e)
        for (int64_t r = 0; r < Sk; ++r) {
          float acc = 0;
          for (int64_t p = 0; p < Sq; ++p) acc += P[p * Sk + r] * *at(G, qg.index(n, h * Dv + e, p));
          *at(dV, kg.index(n, h * Dv + e, r)) = acc;
        }
    }
  return ATTNCHECK_OK;
}

#define BACKWARD_MUTANT(name) {#name, kDLCPU, &mutant::attention<mutant::Bug::none>}
#define BACKWARD_ENTRY(name) {#name, kDLCPU, &backward<BackwardBug::name>}

const attncheck_impl kImpls[] = {
    BACKWARD_MUTANT(none),           BACKWARD_MUTANT(dout_uses_out_strides), BACKWARD_MUTANT(dout_assumed_packed),
    BACKWARD_MUTANT(dv_uses_k_strides), BACKWARD_MUTANT(no_rowsum_term),     BACKWARD_MUTANT(dk_missing_scale),
    BACKWARD_MUTANT(dk_ds_transposed),  BACKWARD_MUTANT(dq_accumulates),
};
const attncheck_backward_impl kBackward[] = {
    BACKWARD_ENTRY(none),           BACKWARD_ENTRY(dout_uses_out_strides), BACKWARD_ENTRY(dout_assumed_packed),
    BACKWARD_ENTRY(dv_uses_k_strides), BACKWARD_ENTRY(no_rowsum_term),     BACKWARD_ENTRY(dk_missing_scale),
    BACKWARD_ENTRY(dk_ds_transposed),  BACKWARD_ENTRY(dq_accumulates),
};

}  // namespace

extern "C" const attncheck_impl* attncheck_impls(int abi_version, size_t* count) {
  if (abi_version != ATTNCHECK_ABI_VERSION) return nullptr;
  *count = sizeof kImpls / sizeof kImpls[0];
  return kImpls;
}

extern "C" const attncheck_backward_impl* attncheck_backward_impls(int abi_version, size_t* count) {
  if (abi_version != ATTNCHECK_BACKWARD_ABI_VERSION) return nullptr;
  *count = sizeof kBackward / sizeof kBackward[0];
  return kBackward;
}
