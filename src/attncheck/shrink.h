// A case-level shrinker, run after RapidCheck's own shrinking: greedy passes
// over the case's fields in the order a kernel engineer reads a report
// (sizes first, then sharing, layouts, values), keeping every change after
// which the property still fails. Deterministic, so the same seed gives the
// same minimal case.
//
// Why there are two shrinkers (measured, issue 18; properties/tools/
// shrink_measure.cpp, the 17 mutants' failures, f32, spatial and temporal,
// seed 1: 33 failures; size = elements of q, k, v and out together).
//
// RapidCheck's shrinking used to stall on the composed case: a median of 336
// elements, at most 32,928. The cause was the generators: RapidCheck's
// gen::element, gen::weightedElement and gen::weightedOneOf never shrink
// their choice (a dimension of 13 picked from a list stays 13), and a long
// key dimension was drawn over an earlier draw, which then could not
// shrink. The generators now choose with gen::one_of / gen::element /
// gen::weighted_element (generators.h), which shrink towards the first,
// smallest alternative, and draw every deciding choice before what it
// decides. RapidCheck alone now leaves a median of 6 elements, at most 120.
//
// What remains is RapidCheck's design: gen::exec shrinks its draws in
// order and never returns to an earlier one (the recipe's numFixed), so a
// size that could only shrink after a later one did stays where it was
// (no_max_subtraction, spatial: Hq = 2, Wq = 7 while the keys were still
// large; 120 elements). This shrinker makes those passes again: after it,
// the median is 6 and the maximum 18; it is smaller in 9 of the 33 (each
// try is one property run: the 33 runs take 2.9 s with it, 2.7 s
// without). Until RapidCheck revisits earlier draws, this shrinker stays.
#pragma once

#include <attncheck/case.h>

#include <functional>

namespace attncheck {

// Returns the smallest case found for which still_fails holds, trying at
// most max_tries candidates. still_fails(c) must be true.
Case shrink_case(const Case& c, const std::function<bool(const Case&)>& still_fails, int max_tries = 400,
                 int* tries_used = nullptr);

}  // namespace attncheck
