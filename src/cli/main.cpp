// attncheck: the command line.
#include <attncheck/loader.h>
#include <attncheck/selfcheck.h>
#include <attncheck/verify.h>

#include <unistd.h>

#include <cstring>
#include <iostream>
#include <string>
#include <vector>

namespace {

constexpr const char* kUsage =
    "usage: attncheck list [PLUGIN]\n"
    "       attncheck verify TARGET [options]\n"
    "       attncheck selfcheck\n"
    "       attncheck COMMAND --help\n"
    "TARGET is a plugin library's path or builtin:NAME (attncheck list shows the built-in ones).\n";

constexpr const char* kListUsage =
    "usage: attncheck list [PLUGIN]\n"
    "Lists the implementations a plugin library exports (name and device), or the\n"
    "built-in ones (cpu, reference_f32, and cuda where built with CUDA) without PLUGIN.\n"
    "Exit status: 0 listed, 2 the library does not load or breaks the ABI.\n";

constexpr const char* kVerifyUsage =
    "usage: attncheck verify TARGET [options]\n"
    "Checks every property on the implementation(s) of TARGET (a plugin library's path\n"
    "or builtin:NAME) over generated cases, in guarded memory, each call in a forked child.\n"
    "Lists are comma-separated (--axes spatial,temporal); --property and --impl may repeat.\n"
    "\n"
    "  --impl NAME          only this implementation (default: every one in the library)\n"
    "  --property LIST      semantics, layout_invariance, memory, group_independence,\n"
    "                       query_permutation, key_permutation, head_independence, robustness\n"
    "                       (default: all eight)\n"
    "  --axes LIST          spatial, temporal, spatiotemporal (default: all three)\n"
    "  --dtype LIST         f32, f64, f16, bf16 (default: f32)\n"
    "  --precision P        the precision contract f16 and bf16 are checked under (default fused):\n"
    "                         fused    f32 logits, softmax and P.V; P rounded once (FlashAttention, cuDNN)\n"
    "                         unfused  logits and probabilities materialised in the input dtype (math SDPA)\n"
    "                         input    every sum in the input dtype (the loosest)\n"
    "                       (f32 and f64 have one contract: every sum in the dtype itself)\n"
    "  --cases N            cases per property, axes family and dtype (default 30)\n"
    "  --seed S             an unsigned integer; the same seed gives the same report (default 1)\n"
    "  --case TEXT          replay one case (the text a failure's replay line gives)\n"
    "  --strict             layout invariance and independence bitwise\n"
    "  --no-declines        a declined call is a failure (for implementations that claim full coverage)\n"
    "  --no-fork            call in this process (faster; a crash, exit or abort then ends verify)\n"
    "  --timeout S          a call's time limit: S seconds plus 10 s per GFLOP (default 10)\n"
    "  --memory-limit GIB   a forked call's address-space limit beyond verify's own (default 8; 0: none)\n"
    "  --json FILE          a JSON report;  --junit FILE  a JUnit XML report\n"
    "  --brief              one line per implementation; the table only where not all held\n"
    "  --progress, --quiet  a progress line on stderr (default: when stderr is a terminal)\n"
    "\n"
    "Exit status: 0 every requested run (implementation, property, axes family, dtype)\n"
    "checked at least one case and held; 1 a property failed (the report shows the minimal\n"
    "case, its diagnosis and a replay line); 3 nothing failed, but some run checked no case\n"
    "(every call declined, no device, nothing to compare: the report says which and why);\n"
    "2 could not run (usage, a library that does not load, an error of the checker).\n";

int usage_error(const std::string& what) {
  std::cerr << "attncheck: " << what << " (attncheck --help)\n";
  return 2;
}

const char* device_name(DLDeviceType t) { return t == kDLCUDA ? "cuda" : "cpu"; }

bool wants_help(const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a == "--help" || a == "-h") return true;
  return false;
}

int cmd_list(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::cout << kListUsage;
    return 0;
  }
  for (const auto& a : args)
    if (!a.empty() && a[0] == '-') return usage_error("list: unknown option '" + a + "'");
  if (args.size() > 1) return usage_error("list takes at most one PLUGIN");
  try {
    auto plugin = args.empty() ? attncheck::Plugin::builtin() : attncheck::Plugin::load(args[0]);
    std::cout << plugin->path() << "\n";
    for (const auto& impl : plugin->impls())
      std::cout << "  " << impl.name << "  (" << device_name(impl.device_type) << ")\n";
    return 0;
  } catch (const attncheck::LoadError& e) {
    std::cerr << "attncheck: " << e.what() << "\n";
    return 2;
  }
}

