// What the forward and the backward properties share
// (properties.cpp, backward_properties.cpp).
#pragma once

#include <attncheck/properties.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace attncheck {

// A 64-bit mixer (MurmurHash3's finalizer): the properties' choices of a
// group, head or permutation from the case's hash.
uint64_t mix(uint64_t x);
// Turns a call that did not produce an output into a verdict (the checker's
// error, a finding, a decline, ATTNCHECK_FAILED), or returns false when the
// output is there to check.
bool unusable(const RunResult& run, Verdict& v, const CheckOptions& opt);
// A value in a report line: 9 significant digits.
std::string num(long double x);
// The (B, C, T, H, W) index of a flat row-major position in a tensor of this shape.
std::array<int64_t, 5> flat_index(int64_t flat, const std::vector<int64_t>& shape);

}  // namespace attncheck
