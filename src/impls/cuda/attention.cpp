#include "cuda_attention.h"

#include "plan.h"

#include <attncheck/validate.h>

#include <cuda_runtime_api.h>

#include <array>
#include <climits>
#include <cmath>
#include <cstdint>
#include <string>

namespace attncheck::cuda {
namespace {

// The innermost attended axis with more than one position (the stride that
// separates neighbouring positions of a tile most of the time).
int64_t position_stride(attncheck_axes axes, const std::array<int64_t, 5>& s, int64_t T, int64_t H, int64_t W) {
  switch (axes) {
    case ATTNCHECK_SPATIAL: return W > 1 ? s[4] : s[3];
    case ATTNCHECK_TEMPORAL: return s[2];
    case ATTNCHECK_SPATIOTEMPORAL: return W > 1 ? s[4] : H > 1 ? s[3] : (T > 1 ? s[2] : s[4]);
  }
  return s[4];
}

Operand operand(const CallShape& s, const DLTensor* t, int which) {
  Operand o;
  const bool kv = which == 1 || which == 2;
  o.base = static_cast<const char*>(t->data) + t->byte_offset;
  for (int d = 0; d < 5; ++d) o.s[d] = s.strides[which][d];
  o.T = kv ? s.Tk : s.Tq;
  o.H = kv ? s.Hk : s.Hq;
  o.W = kv ? s.Wk : s.Wq;
  // Walk positions fastest when they are the nearer neighbours in memory
  // (channels-first layouts); channels otherwise (channels-last).
  const int64_t ps = position_stride(s.axes, s.strides[which], o.T, o.H, o.W);
  o.rows_fast = ps != 0 && (o.s[1] == 0 || ps <= o.s[1]);
  return o;
}

}  // namespace

attncheck_status plan(const attncheck_attention* call, Params* p, std::string* why) {
  CallShape s;
  if (!validate_call(call, &s, why)) return ATTNCHECK_FAILED;
  const DLTensor* const ts[4] = {call->q, call->k, call->v, call->out};
  for (const DLTensor* t : ts)
    if (t->device.device_type != kDLCUDA) {
      *why = "cuda: tensors must be on a CUDA device (device type " + std::to_string(t->device.device_type) +
             " given)";
      return ATTNCHECK_UNSUPPORTED;
    }
  const int64_t elem = dtype_size(s.dtype);
  if (s.dtype.code == kDLFloat && s.dtype.bits == 64) {
    *why = "cuda: float64 is not served (f32, and f16/bf16 with f32 accumulation)";
    return ATTNCHECK_UNSUPPORTED;
  }
  const char* names[4] = {"q", "k", "v", "out"};
  for (int i = 0; i < 4; ++i)
    if ((reinterpret_cast<uintptr_t>(ts[i]->data) + ts[i]->byte_offset) % static_cast<uint64_t>(elem) != 0) {
      *why = std::string("cuda: ") + names[i] + "'s elements are not aligned to the element size";
      return ATTNCHECK_UNSUPPORTED;
    }
  // Positions and channels are int inside a tile, int64 everywhere else.
  if (s.Sq > INT_MAX || s.Sk > INT_MAX || s.D > INT_MAX || s.Dv > INT_MAX) {
    *why = "cuda: more than 2^31-1 positions or channels per head";
    return ATTNCHECK_UNSUPPORTED;
  }
  p->axes = s.axes;
  p->elem = s.dtype.code == kDLBfloat ? Elem::bf16 : s.dtype.bits == 16 ? Elem::f16 : Elem::f32;
  p->q = operand(s, call->q, 0);
  p->k = operand(s, call->k, 1);
  p->v = operand(s, call->v, 2);
  p->out = operand(s, call->out, 3);
  p->groups = s.groups, p->heads = s.heads, p->D = s.D, p->Dv = s.Dv, p->Sq = s.Sq, p->Sk = s.Sk;
  p->scale = static_cast<float>(call->scale);
  if (!std::isfinite(p->scale)) {
    *why = "cuda: scale " + std::to_string(call->scale) + " overflows float32";
    return ATTNCHECK_UNSUPPORTED;
  }
  return ATTNCHECK_OK;
}

attncheck_status attention(const attncheck_attention* call, char* message, size_t message_size) {
  Params p;
  std::string why;
  const attncheck_status st = plan(call, &p, &why);
  if (st != ATTNCHECK_OK) {
    write_message(message, message_size, why);
    return st;
  }
  auto failed = [&](const char* what, cudaError_t e) {
    write_message(message, message_size,
                  std::string("cuda: ") + what + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
    return ATTNCHECK_FAILED;
  };
  int previous = 0;
  if (const cudaError_t e = cudaGetDevice(&previous); e != cudaSuccess) return failed("no usable device", e);
  const int device = call->q->device.device_id;
  if (device != previous)
    if (const cudaError_t e = cudaSetDevice(device); e != cudaSuccess) return failed("cudaSetDevice", e);
  cudaError_t e = launch(p, nullptr);
  const char* what = "launch";
  if (e == cudaSuccess) {
    e = cudaStreamSynchronize(nullptr);
    what = "kernel";
  }
  if (device != previous) cudaSetDevice(previous);
  return e == cudaSuccess ? ATTNCHECK_OK : failed(what, e);
}

}  // namespace attncheck::cuda
