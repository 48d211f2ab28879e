// attncheck inside your own GoogleTest binary.
//
//   #include <attncheck/gtest.h>
//
//   attncheck_status my_flash(const attncheck_attention*, char*, size_t);
//   ATTNCHECK_TEST(MyKernels, flash_v2, my_flash);
//
// registers one GoogleTest per property and axes family
// (MyKernels.flash_v2_semantics_spatial, ..._layout_invariance_temporal, ...),
// so failures show by name, --gtest_output=xml gives JUnit XML, and
// GTEST_TOTAL_SHARDS / GTEST_SHARD_INDEX split them across machines. The
// third argument is an attncheck_impl, a function with the ABI's signature,
// or a callable with that signature (each callable of its own type, e.g. a
// lambda). A failure prints the same minimal case, diagnosis and replay line
// as `attncheck verify`.
//
// Environment (read when the tests run):
//   ATTNCHECK_CASES   generated cases per test (default 30)
//   ATTNCHECK_SEED    seed (default 1; the same seed gives the same cases)
//   ATTNCHECK_DTYPES  comma-separated f32,f64,f16,bf16 (default f32)
//   ATTNCHECK_STRICT  1: bitwise layout invariance and independence
//   ATTNCHECK_PRECISION  fused (default), unfused or input: the precision
//                     contract f16 and bf16 are checked under (error_model.h)
//   ATTNCHECK_FORK    0: call the kernel in-process (a fault then crashes)
//   ATTNCHECK_CASE    a case's one-line text: run only that case (replay)
//   RC_PARAMS         RapidCheck's parameters: max_success (cases), seed,
//                     max_size, max_discard_ratio, noshrink; ATTNCHECK_CASES
//                     and ATTNCHECK_SEED win over max_success and seed
#pragma once

#include <attncheck/plugin.h>
#include <attncheck/suite.h>

#include <optional>
#include <type_traits>
#include <utility>

namespace attncheck::testing {

// The options the environment variables above give.
SuiteOptions options_from_env();

// Registers the property tests of impl as Suite.Name_<property>_<axes>.
// Returns a value so registration can happen in a static initializer.
int register_suite(const char* suite, const char* name, attncheck_impl impl, const char* file, int line);

using AttentionFn = attncheck_status (*)(const attncheck_attention*, char*, size_t);

inline attncheck_impl as_impl(const attncheck_impl& impl, const char*) { return impl; }
inline attncheck_impl as_impl(AttentionFn fn, const char* name) { return {name, kDLCPU, fn}; }

// A callable with the ABI's signature: kept in a slot of its own type and
// reached through a plain function.
template <class F,
          class = std::enable_if_t<!std::is_convertible_v<F, AttentionFn> &&
                                   !std::is_same_v<std::decay_t<F>, attncheck_impl>>>
attncheck_impl as_impl(F&& f, const char* name) {
  using Fn = std::decay_t<F>;
  static std::optional<Fn> slot;
  slot.emplace(std::forward<F>(f));
  return {name, kDLCPU, [](const attncheck_attention* c, char* m, size_t n) -> attncheck_status {
            return (*slot)(c, m, n);
          }};
}

}  // namespace attncheck::testing

#define ATTNCHECK_TEST(Suite, Name, impl)                                                 \
  [[maybe_unused]] static const int attncheck_registered_##Suite##_##Name =              \
      ::attncheck::testing::register_suite(#Suite, #Name,                                 \
                                           ::attncheck::testing::as_impl(impl, #Name),    \
                                           __FILE__, __LINE__)
