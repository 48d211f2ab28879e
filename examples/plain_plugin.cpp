// A small, correct third-party plugin written from the spec
// (shared/spec/plugin-abi.md), with the installed <attncheck/geometry.h> for
// the spec's numbering of groups and positions: float32 attention with plain
// loops that honours every stride and the byte offset. Build:
//   g++ -std=c++17 -O2 -shared -fPIC -I<prefix>/include plain_plugin.cpp -o plain_plugin.so
// and check it:  attncheck verify ./plain_plugin.so
//
// Compile with -DATTNBLOCK3D_LEGACY to get the seed's bug instead: the
// unfixed Open-Sora-Plan AttnBlock3D core, which reshapes (b, c, t, h, w) to
// (b*t, c, h*w) without first permuting t next to b.
#include <attncheck/geometry.h>
#include <attncheck/plugin.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

namespace {

struct Tensor {
  const DLTensor* t;
  int64_t stride[5];
  float* at(const int64_t i[5]) const {
    int64_t off = 0;
    for (int d = 0; d < 5; ++d) off += i[d] * stride[d];
    return reinterpret_cast<float*>(static_cast<char*>(t->data) + t->byte_offset) + off;
  }
};

Tensor wrap(const DLTensor* t) {
  Tensor w{t, {}};
  int64_t s = 1;
  for (int d = 4; d >= 0; --d) {
    w.stride[d] = t->strides ? t->strides[d] : s;
    s *= t->shape[d];
  }
  return w;
}

// The (b, c, t, h, w) index of channel c at position p of group n. With
// legacy, the group and position come from reshape(B*T, C, H*W) of the
// packed logical order, as the unfixed code does (spatial only).
void index_of(const DLTensor* t, attncheck_axes axes, int64_t n, int64_t c, int64_t p, bool legacy,
              int64_t out[5]) {
  const attncheck::Index5 at = legacy && axes == ATTNCHECK_SPATIAL
                                   ? attncheck::legacy_spatial_index(t->shape, n, c, p)
                                   : attncheck::geometry_of(axes, t->shape).index(n, c, p);
  for (int d = 0; d < 5; ++d) out[d] = at[d];
}

attncheck_status attention(const attncheck_attention* call, char* message, size_t size) {
  const DLTensor *q = call->q, *k = call->k, *v = call->v, *o = call->out;
  for (const DLTensor* t : {q, k, v, o})
    if (t->dtype.code != kDLFloat || t->dtype.bits != 32 || t->dtype.lanes != 1) {
      std::snprintf(message, size, "float32 only");
      return ATTNCHECK_UNSUPPORTED;
    }
#ifdef ATTNBLOCK3D_LEGACY
  const bool legacy = true;
#else
  const bool legacy = false;
#endif
  const Tensor Q = wrap(q), K = wrap(k), V = wrap(v), O = wrap(o);
  const int64_t heads = call->heads, D = q->shape[1] / heads, Dv = v->shape[1] / heads;
  const attncheck::Geometry gq = attncheck::geometry_of(call->axes, q->shape);
  const int64_t groups = gq.groups(q->shape[0]), Sq = gq.positions();
  const int64_t Sk = attncheck::geometry_of(call->axes, k->shape).positions();
  std::vector<float> P(Sk);
  int64_t i[5];
  for (int64_t n = 0; n < groups; ++n)
    for (int64_t g = 0; g < heads; ++g)
      for (int64_t p = 0; p < Sq; ++p) {
        float m = -INFINITY;
        for (int64_t r = 0; r < Sk; ++r) {
          float dot = 0;
          for (int64_t d = 0; d < D; ++d) {
            index_of(q, call->axes, n, g * D + d, p, legacy, i);
            const float qv = *Q.at(i);
            index_of(k, call->axes, n, g * D + d, r, legacy, i);
            dot += qv * *K.at(i);
          }
          P[r] = static_cast<float>(call->scale) * dot;
          m = std::fmax(m, P[r]);
        }
        float sum = 0;
        for (int64_t r = 0; r < Sk; ++r) sum += P[r] = std::exp(P[r] - m);
        for (int64_t e = 0; e < Dv; ++e) {
          float acc = 0;
          for (int64_t r = 0; r < Sk; ++r) {
            index_of(v, call->axes, n, g * Dv + e, r, legacy, i);
            acc += P[r] * *V.at(i);
          }
          index_of(o, call->axes, n, g * Dv + e, p, legacy, i);
          *O.at(i) = acc / sum;
        }
      }
  return ATTNCHECK_OK;
}

#ifdef ATTNBLOCK3D_LEGACY
const attncheck_impl kImpls[] = {{"attnblock3d_legacy", kDLCPU, attention}};
#else
const attncheck_impl kImpls[] = {{"plain", kDLCPU, attention}};
#endif

}  // namespace

extern "C" const attncheck_impl* attncheck_impls(int abi_version, size_t* count) {
  if (abi_version != ATTNCHECK_ABI_VERSION) return nullptr;
  *count = 1;
  return kImpls;
}
