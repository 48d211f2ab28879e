// attncheck: the command line.
#include <attncheck/loader.h>
#include <attncheck/selfcheck.h>
#include <attncheck/verify.h>
#include <attncheck/verify_args.h>

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
    "or builtin:NAME) over generated cases, in guarded memory, each call in a forked child.\n";

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
      std::cout << "  " << impl.name << "  (" << device_name(impl.device_type)
                << (plugin->find_backward(impl.name) ? ", forward and backward" : "") << ")\n";
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

int cmd_verify(const std::vector<std::string>& args) {
  attncheck::VerifyOptions opt;
  opt.progress = isatty(2);
  bool help = false;
  const std::string error = attncheck::parse_verify_args(args, opt, &help);
  if (help) {
    std::cout << kVerifyUsage << attncheck::kVerifyOptionsHelp;
    return 0;
  }
  if (!error.empty()) return usage_error(error);
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
