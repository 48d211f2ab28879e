// float <-> float16 / bfloat16 conversions for implementations (round to
// nearest even). The reference has its own, independently written codec.
#pragma once

#include <cstdint>
#include <cstring>

namespace attncheck {

inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0) {
    float f = static_cast<float>(man) * (1.0f / 16777216.0f);  // man * 2^-24
    std::memcpy(&bits, &f, 4);
    bits |= sign;
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  }
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

inline uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  x &= 0x7fffffffu;
  if (x > 0x7f800000u) return sign | 0x7e00;          // NaN
  if (x >= 0x477ff000u) return sign | 0x7c00;         // rounds to >= 65520: inf
  if (x < 0x38800000u) {                              // below 2^-14: subnormal
    float a;
    std::memcpy(&a, &x, 4);
    // a * 2^24 rounded to an integer, ties to even, by the FPU's mode.
    float m = a * 16777216.0f;
    float r = m + 8388608.0f - 8388608.0f;            // round to integer (m < 1024)
    return sign | static_cast<uint16_t>(r);
  }
  // normal: drop 13 mantissa bits with round-to-nearest-even
  uint32_t rounded = x + 0xfff + ((x >> 13) & 1);
  return sign | static_cast<uint16_t>((rounded - 0x38000000u) >> 13);
}

inline float bf16_to_float(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t float_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40);
  x += 0x7fff + ((x >> 16) & 1);
  return static_cast<uint16_t>(x >> 16);
}

}  // namespace attncheck
