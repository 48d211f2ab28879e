// 16-bit mutants: the correct `fused` kernel of precision.h (f32 sums, P
// rounded once) with one low-precision bug planted each. The mutation
// tests require `attncheck verify --dtype bf16` and `--dtype f16` to catch
// every one (exit 1) by the property each names; `none` must pass. The
// correct kernels of the other contracts are here too: `unfused` (and
// `unfused_bmm`, bmm then the scale) must pass
// `--precision unfused` and fail `fused` (its logits are rounded to the
// input dtype), `input` must pass `--precision input`.
#include "precision.h"

namespace {

using precision::Bug;
using precision::Contract;
using precision::Recipe;

template <Bug bug, Contract contract = Contract::fused>
attncheck_status kernel(const attncheck_attention* call, char* message, size_t size) {
  Recipe r;
  r.contract = contract;
  r.bug = bug;
  return precision::attention(r, call, message, size);
}

// bmm, then the scale: q.k rounded to the input dtype, then scaled and rounded.
attncheck_status unfused_bmm_then_scale(const attncheck_attention* call, char* message, size_t size) {
  Recipe r;
  r.contract = Contract::unfused;
  r.scale_after = true;
  return precision::attention(r, call, message, size);
}

#define MUTANT(name) {#name, kDLCPU, kernel<Bug::name>}
const attncheck_impl kImpls[] = {
    MUTANT(none),
    MUTANT(pv_in_input),
    MUTANT(logits_in_input),
    MUTANT(normaliser_in_input),
    MUTANT(p_rounded_twice),
    MUTANT(dropped_key),
    MUTANT(zero_long),
    MUTANT(out_through_other),
    MUTANT(f16_overflow),
    {"unfused", kDLCPU, kernel<Bug::none, Contract::unfused>},
    {"unfused_bmm", kDLCPU, unfused_bmm_then_scale},
    {"input", kDLCPU, kernel<Bug::none, Contract::input>},
};

}  // namespace

extern "C" const attncheck_impl* attncheck_impls(int abi_version, size_t* count) {
  if (abi_version != ATTNCHECK_ABI_VERSION) return nullptr;
  *count = sizeof kImpls / sizeof kImpls[0];
  return kImpls;
}
