// Measures what attncheck's case shrinker adds after RapidCheck's shrinking:
// for each mutant and the property pinned to it, the minimal case with the
// second shrinker off (max_case_shrinks = 0) and on (400), its size in
// elements (q, k, v and out together), the time and the calls made.
//   build/release/bin/shrink_measure build/release/properties/examples/mutants.so
#include <attncheck/loader.h>
#include <attncheck/suite.h>
#include <chrono>
#include <cstdio>

using namespace attncheck;

int64_t elements(const Case& c) {
  int64_t n = 0;
  for (int r = 0; r < 4; ++r) {
    int64_t e = 1;
    for (int64_t s : c.shape(r)) e *= s;
    n += e;
  }
  return n;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: shrink_measure PATH/mutants.so\n");
    return 2;
  }
  auto plugin = Plugin::load(argv[1]);
  const char* pins[][2] = {{"legacy_reshape", "semantics"}, {"assumes_packed", "semantics"},
      {"last_stride_only", "memory"}, {"zero_stride_packed", "semantics"}, {"ignores_byte_offset", "memory"},
      {"aligned_read16", "memory"}, {"size1_format_flip", "semantics"}, {"v_uses_k_strides", "semantics"},
      {"out_uses_q_strides", "memory"}, {"tail_tile_exp0", "semantics"}, {"no_max_subtraction", "semantics"},
      {"inner_stride_one", "memory"}, {"heads_interleaved", "head_independence"}, {"scale_sqrt_c", "semantics"},
      {"bf16_probabilities", "semantics"}, {"writes_past_end", "memory"}, {"reads_past_end", "memory"}};
  for (auto& pin : pins) {
    const attncheck_impl& impl = plugin->find(pin[0]);
    const Property p = parse_property(pin[1]);
    for (Axes ax : {Axes::spatial, Axes::temporal}) {
      for (int second : {0, 400}) {
        SuiteOptions opt;
        opt.max_case_shrinks = second;
        const auto t0 = std::chrono::steady_clock::now();
        const PropertyOutcome o = run_property(impl, p, ax, DType::f32, opt);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (!o.failure) { std::printf("%-20s %-9s %s: not failed\n", pin[0], ref::name_of(ax), second ? "both" : "rc  "); continue; }
        const Case& c = o.failure->c;
        std::printf("%-20s %-9s %s: %4lld elements, %5.1f s, calls %d | %s\n", pin[0], ref::name_of(ax),
                    second ? "both" : "rc  ", (long long)elements(c), s, o.cases, c.to_text().c_str());
      }
    }
  }
}
