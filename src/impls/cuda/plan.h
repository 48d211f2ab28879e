// The host half of `cuda`: a validated call turned into the kernel's
// parameters. Separate from attention() so benchmarks can time the kernel
// alone and tests can derive deliberately broken variants from a correct plan.
#pragma once

#include "kernel.h"

#include <attncheck/plugin.h>

#include <string>

namespace attncheck::cuda {

// ATTNCHECK_OK with *p filled, or the status attention() would return
// (UNSUPPORTED or FAILED) with *why saying why. Reads no element.
attncheck_status plan(const attncheck_attention* call, Params* p, std::string* why);

}  // namespace attncheck::cuda
