// Fuzz target `attention`: bytes -> the case model (the same decoder the
// properties' generator mirrors) -> one implementation in guarded memory ->
// every property of the checker that accepts the case.
//
// (One property per input, chosen by its first byte; see below.)
//
// The implementation is a built-in (`cpu` or `reference_f32`, chosen by the
// input) or, with ATTNCHECK_FUZZ_PLUGIN=path.so, one of that library's CPU
// implementations (ATTNCHECK_FUZZ_IMPL=name to fix one). Calls run in this
// process: libFuzzer and the sanitizers catch a crash, the guard pages turn
// an out-of-bounds access into one. A property failure prints the case's
// one-line text and the `attncheck verify --case` command that replays it,
// then aborts, so libFuzzer keeps the input.
//
// Default limit (see the README, "Fuzzing"): the decoder cuts a case's sizes until
// it costs at most ATTNCHECK_FUZZ_MAX_FLOPS (default 2e3) flops of attention;
// guarded memory refuses a case above 1 GiB of tensors (skipped, not a finding).
#include <attncheck/decode.h>
#include <attncheck/guarded.h>
#include <attncheck/loader.h>
#include <attncheck/properties.h>
#include <attncheck/report.h>
#include <attncheck/suite.h>

#include "../src/impls/cpu/cpu_attention.h"
#include "../src/impls/reference_f32/reference_f32.h"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

extern "C" void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));
extern "C" void __asan_set_error_report_callback(void (*callback)(const char*)) __attribute__((weak));

