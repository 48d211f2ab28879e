/* attncheck plugin ABI, version 1 (with its optional backward table).
 *
 * This header is the public contract of attncheck, exactly as
 * shared/spec/plugin-abi.md states it: what a third party implements so that
 * `attncheck verify` can check it. Plain C, includable from C and C++. It may
 * only grow in a later ABI version.
 *
 * The operation: attention over video tensors stored logically as
 * (B, C, T, H, W). For every group (SPATIAL: (b, t); TEMPORAL: (b, h, w);
 * SPATIOTEMPORAL: (b)), head g, query position p and key position r:
 *
 *     logit[p, r] = scale * sum_{d < D} q[g*D + d, p] * k[g*D + d, r]
 *     P[p, r]     = exp(logit[p, r]) / sum_{r'} exp(logit[p, r'])
 *     out[g*Dv + e, p] = sum_r P[p, r] * v[g*Dv + e, r]
 *
 * with D = C / heads and Dv = Cv / heads (channels head-major). Positions are
 * numbered row-major over the attended axes. Element (i0..i4) of a tensor
 * lives at (char*)data + byte_offset + sizeof(element) * sum_j i_j*strides[j];
 * strides == NULL means compact row-major; strides are never negative; q, k
 * and v may have zero strides and may share memory; out never does.
 */
#ifndef ATTNCHECK_PLUGIN_H
#define ATTNCHECK_PLUGIN_H

#include <dlpack/dlpack.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ATTNCHECK_ABI_VERSION 1

typedef enum attncheck_axes {
  ATTNCHECK_SPATIAL = 0,
  ATTNCHECK_TEMPORAL = 1,
  ATTNCHECK_SPATIOTEMPORAL = 2
} attncheck_axes;

typedef enum attncheck_status {
  ATTNCHECK_OK = 0,          /* out holds the result                                   */
  ATTNCHECK_UNSUPPORTED = 1, /* declined (dtype, axes, layout, size): not a failure    */
  ATTNCHECK_FAILED = 2       /* the implementation detected an error; message says why */
} attncheck_status;

typedef struct attncheck_attention {
  attncheck_axes axes;
  const DLTensor* q;
  const DLTensor* k;
  const DLTensor* v;
  DLTensor* out;   /* allocated by the caller, written by the implementation */
  int64_t heads;
  double scale;
} attncheck_attention;

typedef struct attncheck_impl {
  const char* name;          /* unique within its library: [a-z0-9_.-]+        */
  DLDeviceType device_type;  /* kDLCPU or kDLCUDA: where the caller puts tensors */
  attncheck_status (*attention)(const attncheck_attention* call,
                                char* message, size_t message_size);
} attncheck_impl;

/* The one symbol a plugin library exports (extern "C" from C++). It returns an
   array of *count implementations that stays valid while the library is
   loaded, or NULL when it cannot serve abi_version. */
const attncheck_impl* attncheck_impls(int abi_version, size_t* count);

/* The backward pass (optional, additive): a library that also computes
 * gradients exports attncheck_backward_impls as well; one without it is a
 * forward-only plugin. With P, groups, heads and positions as above, for
 * every group and head g:
 *
 *     dv[g*Dv + e, r] = sum_p P[p, r] * dout[g*Dv + e, p]
 *     dP[p, r]        = sum_{e < Dv} dout[g*Dv + e, p] * v[g*Dv + e, r]
 *     dS[p, r]        = P[p, r] * (dP[p, r] - sum_{r'} P[p, r'] * dP[p, r'])
 *     dq[g*D + d, p]  = scale * sum_r dS[p, r] * k[g*D + d, r]
 *     dk[g*D + d, r]  = scale * sum_p dS[p, r] * q[g*D + d, p]
 *
 * Gradients are with respect to each logical tensor (never reduced over a
 * broadcast or shared input). dout follows the input rules (any strides, zero
 * allowed); dq, dk and dv follow out's (no zero stride, no overlap with each
 * other or with any input). */
#define ATTNCHECK_BACKWARD_ABI_VERSION 1

typedef struct attncheck_attention_backward {
  attncheck_axes axes;
  const DLTensor* q;
  const DLTensor* k;
  const DLTensor* v;
  const DLTensor* out;   /* this implementation's forward output for q, k, v   */
  const DLTensor* dout;  /* dL/d(out), shaped like out                          */
  DLTensor* dq;          /* shaped like q: allocated by the caller, overwritten */
  DLTensor* dk;          /* shaped like k */
  DLTensor* dv;          /* shaped like v */
  int64_t heads;
  double scale;
} attncheck_attention_backward;

typedef struct attncheck_backward_impl {
  const char* name;          /* the forward implementation it belongs to (same library) */
  DLDeviceType device_type;
  attncheck_status (*backward)(const attncheck_attention_backward* call,
                               char* message, size_t message_size);
} attncheck_backward_impl;

const attncheck_backward_impl* attncheck_backward_impls(int abi_version, size_t* count);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* ATTNCHECK_PLUGIN_H */
