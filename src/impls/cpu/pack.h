// Packing: reading a block of a strided view into the kernel's own dense
// layout. Every element is read through the view's strides, exactly once per
// pack, and nothing else is read. The packed values do not depend on the
// layout (only the order of the loads does), which is what makes the result
// bitwise independent of it.
//
// Everything here is instantiated per architecture (the A parameter) and
// inlined into the flattened work item, so that no out-of-line copy compiled
// with one TU's -m flags can be picked by the linker for another's.
#pragma once

#include "plan.h"
#include "storage.h"

#include <algorithm>
#include <cstdint>

namespace attncheck::cpu {

// dst[i * dst_pos + c * dst_ch] = src[pos_off[i] + c * ch_stride] for
// i < npos, c < nch, converted to T. The loops run over 16 x 16 blocks in the
// order that walks the source's smaller stride innermost, so both
// channels-first and channels-last memory are read a cache line at a time.
template <class A, class T, class S>
void gather(T* dst, int64_t dst_pos, int64_t dst_ch, const S* src, const int64_t* pos_off,
            int64_t npos, int64_t ch_stride, int64_t nch) {
  constexpr int64_t kBlock = 16;
  // How far apart consecutive positions lie in memory (a guess from the
  // first two; only the loop order depends on it, never a value).
  const int64_t pos_step = npos > 1 ? std::max<int64_t>(pos_off[1] - pos_off[0], 0) : INT64_MAX;
  const bool channels_inner = ch_stride <= pos_step;
  if (channels_inner && ch_stride == 1 && dst_ch == 1) {
    for (int64_t i = 0; i < npos; ++i) {
      const S* s = src + pos_off[i];
      T* d = dst + i * dst_pos;
      for (int64_t c = 0; c < nch; ++c) d[c] = load_as<T>(s + c);
    }
    return;
  }
  for (int64_t i0 = 0; i0 < npos; i0 += kBlock) {
    const int64_t i1 = std::min(npos, i0 + kBlock);
    for (int64_t c0 = 0; c0 < nch; c0 += kBlock) {
      const int64_t c1 = std::min(nch, c0 + kBlock);
      if (channels_inner) {
        for (int64_t i = i0; i < i1; ++i)
          for (int64_t c = c0; c < c1; ++c)
            dst[i * dst_pos + c * dst_ch] = load_as<T>(src + pos_off[i] + c * ch_stride);
      } else {
        for (int64_t c = c0; c < c1; ++c)
          for (int64_t i = i0; i < i1; ++i)
            dst[i * dst_pos + c * dst_ch] = load_as<T>(src + pos_off[i] + c * ch_stride);
      }
    }
  }
}

// Dispatches gather on the plan's storage type. `first_channel` selects the
// head's channels; `base` is the tensor's data at the group's origin.
template <class A, class T>
void gather_view(T* dst, int64_t dst_pos, int64_t dst_ch, Storage st, const char* base,
                 const int64_t* pos_off, int64_t npos, int64_t ch_stride, int64_t first_channel,
                 int64_t nch) {
  const int64_t off = first_channel * ch_stride;
  switch (st) {
    case Storage::f32:
      gather<A>(dst, dst_pos, dst_ch, reinterpret_cast<const float*>(base) + off, pos_off, npos,
             ch_stride, nch);
      break;
    case Storage::f64:
      gather<A>(dst, dst_pos, dst_ch, reinterpret_cast<const double*>(base) + off, pos_off, npos,
             ch_stride, nch);
      break;
    case Storage::bf16:
      gather<A>(dst, dst_pos, dst_ch, reinterpret_cast<const bf16_t*>(base) + off, pos_off, npos,
             ch_stride, nch);
      break;
    case Storage::f16:
      gather<A>(dst, dst_pos, dst_ch, reinterpret_cast<const f16_t*>(base) + off, pos_off, npos,
             ch_stride, nch);
      break;
  }
}

inline int64_t storage_size(Storage st) {
  return st == Storage::f64 ? 8 : st == Storage::f32 ? 4 : 2;
}

}  // namespace attncheck::cpu