namespace {

using namespace attncheck;

struct Target {
  std::shared_ptr<Plugin> plugin;     // null: the built-ins, linked in
  std::vector<attncheck_impl> impls;  // the candidates, chosen per input
  std::vector<const attncheck_backward_impl*> backward;  // each one's backward, or null
  std::string verify_target;          // how `attncheck verify` names the library
  double max_flops = 2e3;
  bool all_properties = false;
  bool print_case = false;  // print each case before checking it (replaying a crash)
};

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

Target make_target() {
  Target t;
  if (const std::string f = env("ATTNCHECK_FUZZ_MAX_FLOPS"); !f.empty()) t.max_flops = std::stod(f);
  t.all_properties = env("ATTNCHECK_FUZZ_ALL_PROPERTIES") == "1";
  t.print_case = env("ATTNCHECK_FUZZ_PRINT_CASE") == "1";
  const std::string path = env("ATTNCHECK_FUZZ_PLUGIN"), only = env("ATTNCHECK_FUZZ_IMPL");
  if (path.empty()) {
    cpu::set_threads(1);  // one exec, one thread: the fuzzer's -jobs parallelize
    static const attncheck_impl builtins[] = {{"cpu", kDLCPU, &cpu::attention},
                                              {"reference_f32", kDLCPU, &reference_f32::attention}};
    static const attncheck_backward_impl backward[] = {{"cpu", kDLCPU, &cpu::backward},
                                                       {"reference_f32", kDLCPU, &reference_f32::backward}};
    for (int i = 0; i < 2; ++i)
      if (only.empty() || only == builtins[i].name) t.impls.push_back(builtins[i]), t.backward.push_back(&backward[i]);
    if (t.impls.empty()) {
      std::fprintf(stderr, "attention fuzz: ATTNCHECK_FUZZ_IMPL=%s is not a built-in (cpu, reference_f32)\n",
                   only.c_str());
      std::exit(2);
    }
    t.verify_target = "builtin:";
    return t;
  }
  try {
    t.plugin = Plugin::load(path);
    if (!only.empty()) t.impls.push_back(t.plugin->find(only));
    else
      for (const auto& i : t.plugin->impls())
        if (i.device_type == kDLCPU) t.impls.push_back(i);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attention fuzz: %s\n", e.what());
    std::exit(2);
  }
  if (t.impls.empty() || t.impls.front().device_type != kDLCPU) {
    std::fprintf(stderr, "attention fuzz: %s has no CPU implementation to fuzz\n", path.c_str());
    std::exit(2);
  }
  for (const auto& i : t.impls) t.backward.push_back(t.plugin->find_backward(i.name));
  t.verify_target = path;
  return t;
}

const Target& target() {
  static const Target t = make_target();
  return t;
}

std::string replay_command(const attncheck_impl& impl, const Case& c, const Property* p) {
  const Target& t = target();
  std::string s = "attncheck verify ";
  if (t.plugin) s += shell_quote(t.verify_target) + " --impl " + impl.name;
  else s += std::string("builtin:") + impl.name;
  if (p) s += std::string(" --property ") + name_of(*p);
  return s + " --case " + shell_quote(c.to_text());
}

// What a crash (a sanitizer report, a fault in the implementation) prints:
// the case being run, so the finding replays without the input file.
// AddressSanitizer's report callback covers its reports and the faults it
// handles (a guard page hit inside the implementation), under libFuzzer as
// under the replay driver; the death callback covers the rest under the
// replay driver only (libFuzzer takes that one slot for itself, to save the
// input). Where neither printed it (a UBSan report under libFuzzer), ci/fuzz
// replays the input with ATTNCHECK_FUZZ_PRINT_CASE=1.
const attncheck_impl* g_impl = nullptr;
const Case* g_case = nullptr;
const Property* g_property = nullptr;  // the one property run, or null: all of them
bool g_printed = false;

void print_case(const Property* p) {
  if (!g_impl || !g_case || g_printed) return;
  std::fprintf(stderr, "ATTNCHECK_CASE: %s\nATTNCHECK_REPLAY: %s\n", g_case->to_text().c_str(),
               replay_command(*g_impl, *g_case, p).c_str());
}

void on_death() { print_case(g_property); }
void on_asan_report(const char*) {
  print_case(g_property);
  g_printed = true;
}

[[noreturn]] void found(const Property* p, const std::string& what, const std::vector<std::string>& details) {
  std::fprintf(stderr, "\nattention fuzz: %s %s: %s\n", g_impl->name, p ? name_of(*p) : "case", what.c_str());
  for (const auto& d : details) std::fprintf(stderr, "  %s\n", d.c_str());
  print_case(p);
  std::fflush(stderr);
  g_case = nullptr;  // the death callback need not print it again
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  target();
  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(on_death);
  if (__asan_set_error_report_callback) __asan_set_error_report_callback(on_asan_report);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Target& t = target();
  if (size < 2) return 0;
  // Byte 0 picks the implementation and the property; the rest decodes to a
  // case shaped for that property, as the RapidCheck suite generates each
  // property's cases (metamorphic properties need unshared, unbroadcast
  // inputs, robustness needs large or tied values). One property per input
  // keeps the target near 1,000 execs/s; libFuzzer's coverage steers over
  // all eight. ATTNCHECK_FUZZ_ALL_PROPERTIES=1 checks every property that
  // accepts the case on every input instead (about 8x slower).
  // An implementation with a backward gets backward cases too (a choice
  // read after the rest of the case): each property then checks its
  // backward twin (the permutations and robustness: backward.semantics).
  const size_t which = data[0] % t.impls.size();
  const attncheck_impl& impl = t.impls[which];
  const attncheck_backward_impl* backward = t.backward[which];
  const auto forward_property = static_cast<Property>((data[0] / t.impls.size()) % kPropertyCount);
  DecodeOptions opt;
  opt.max_flops = t.max_flops;
  opt.property = forward_property;
  opt.backward_allowed = backward != nullptr;
  const Case c = decode_case(data + 1, size - 1, opt);
  const Property chosen = !c.backward                                           ? forward_property
                          : forward_property == Property::layout_invariance    ? Property::backward_layout_invariance
                          : forward_property == Property::memory               ? Property::backward_memory
                          : forward_property == Property::group_independence   ? Property::backward_group_independence
                          : forward_property == Property::head_independence    ? Property::backward_head_independence
                                                                                : Property::backward_semantics;
  g_impl = &impl;
  g_case = &c;
  g_property = t.all_properties ? nullptr : &chosen;
  g_printed = false;
  if (t.print_case) {
    print_case(g_property);
    g_printed = true;
  }

  // The text form is the replay: it must parse back to the same case.
  try {
    if (!(Case::parse(c.to_text()) == c)) found(nullptr, "the case's text does not parse back to the case", {});
  } catch (const std::exception& e) {
    found(nullptr, std::string("the case's text does not parse: ") + e.what(), {});
  }

  CheckOptions check;
  check.run.fork = false;
  check.diagnose = false;
  check.backward = backward;
  for (Property p : every_property()) {
    if ((!t.all_properties && p != chosen) || !property_accepts(p, c)) continue;
    Verdict v;
    try {
      v = check_property(p, impl, c, check);
    } catch (const std::invalid_argument& e) {
      // Cases the guarded memory refuses (too large) are not findings.
      if (std::string(e.what()).find("MiB of tensor memory") != std::string::npos) break;
      found(&p, std::string("the checker threw: ") + e.what(), {});
    } catch (const std::exception& e) {
      found(&p, std::string("the checker threw: ") + e.what(), {});
    }
    if (v.kind == Verdict::fail) {
      // Name the wrong semantics where one matches (only on failure: it costs).
      CheckOptions d = check;
      d.diagnose = true;
      const Verdict dv = check_property(p, impl, c, d);
      const Verdict& w = dv.kind == Verdict::fail ? dv : v;
      auto details = w.details;
      if (!w.diagnosis.empty()) details.push_back("diagnosis: " + w.diagnosis);
      found(&p, w.summary, details);
    }
  }
  g_case = nullptr;
  return 0;
}
