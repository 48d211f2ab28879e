// attncheck: the command line.
#include <attncheck/loader.h>
#include <attncheck/selfcheck.h>

#include <cstring>
#include <iostream>
#include <string>
#include <vector>

namespace {

constexpr const char* kUsage =
    "usage: attncheck list [PLUGIN]\n"
    "       attncheck verify TARGET [--impl NAME] [--cases N] [--seed S]\n"
    "                        [--axes spatial,temporal,spatiotemporal] [--dtype f32,f64,f16,bf16]\n"
    "                        [--json FILE] [--junit FILE] [--case TEXT]\n"
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
  if (cmd == "verify") {
    std::cerr << "attncheck: verify is not implemented yet\n";
    return 2;
  }
  return usage_error("unknown command '" + cmd + "'");
}
