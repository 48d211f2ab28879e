// The reference's self-check, run by `attncheck selfcheck`: laws of the
// ground truth that must hold on this machine before any verdict is trusted.
#pragma once

#include <ostream>

namespace attncheck {

// Prints one line per check; returns the number of checks that failed.
int run_selfcheck(std::ostream& out);

}  // namespace attncheck
