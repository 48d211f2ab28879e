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
#include <type_traits>

#if defined(__AVX__)
#include <immintrin.h>
#endif
#include <cstdint>

namespace attncheck::cpu {

#if defined(__AVX__)
// In-register transpose of an 8 x 8 float block: r[i][j] <- r[j][i].
inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int h = 0; h < 2; ++h) {
    u[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}
#endif

// One side of a 2-D copy: element (i, c) (i a position, c a channel) lies
// at base[pos(i) + c * ch], pos(i) = off ? off[i] : i * pos_stride.
template <class E>
struct Side {
  E* base;
  const int64_t* off;
  int64_t pos_stride;
  int64_t ch;
  int64_t pos(int64_t i) const { return off ? off[i] : i * pos_stride; }
  // Whether positions i0 .. i0+7 lie one element apart.
  bool unit8(int64_t i0) const {
    if (!off) return pos_stride == 1;
    for (int t = 1; t < 8; ++t)
      if (off[i0 + t] != off[i0] + t) return false;
    return true;
  }
};

// dst(i, c) = src(i, c) for i < npos, c < nch, converted. Every element of
// both views is touched exactly once and nothing else is. For float -> float
// with unit strides it runs on vectors, walking the source along its unit
// stride so that the hardware prefetcher follows it: rows copied straight
// where both sides share the unit dimension, 8 x 8 blocks transposed in
// registers where they differ. Anything else (other types, zero or large
// strides, blocks that straddle padding) is scalar.
template <class A, class T, class S>
ATTNCHECK_CPU_NOINLINE void copy2d(Side<T> dst, Side<const S> src, int64_t npos, int64_t nch) {
  auto scalar = [&](int64_t i0, int64_t i1, int64_t c0, int64_t c1) {
    if (src.ch <= (npos > 1 ? src.pos(1) - src.pos(0) : INT64_MAX)) {
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t c = c0; c < c1; ++c)
          dst.base[dst.pos(i) + c * dst.ch] = convert<T>(src.base[src.pos(i) + c * src.ch]);
    } else {
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t i = i0; i < i1; ++i)
          dst.base[dst.pos(i) + c * dst.ch] = convert<T>(src.base[src.pos(i) + c * src.ch]);
    }
  };
