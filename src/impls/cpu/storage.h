// Element conversions between the storage types and the compute types.
// bfloat16 and float16 are converted in software (no F16C assumed), rounding
// to nearest even on the way out.
#pragma once

#include <attncheck/half.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace attncheck::cpu {

struct bf16_t {
  uint16_t bits;
};
struct f16_t {
  uint16_t bits;
};

// The conversions are attncheck's (attncheck/half.h), shared with
// reference_f32; these wrappers only give them types.
inline float to_float(bf16_t x) { return bf16_to_float(x.bits); }
inline bf16_t to_bf16(float f) { return {float_to_bf16(f)}; }
inline float to_float(f16_t x) { return half_to_float(x.bits); }
inline f16_t to_f16(float f) { return {float_to_half(f)}; }

// convert<To>(x): between the storage types and the compute types (float,
// double), through float for the 16-bit ones.
template <class To, class From>
inline To convert(From x) {
  if constexpr (std::is_same_v<From, bf16_t> || std::is_same_v<From, f16_t>) {
    return convert<To>(to_float(x));
  } else if constexpr (std::is_same_v<To, bf16_t>) {
    return to_bf16(static_cast<float>(x));
  } else if constexpr (std::is_same_v<To, f16_t>) {
    return to_f16(static_cast<float>(x));
  } else {
    return static_cast<To>(x);
  }
}

}  // namespace attncheck::cpu
