// Element addressing for a validated call: where group n's position p lives
// in each tensor, following the spec's numbering of groups and positions.
#pragma once

#include <attncheck/validate.h>

namespace attncheck {

enum Operand { kQ = 0, kK = 1, kV = 2, kOut = 3 };

// Element offsets (in elements, from data + byte_offset) of the start of
// group n and of position p within a group, for one operand of a call.
struct OperandIndex {
  const CallShape* s;
  int which;

  // The (T, H, W) extents this operand's positions run over.
  int64_t T() const { return which == kK || which == kV ? s->Tk : s->Tq; }
  int64_t H() const { return which == kK || which == kV ? s->Hk : s->Hq; }
  int64_t W() const { return which == kK || which == kV ? s->Wk : s->Wq; }
  const std::array<int64_t, 5>& st() const { return s->strides[which]; }

  int64_t group(int64_t n) const {
    switch (s->axes) {
      case ATTNCHECK_SPATIAL:  // n = b*T + t
        return (n / T()) * st()[0] + (n % T()) * st()[2];
      case ATTNCHECK_TEMPORAL: {  // n = (b*H + h)*W + w
        const int64_t w = n % W(), h = (n / W()) % H(), b = n / (W() * H());
        return b * st()[0] + h * st()[3] + w * st()[4];
      }
      case ATTNCHECK_SPATIOTEMPORAL:
        return n * st()[0];
    }
    return 0;
  }
  int64_t position(int64_t p) const {
    switch (s->axes) {
      case ATTNCHECK_SPATIAL:  // p = h*W + w
        return (p / W()) * st()[3] + (p % W()) * st()[4];
      case ATTNCHECK_TEMPORAL:
        return p * st()[2];
      case ATTNCHECK_SPATIOTEMPORAL: {  // p = (t*H + h)*W + w
        const int64_t w = p % W(), h = (p / W()) % H(), t = p / (W() * H());
        return t * st()[2] + h * st()[3] + w * st()[4];
      }
    }
    return 0;
  }
  int64_t channel(int64_t c) const { return c * st()[1]; }
};

}  // namespace attncheck