#if defined(__AVX__)
  if constexpr (std::is_same_v<T, float> && std::is_same_v<S, float>) {
    const bool src_pos_unit = npos >= 8 && src.unit8(0);
    const bool dst_pos_unit = npos >= 8 && dst.unit8(0);
    const int64_t np8 = npos / 8 * 8, nc8 = nch / 8 * 8;
    if (src.ch == 1 && dst.ch == 1) {  // channels contiguous on both sides
      for (int64_t i = 0; i < npos; ++i) {
        const float* s = src.base + src.pos(i);
        float* d = dst.base + dst.pos(i);
        int64_t c = 0;
        for (; c + 8 <= nch; c += 8) _mm256_storeu_ps(d + c, _mm256_loadu_ps(s + c));
        for (; c < nch; ++c) d[c] = s[c];
      }
      return;
    }
    if (src_pos_unit && dst_pos_unit) {  // positions contiguous on both sides
      // Runs of positions contiguous on both sides, found once for all
      // channels; each channel is then a few straight copies.
      int64_t runs[64][2];
      int nruns = 0;
      bool fits = true;
      for (int64_t i = 0; i < npos && fits;) {
        int64_t j = i + 1;
        while (j < npos && src.pos(j) == src.pos(i) + (j - i) && dst.pos(j) == dst.pos(i) + (j - i)) ++j;
        if (nruns == 64) {
          fits = false;
        } else {
          runs[nruns][0] = i, runs[nruns][1] = j - i;
          ++nruns;
        }
        i = j;
      }
      if (fits) {
        constexpr int64_t kAhead = 4;
        for (int64_t c = 0; c < nch; ++c) {
          // A later channel's runs, ahead of the hardware prefetcher (each
          // channel's runs are short streams far apart).
          if (c + kAhead < nch)
            for (int r = 0; r < nruns; ++r)
              for (int64_t k = 0; k < runs[r][1]; k += 16)
                _mm_prefetch(reinterpret_cast<const char*>(src.base + src.pos(runs[r][0]) + k + (c + kAhead) * src.ch),
                             _MM_HINT_T0);
          for (int r = 0; r < nruns; ++r) {
            const float* sp = src.base + src.pos(runs[r][0]) + c * src.ch;
            float* dp = dst.base + dst.pos(runs[r][0]) + c * dst.ch;
            const int64_t n = runs[r][1];
            int64_t k = 0;
            for (; k + 8 <= n; k += 8) _mm256_storeu_ps(dp + k, _mm256_loadu_ps(sp + k));
            for (; k < n; ++k) dp[k] = sp[k];
          }
        }
        return;
      }
      for (int64_t c = 0; c < nch; ++c) {
        for (int64_t i = 0; i < np8; i += 8) {
          if (src.unit8(i) && dst.unit8(i))
            _mm256_storeu_ps(dst.base + dst.pos(i) + c * dst.ch,
                             _mm256_loadu_ps(src.base + src.pos(i) + c * src.ch));
          else
            scalar(i, i + 8, c, c + 1);
        }
        scalar(np8, npos, c, c + 1);
      }
      return;
    }
    // The two transposing cases. The loops walk the caller's tensor (src
    // when gathering, dst when scattering) along its unit stride, 8 rows at
    // a time, and prefetch the next 8 rows ahead of the hardware.
    const bool transpose_a = src.ch == 1 && dst_pos_unit;  // src rows of channels
    const bool transpose_b = src_pos_unit && dst.ch == 1;  // src rows of positions
    if (transpose_a || transpose_b) {
      // Which 8-position blocks are contiguous, found once for all channels.
      constexpr int64_t kMaxBlocks = 512;
      bool unit[kMaxBlocks];
      const int64_t nb = std::min(np8 / 8, kMaxBlocks);
      for (int64_t b = 0; b < nb; ++b) unit[b] = transpose_a ? dst.unit8(b * 8) : src.unit8(b * 8);
      auto is_unit = [&](int64_t i) {
        return i / 8 < nb ? unit[i / 8] : transpose_a ? dst.unit8(i) : src.unit8(i);
      };
      auto block = [&](int64_t i, int64_t c) {
        __m256 r[8];
        if (!is_unit(i)) {
          scalar(i, i + 8, c, c + 8);
        } else if (transpose_a) {
          for (int t = 0; t < 8; ++t) r[t] = _mm256_loadu_ps(src.base + src.pos(i + t) + c);
          transpose8(r);
          for (int t = 0; t < 8; ++t) _mm256_storeu_ps(dst.base + dst.pos(i) + (c + t) * dst.ch, r[t]);
        } else {
          for (int t = 0; t < 8; ++t) r[t] = _mm256_loadu_ps(src.base + src.pos(i) + (c + t) * src.ch);
          transpose8(r);
          for (int t = 0; t < 8; ++t) _mm256_storeu_ps(dst.base + dst.pos(i + t) + c, r[t]);
        }
      };
      // The caller's tensor: the one whose offsets come from an array.
      const bool user_is_src = src.off != nullptr;
      // Along the user tensor's unit stride: channels in transpose_a when
      // gathering, positions otherwise.
      const bool channels_inner = transpose_a == user_is_src;
      if (channels_inner) {
        for (int64_t i = 0; i < np8; i += 8) {
          if (i + 8 < np8)
            for (int t = 0; t < 8; ++t)
              _mm_prefetch(user_is_src ? reinterpret_cast<const char*>(src.base + src.pos(i + 8 + t))
                                       : reinterpret_cast<const char*>(dst.base + dst.pos(i + 8 + t)),
                           _MM_HINT_T0);
          for (int64_t c = 0; c < nc8; c += 8) block(i, c);
          scalar(i, i + 8, nc8, nch);
        }
        scalar(np8, npos, 0, nch);
      } else {
        for (int64_t c = 0; c < nc8; c += 8) {
          if (c + 8 < nc8)
            for (int t = 0; t < 8; ++t)
              _mm_prefetch(user_is_src ? reinterpret_cast<const char*>(src.base + src.pos(0) + (c + 8 + t) * src.ch)
                                       : reinterpret_cast<const char*>(dst.base + dst.pos(0) + (c + 8 + t) * dst.ch),
                           _MM_HINT_T0);
          for (int64_t i = 0; i < np8; i += 8) block(i, c);
          scalar(np8, npos, c, c + 8);
        }
        scalar(0, npos, nc8, nch);
      }
      return;
    }
  }
#endif
  scalar(0, npos, 0, nch);
}

// dst[i * dst_pos + c * dst_ch] = src[pos_off[i] + c * ch_stride]: a strided
// view into a dense tile.
template <class A, class T, class S>
void gather(T* dst, int64_t dst_pos, int64_t dst_ch, const S* src, const int64_t* pos_off,
            int64_t npos, int64_t ch_stride, int64_t nch) {
  copy2d<A>(Side<T>{dst, nullptr, dst_pos, dst_ch}, Side<const S>{src, pos_off, 0, ch_stride}, npos,
            nch);
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

// Writes a dense tile (element (i, c) at src[i * src_pos + c * src_ch]) into
// `nch` channels of a strided view (tensor data at base, positions at
// pos_off[i], first channel first_channel): only those elements are written.
template <class A, class T>
void scatter_view(Storage st, char* base, const int64_t* pos_off, int64_t npos, int64_t ch_stride,
                  int64_t first_channel, int64_t nch, const T* src, int64_t src_pos, int64_t src_ch) {
  const int64_t off = first_channel * ch_stride;
  auto go = [&](auto* typed) {
    using S = std::remove_pointer_t<decltype(typed)>;
    copy2d<A>(Side<S>{typed + off, pos_off, 0, ch_stride}, Side<const T>{src, nullptr, src_pos, src_ch},
              npos, nch);
  };
  switch (st) {
    case Storage::f32:
      go(reinterpret_cast<float*>(base));
      break;
    case Storage::f64:
      go(reinterpret_cast<double*>(base));
      break;
    case Storage::bf16:
      go(reinterpret_cast<bf16_t*>(base));
      break;
    case Storage::f16:
      go(reinterpret_cast<f16_t*>(base));
      break;
  }
}

inline int64_t storage_size(Storage st) {
  return st == Storage::f64 ? 8 : st == Storage::f32 ? 4 : 2;
}

}  // namespace attncheck::cpu
