// In-tree mutants: each implementation here is the correct float32 kernel of
// skeleton.h with one realistic bug from shared/real-bugs.md planted. The
// mutation tests require `attncheck verify` to catch every one (exit 1), by
// the property or finding each test names; `none` plants nothing and must
// pass `verify --strict`, so a bug in the skeleton cannot hide behind them.
#include "skeleton.h"

namespace {

using namespace mutant;

#define MUTANT(name) {#name, kDLCPU, attention<Bug::name>}
const attncheck_impl kImpls[] = {
    MUTANT(none),
    MUTANT(legacy_reshape),     MUTANT(assumes_packed),      MUTANT(last_stride_only),
    MUTANT(zero_stride_packed), MUTANT(ignores_byte_offset), MUTANT(aligned_read16),
    MUTANT(size1_format_flip),  MUTANT(v_uses_k_strides),    MUTANT(out_uses_q_strides),
    MUTANT(tail_tile_exp0),     MUTANT(no_max_subtraction),  MUTANT(inner_stride_one),
    MUTANT(heads_interleaved),  MUTANT(scale_sqrt_c),        MUTANT(bf16_probabilities),
    MUTANT(writes_past_end),    MUTANT(reads_past_end),
};

}  // namespace

extern "C" const attncheck_impl* attncheck_impls(int abi_version, size_t* count) {
  if (abi_version != ATTNCHECK_ABI_VERSION) return nullptr;
  *count = sizeof kImpls / sizeof kImpls[0];
  return kImpls;
}
