// The backward pass's properties (properties.h lists them): each runs the
// implementation's forward call (its out is what the backward call gets),
// then its backward call, and checks dq, dk and dv.
#pragma once

#include <attncheck/properties.h>

namespace attncheck {

// p is one of backward_properties(); opt.backward is the implementation's
// backward entry point (none: the checker's error, not a verdict).
Verdict check_backward_property(Property p, const attncheck_impl& impl, const Case& c, const CheckOptions& opt);

}  // namespace attncheck
