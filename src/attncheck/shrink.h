// A case-level shrinker, run after RapidCheck's own shrinking: greedy passes
// over the case's fields in the order a kernel engineer reads a report
// (sizes first, then sharing, layouts, values), keeping every change after
// which the property still fails. Deterministic, so the same seed gives the
// same minimal case.
#pragma once

#include <attncheck/case.h>

#include <functional>

namespace attncheck {

// Returns the smallest case found for which still_fails holds, trying at
// most max_tries candidates. still_fails(c) must be true.
Case shrink_case(const Case& c, const std::function<bool(const Case&)>& still_fails, int max_tries = 400,
                 int* tries_used = nullptr);

}  // namespace attncheck
