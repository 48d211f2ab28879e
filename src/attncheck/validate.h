// Validation of an attention call against the ABI's contract.
//
// Every entry point that takes an attncheck_attention (the reference_f32 and
// cpu implementations, the checker, the fuzz targets) calls validate_call
// first, so malformed input is rejected with one line naming the tensor and
// the field, before any element is read.
#pragma once

#include <attncheck/plugin.h>

#include <array>
#include <cstdint>
#include <string>

namespace attncheck {

// The sizes of a call, derived from its tensors once they are known to agree.
struct CallShape {
  attncheck_axes axes = ATTNCHECK_SPATIAL;
  int64_t B = 0, C = 0, Cv = 0, heads = 0, D = 0, Dv = 0;
  int64_t Tq = 0, Hq = 0, Wq = 0;  // query (and out) frame count and frame size
  int64_t Tk = 0, Hk = 0, Wk = 0;  // key (and value) frame count and frame size
  int64_t groups = 0;              // B*T, B*H*W or B
  int64_t Sq = 0, Sk = 0;          // attended positions per group
  DLDataType dtype{};              // shared by q, k, v and out
  // Effective strides in elements (the compact ones when DLTensor::strides is
  // NULL), in (B, C, T, H, W) order, for q, k, v, out.
  std::array<std::array<int64_t, 5>, 4> strides{};
};

// Element size in bytes of a supported dtype (f32, f64, f16, bf16, one lane),
// or 0 when the dtype is not one of them.
int64_t dtype_size(DLDataType dtype);

// Short name of a dtype: "f32", "f64", "f16", "bf16", or "?" otherwise.
const char* dtype_name(DLDataType dtype);

// Checks a call: non-null pointers, ndim 5, sizes >= 1, strides >= 0 (and not
// 0 for out), byte extents that fit in int64, one supported dtype, heads
// dividing C and Cv, shapes agreeing for the call's axes, a finite scale.
// On success fills *shape (if non-null) and returns true; otherwise writes a
// one-line message to *error (if non-null) and returns false. Reads no
// element.
bool validate_call(const attncheck_attention* call, CallShape* shape,
                   std::string* error);

// The sizes of a backward call: the forward's, plus the effective strides of
// the gradient tensors, in (B, C, T, H, W) order: dout, dq, dk, dv.
struct BackwardCallShape {
  CallShape forward;
  std::array<std::array<int64_t, 5>, 4> grad_strides{};
};
enum BackwardTensor { kDout = 0, kDq = 1, kDk = 2, kDv = 3 };

// Checks a backward call: q, k, v, out as validate_call checks them; dout
// shaped like out, dq like q, dk like k, dv like v, each passing the same
// per-tensor checks (dout may have zero strides, dq, dk and dv may not), all
// of one dtype and device; and dq, dk and dv sharing no byte with each other
// or with q, k, v, out or dout. The overlap test is exact: disjoint byte
// extents pass at once; intersecting ones are decided element by element
// (addresses only, no element is read), and a view too large for that
// (over 2^24 distinct addresses) is given the benefit of the doubt. Fills
// *shape on success; otherwise writes one line to *error.
bool validate_backward_call(const attncheck_attention_backward* call, BackwardCallShape* shape,
                            std::string* error);

// Copies a message into an implementation's message buffer (NUL-terminated,
// truncated to fit; nothing when buffer is null or size is 0).
void write_message(char* buffer, size_t size, const std::string& text);

}  // namespace attncheck
