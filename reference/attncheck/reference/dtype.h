// Element types the reference reads and writes, exactly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace attncheck::ref {

// f32, f64, f16 and bf16 are the ABI's dtypes; ext is the reference's own
// working precision (long double: x87 80-bit extended on x86-64).
enum class DType { f32, f64, f16, bf16, ext };

using real = long double;

size_t size_of(DType t);
const char* name_of(DType t);
// Parses "f32", "f64", "f16", "bf16"; throws std::invalid_argument otherwise.
DType parse_dtype(const std::string& name);

// Reads one element; every value of every dtype is exact in long double.
real read(DType t, const std::byte* p);
// Writes x rounded to the nearest value of t (ties to even; overflow to inf).
void write(DType t, std::byte* p, real x);
// x rounded to t and read back.
real round_to(DType t, real x);

// The bit-level codecs behind read/write, exposed for tests.
double f16_to_double(uint16_t bits);
uint16_t double_to_f16(double x);
double bf16_to_double(uint16_t bits);
uint16_t float_to_bf16(float x);

}  // namespace attncheck::ref
