// Element addressing for a validated call: where group n's position p lives
// in each tensor, following the spec's numbering of groups and positions
// (geometry.h).
#pragma once

#include <attncheck/geometry.h>
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

  Geometry geometry() const { return Geometry{s->axes, T(), H(), W()}; }
  int64_t group(int64_t n) const { return geometry().group_offset(n, st().data()); }
  int64_t position(int64_t p) const { return geometry().position_offset(p, st().data()); }
  int64_t channel(int64_t c) const { return c * st()[1]; }
};

}  // namespace attncheck
