#include <attncheck/verify_args.h>

#include <stdexcept>

namespace attncheck {

const char* const kVerifyOptionsHelp =
    "Lists are comma-separated (--axes spatial,temporal); --property and --impl may repeat.\n"
    "\n"
    "  --impl NAME          only this implementation (default: every one in the library)\n"
    "  --property LIST      semantics, layout_invariance, memory, group_independence,\n"
    "                       query_permutation, key_permutation, head_independence, robustness;\n"
    "                       backward.semantics, backward.layout_invariance, backward.memory,\n"
    "                       backward.group_independence, backward.head_independence\n"
    "                       (default: every one of the passes run)\n"
    "  --pass LIST          forward, backward (default: forward, and backward wherever the\n"
    "                       library exports it; asked for, an implementation without one is\n"
    "                       not verified)\n"
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

namespace {

// A number that is all digits (no sign, no spaces), within [lo, hi].
bool parse_number(const std::string& v, double lo, double hi, double* out) {
  if (v.empty() || v.find_first_not_of("0123456789.") != std::string::npos) return false;
  size_t pos = 0;
  const double x = std::stod(v, &pos);
  if (pos != v.size() || !(x >= lo && x <= hi)) return false;
  *out = x;
  return true;
}

bool all_digits(const std::string& v) { return !v.empty() && v.find_first_not_of("0123456789") == std::string::npos; }

}  // namespace

std::string parse_verify_args(const std::vector<std::string>& args, VerifyOptions& opt, bool* help) {
  *help = false;
  for (const auto& a : args)
    if (a == "--help" || a == "-h") {
      *help = true;
      return "";
    }
  bool explicit_properties = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    try {
      if (a == "--impl" || a == "--cases" || a == "--seed" || a == "--axes" || a == "--dtype" || a == "--json" ||
          a == "--junit" || a == "--case" || a == "--property" || a == "--timeout" || a == "--memory-limit" ||
          a == "--precision" || a == "--pass") {
        if (i + 1 >= args.size()) return a + " needs a value";
        const std::string& v = args[++i];
        if (a == "--impl") {
          for (const auto& x : split_list(v)) opt.impls.push_back(x);
        } else if (a == "--timeout") {
          if (!parse_number(v, 0.1, 86400, &opt.timeout_base))
            return "--timeout must be a number of seconds in 0.1..86400, not '" + v + "'";
        } else if (a == "--memory-limit") {
          if (!parse_number(v, 0, 1 << 20, &opt.memory_limit_gib))
            return "--memory-limit must be a number of GiB (0: none), not '" + v + "'";
        } else if (a == "--cases") {
          const std::string bad = "--cases must be an integer in 1..1000000, not '" + v + "'";
          if (!all_digits(v) || v.size() > 7) return bad;
          const long n = std::stol(v);
          if (n < 1 || n > 1000000) return bad;
          opt.cases = static_cast<int>(n);
        } else if (a == "--seed") {
          // stoull would take "-1" (and " 1") and wrap it.
          if (!all_digits(v)) return "--seed must be an unsigned integer, not '" + v + "'";
          opt.seed = std::stoull(v);
        } else if (a == "--axes") {
          opt.axes.clear();
          for (const auto& x : split_list(v)) {
            if (x == "spatial") opt.axes.push_back(Axes::spatial);
            else if (x == "temporal") opt.axes.push_back(Axes::temporal);
            else if (x == "spatiotemporal") opt.axes.push_back(Axes::spatiotemporal);
            else return "--axes: '" + x + "' is not spatial, temporal or spatiotemporal";
          }
        } else if (a == "--dtype") {
          opt.dtypes.clear();
          for (const auto& x : split_list(v)) opt.dtypes.push_back(ref::parse_dtype(x));
        } else if (a == "--precision") {
          opt.precision = parse_precision(v);
        } else if (a == "--json") {
          opt.json = v;
        } else if (a == "--junit") {
          opt.junit = v;
        } else if (a == "--case") {
          opt.case_text = v;
        } else if (a == "--pass") {
          opt.forward = opt.backward = false;
          for (const auto& x : split_list(v)) {
            if (x == "forward") opt.forward = true;
            else if (x == "backward") opt.backward = true;
            else return "--pass takes forward and backward, not '" + x + "'";
          }
          opt.backward_asked = opt.backward;
        } else if (a == "--property") {
          if (!explicit_properties) opt.properties.clear();
          explicit_properties = true;
          for (const auto& x : split_list(v)) opt.properties.push_back(parse_property(x));
        }
      } else if (a == "--strict") {
        opt.strict = true;
      } else if (a == "--no-declines") {
        opt.no_declines = true;
      } else if (a == "--brief") {
        opt.brief = true;
      } else if (a == "--no-fork") {
        opt.fork = false;
      } else if (a == "--progress") {
        opt.progress = true;
      } else if (a == "--quiet") {
        opt.progress = false;
      } else if (!a.empty() && a[0] == '-') {
        return "verify: unknown option '" + a + "'";
      } else if (opt.target.empty()) {
        opt.target = a;
      } else {
        return "verify takes one TARGET, got '" + opt.target + "' and '" + a + "'";
      }
    } catch (const std::invalid_argument& e) {
      return e.what();
    } catch (const std::out_of_range&) {
      return a + ": value out of range";
    }
  }
  return "";
}

}  // namespace attncheck
