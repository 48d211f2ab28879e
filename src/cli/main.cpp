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
    "       attncheck verify TARGET [--impl NAME] [--cases N] [--seed S]\n"
    "                        [--axes spatial,temporal,spatiotemporal] [--dtype f32,f64,f16,bf16]\n"
    "                        [--json FILE] [--junit FILE] [--case TEXT] [--property NAME]\n"
    "                        [--strict] [--no-fork]\n"
    "       attncheck selfcheck\n"
    "TARGET is a plugin library's path or builtin:NAME.\n";

int usage_error(const std::string& what) {
  std::cerr << "attncheck: " << what << "\n" << kUsage;
  return 2;
}

const char* device_name(DLDeviceType t) { return t == kDLCUDA ? "cuda" : "cpu"; }

int cmd_list(const std::vector<std::string>& args) {
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

int cmd_verify(const std::vector<std::string>& args) {
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
          a == "--json" || a == "--junit" || a == "--case" || a == "--property") {
        const std::string* v = value();
        if (!v) return usage_error(a + " needs a value");
        if (a == "--impl") opt.impls.push_back(*v);
        else if (a == "--cases") {
          size_t pos = 0;
          const long n = std::stol(*v, &pos);
          if (pos != v->size() || n < 1 || n > 1000000) return usage_error("--cases must be an integer in 1..1000000");
          opt.cases = static_cast<int>(n);
        } else if (a == "--seed") {
          size_t pos = 0;
          opt.seed = std::stoull(*v, &pos);
          if (pos != v->size()) return usage_error("--seed must be an unsigned integer");
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
        } else if (a == "--json") opt.json = *v;
        else if (a == "--junit") opt.junit = *v;
        else if (a == "--case") opt.case_text = *v;
        else if (a == "--property") {
          if (!explicit_properties) opt.properties.clear();
          explicit_properties = true;
          for (const auto& x : split_list(*v)) opt.properties.push_back(attncheck::parse_property(x));
        }
      } else if (a == "--strict") opt.strict = true;
      else if (a == "--no-fork") opt.fork = false;
      else if (a == "--progress") opt.progress = true;
      else if (a == "--quiet") opt.progress = false;
      else if (!a.empty() && a[0] == '-') return usage_error("unknown option '" + a + "'");
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
