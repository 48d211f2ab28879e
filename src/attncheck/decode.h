// The fuzzers' generator: bytes -> the same case model the RapidCheck
// generator produces, picking the same fields with libFuzzer's
// FuzzedDataProvider. Any byte string decodes to a valid case.
#pragma once

#include <attncheck/case.h>
#include <attncheck/properties.h>

#include <cstddef>
#include <cstdint>
#include <optional>

namespace attncheck {

struct DecodeOptions {
  std::optional<Property> property;  // shape the case to what it needs
  double max_flops = 2e6;            // sizes are cut down until a case costs at most this
  // May the case be a backward one? Then one more choice, read after
  // everything else (an input with no byte left for it stays forward, as it
  // decoded before backward cases existed), makes it so and decodes dout's
  // layout and values and dq's, dk's and dv's layouts. A backward `property`
  // always makes one.
  bool backward_allowed = false;
};

Case decode_case(const uint8_t* data, size_t size, const DecodeOptions& opt = {});

}  // namespace attncheck