int cmd_selfcheck(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::cout << "usage: attncheck selfcheck\nChecks the reference against its own laws and golden values.\n";
    return 0;
  }
  if (!args.empty()) return usage_error("selfcheck takes no arguments");
  std::cout << "reference self-check\n";
  int failed = attncheck::run_selfcheck(std::cout);
  std::cout << (failed ? "FAILED: " + std::to_string(failed) + " check(s)\n"
                       : std::string("all checks passed\n"));
  return failed ? 1 : 0;
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t comma = s.find(',', start);
    out.push_back(s.substr(start, comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

// A number that is all digits (no sign, no spaces), within [lo, hi].
bool parse_number(const std::string& v, double lo, double hi, double* out) {
  if (v.empty() || v.find_first_not_of("0123456789.") != std::string::npos) return false;
  size_t pos = 0;
  const double x = std::stod(v, &pos);
  if (pos != v.size() || !(x >= lo && x <= hi)) return false;
  *out = x;
  return true;
}

int cmd_verify(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::cout << kVerifyUsage;
    return 0;
  }
  attncheck::VerifyOptions opt;
  opt.progress = isatty(2);
  bool explicit_properties = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string* {
      if (i + 1 >= args.size()) return nullptr;
      return &args[++i];
    };
    try {
      if (a == "--impl" || a == "--cases" || a == "--seed" || a == "--axes" || a == "--dtype" ||
          a == "--json" || a == "--junit" || a == "--case" || a == "--property" || a == "--timeout" ||
          a == "--memory-limit" || a == "--precision") {
        const std::string* v = value();
        if (!v) return usage_error(a + " needs a value");
        if (a == "--impl") {
          for (const auto& x : split_list(*v)) opt.impls.push_back(x);
        } else if (a == "--timeout") {
          if (!parse_number(*v, 0.1, 86400, &opt.timeout_base))
            return usage_error("--timeout must be a number of seconds in 0.1..86400, not '" + *v + "'");
        } else if (a == "--memory-limit") {
          if (!parse_number(*v, 0, 1 << 20, &opt.memory_limit_gib))
            return usage_error("--memory-limit must be a number of GiB (0: none), not '" + *v + "'");
        }
        else if (a == "--cases") {
          if (v->empty() || v->find_first_not_of("0123456789") != std::string::npos)
            return usage_error("--cases must be an integer in 1..1000000, not '" + *v + "'");
          size_t pos = 0;
          const long n = std::stol(*v, &pos);
          if (pos != v->size() || n < 1 || n > 1000000)
            return usage_error("--cases must be an integer in 1..1000000, not '" + *v + "'");
          opt.cases = static_cast<int>(n);
        } else if (a == "--seed") {
          // stoull would take "-1" (and " 1") and wrap it.
          if (v->empty() || v->find_first_not_of("0123456789") != std::string::npos)
            return usage_error("--seed must be an unsigned integer, not '" + *v + "'");
          size_t pos = 0;
          opt.seed = std::stoull(*v, &pos);
        } else if (a == "--axes") {
          opt.axes.clear();
          for (const auto& x : split_list(*v)) {
            if (x == "spatial") opt.axes.push_back(attncheck::Axes::spatial);
            else if (x == "temporal") opt.axes.push_back(attncheck::Axes::temporal);
            else if (x == "spatiotemporal") opt.axes.push_back(attncheck::Axes::spatiotemporal);
            else return usage_error("--axes: '" + x + "' is not spatial, temporal or spatiotemporal");
          }
        } else if (a == "--dtype") {
          opt.dtypes.clear();
          for (const auto& x : split_list(*v)) opt.dtypes.push_back(attncheck::ref::parse_dtype(x));
        } else if (a == "--precision") {
          opt.precision = attncheck::parse_precision(*v);
        } else if (a == "--json") opt.json = *v;
        else if (a == "--junit") opt.junit = *v;
        else if (a == "--case") opt.case_text = *v;
        else if (a == "--property") {
          if (!explicit_properties) opt.properties.clear();
          explicit_properties = true;
          for (const auto& x : split_list(*v)) opt.properties.push_back(attncheck::parse_property(x));
        }
      } else if (a == "--strict") opt.strict = true;
      else if (a == "--no-declines") opt.no_declines = true;
      else if (a == "--brief") opt.brief = true;
      else if (a == "--no-fork") opt.fork = false;
      else if (a == "--progress") opt.progress = true;
      else if (a == "--quiet") opt.progress = false;
      else if (!a.empty() && a[0] == '-') return usage_error("verify: unknown option '" + a + "' (attncheck verify --help)");
      else if (opt.target.empty()) opt.target = a;
      else return usage_error("verify takes one TARGET, got '" + opt.target + "' and '" + a + "'");
    } catch (const std::invalid_argument& e) {
      return usage_error(e.what());
    } catch (const std::out_of_range&) {
      return usage_error(a + ": value out of range");
    }
  }
  if (opt.target.empty()) return usage_error("verify needs a TARGET (a plugin path or builtin:NAME)");
  return attncheck::run_verify(opt, std::cout, std::cerr);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage_error("missing command");
  const std::string cmd = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    std::cout << kUsage;
    return 0;
  }
  if (cmd == "list") return cmd_list(args);
  if (cmd == "selfcheck") return cmd_selfcheck(args);
  if (cmd == "verify") return cmd_verify(args);
  return usage_error("unknown command '" + cmd + "'");
}
