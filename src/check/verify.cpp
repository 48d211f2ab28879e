#include <attncheck/loader.h>
#include <attncheck/suite.h>
#include <attncheck/verify.h>

#ifdef ATTNCHECK_HAVE_CUDA
#include "cuda/device_harness.h"
#endif

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <set>

namespace attncheck {

namespace {

using Run = VerifyRun;

}  // namespace

int run_verify(const VerifyOptions& opt, std::ostream& out, std::ostream& err, std::vector<VerifyRun>* runs_out) {
  // verify takes its cases and seed from its options, not from RC_PARAMS; a
  // malformed RC_PARAMS is still an error (RapidCheck would exit on it).
  try {
    rapidcheck_params_from_env();
  } catch (const std::invalid_argument& e) {
    err << "attncheck: " << e.what() << "\n";
    return kExitError;
  }
  std::shared_ptr<Plugin> plugin;
  std::vector<attncheck_impl> impls;
  const bool builtin = opt.target.rfind("builtin:", 0) == 0;
  try {
    if (!opt.given.empty()) {
      impls = opt.given;
      for (const auto& name : opt.impls) {
        bool have = false;
        for (const auto& i : impls) have |= std::string(i.name) == name;
        if (!have) throw LoadError(opt.target + ": no implementation named '" + name + "'");
      }
      if (!opt.impls.empty())
        std::erase_if(impls, [&](const attncheck_impl& i) {
          return std::find(opt.impls.begin(), opt.impls.end(), std::string(i.name)) == opt.impls.end();
        });
    } else if (builtin) {
      plugin = Plugin::builtin();
      impls.push_back(plugin->find(opt.target.substr(8)));
    } else {
      plugin = Plugin::load(opt.target);
      if (opt.impls.empty()) impls = plugin->impls();
    }
    for (const auto& name : plugin ? opt.impls : std::vector<std::string>{}) {
      const auto& impl = plugin->find(name);
      bool have = false;
      for (const auto& i : impls) have |= std::string(i.name) == name;
      if (!have) impls.push_back(impl);
    }
  } catch (const LoadError& e) {
    err << "attncheck: " << e.what() << "\n";
    return kExitError;
  }
  // Implementations on a device this machine does not have are not
  // verified (with the reason); the others run.
  std::map<std::string, std::string> no_device;
  for (const auto& impl : impls)
    if (impl.device_type != kDLCPU) {
      std::string why = "this build of attncheck has no CUDA support";
#ifdef ATTNCHECK_HAVE_CUDA
      // Checked through the device harness (src/check/cuda/) when a device is there.
      if (impl.device_type == kDLCUDA && cuda_harness::device_present(&why)) continue;
#endif
      no_device[impl.name] = impl.device_type == kDLCUDA ? "no CUDA device is present (" + why + ")"
                                                         : "device type " + std::to_string(impl.device_type) +
                                                               " is not one attncheck can call";
    }
  SuiteOptions sopt;
  sopt.cases = opt.cases;
  sopt.seed = opt.seed;
  sopt.strict = opt.strict;
  sopt.fork = opt.fork;
  sopt.no_declines = opt.no_declines;
  sopt.precision = opt.precision;
  sopt.max_shrinks = opt.max_shrinks;
  sopt.max_case_shrinks = opt.max_case_shrinks;
  sopt.timeout_base = opt.timeout_base;
  sopt.memory_limit_gib = opt.memory_limit_gib;
  const std::string source = plugin ? plugin->path() : opt.target;
  const ReplayOptions replay_options{opt.strict, opt.no_declines, opt.fork, opt.precision};
  auto replay_line = [&](const attncheck_impl& impl, Property p, const Case& c) {
    const std::string command = opt.replay_command.empty()
                                    ? "attncheck verify " + shell_quote(opt.target) + " --impl " + impl.name
                                    : opt.replay_command;
    return verify_replay(command, p, c, replay_options);
  };

  auto backward_of = [&](const attncheck_impl& impl) -> const attncheck_backward_impl* {
    if (plugin) return plugin->find_backward(impl.name);
    for (const auto& b : opt.given_backward)
      if (std::string(b.name) == impl.name) return &b;
    return nullptr;
  };

  // The properties each implementation runs: the forward's, and the
  // backward's where it has a backward (asked for with --pass backward and
  // missing, each such run is not verified, with the reason).
  auto properties_of = [&](const attncheck_impl& impl) {
    std::vector<std::pair<Property, std::string>> v;
    const bool has_backward = backward_of(impl) != nullptr;
    for (Property p : opt.properties) {
      if (!is_backward(p)) {
        if (opt.forward) v.push_back({p, ""});
      } else if (opt.backward && has_backward) {
        v.push_back({p, ""});
      } else if (opt.backward && opt.backward_asked) {
        v.push_back({p, std::string(impl.name) + " has no backward (" + (plugin ? std::string("its library exports no attncheck_backward_impls entry for it")
                                                           : std::string("this target gives none")) + ")"});
      }
    }
    return v;
  };
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Run> runs;
  std::map<std::string, Coverage> coverage;
  std::map<std::string, std::string> hang_notes;
  if (opt.case_text) {
    Case c;
    try {
      c = Case::parse(*opt.case_text);
    } catch (const std::exception& e) {
      err << "attncheck: --case: " << e.what() << "\n";
      return kExitError;
    }
    for (const auto& impl : impls) {
      SuiteOptions copt = sopt;
      copt.backward = backward_of(impl);
      for (const auto& [p, missing] : properties_of(impl)) {
        Run r{impl.name, {}, replay_line(impl, p, c)};
        if (no_device.count(impl.name)) r.outcome.skipped = no_device[impl.name];
        else if (!missing.empty()) r.outcome.skipped = missing;
        else if (!property_accepts(p, c)) r.outcome.skipped = "the case is not one this property checks";
        else r.outcome = run_case(impl, p, c, copt);
        r.outcome.property = p, r.outcome.axes = c.axes, r.outcome.dtype = c.dtype;
        const std::string why = r.outcome.error.empty() ? r.outcome.not_verified() : r.outcome.error;
        out << impl.name << " " << name_of(p) << ": " << run_result(r.outcome)
            << (why.empty() ? "" : " (" + why + ")") << "\n";
        if (r.outcome.failure) print_failure(out, r.outcome, r.replay);
        runs.push_back(std::move(r));
      }
    }
  } else {
    for (const auto& impl : impls) {
      SuiteOptions iopt = sopt;
      iopt.backward = backward_of(impl);
      const auto properties = properties_of(impl);
      if (!opt.brief)
        out << "verifying " << impl.name << " from " << source << " (seed " << opt.seed << ", "
            << opt.cases << " cases per property, axes family and dtype)\n";
      if (!opt.brief)
        for (DType dt : opt.dtypes)
          out << "  " << ref::name_of(dt) << ": precision contract " << name_of(contract_for(dt, opt.precision))
              << " (" << describe(contract_for(dt, opt.precision), dt) << ")\n";
      for (DType dt : opt.dtypes)
        for (Axes ax : opt.axes)
          for (const auto& [p, missing] : properties) {
            if (opt.interrupted && opt.interrupted()) {
              err << "attncheck: interrupted\n";
              return kExitError;
            }
            Run r{impl.name, {}, ""};
            if (no_device.count(impl.name) || !missing.empty()) {
              r.outcome.property = p, r.outcome.axes = ax, r.outcome.dtype = dt;
              r.outcome.skipped = missing.empty() ? no_device[impl.name] : missing;
              runs.push_back(std::move(r));
              continue;
            }
            if (opt.progress)
              iopt.progress = [&](int done, int total) {
                err << "\r  " << impl.name << " " << name_of(p) << " " << ref::name_of(ax) << " "
                    << ref::name_of(dt) << " " << done << "/" << total << "        " << std::flush;
              };
            r.outcome = run_property(impl, p, ax, dt, iopt, &coverage[impl.name]);
            if (r.outcome.failure) r.replay = replay_line(impl, p, r.outcome.failure->c);
            // One hang must not cost every later property its full time
            // limit: after it, calls get 2 s and hangs are not shrunk.
            if (r.outcome.hung && iopt.shrink_hangs) {
              iopt.timeout_base = std::min(iopt.timeout_base, 2.0);
              iopt.shrink_hangs = false;
              hang_notes[impl.name] = "after the hang in " + run_name(r.outcome) +
                                      ", later calls had a time limit of 2 s (plus 10 s per GFLOP) and hangs "
                                      "were not shrunk";
            }
            runs.push_back(std::move(r));
          }
      if (opt.progress) err << "\r" << std::string(70, ' ') << "\r";
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!opt.case_text) {
    for (const auto& impl : impls) {
      const Totals t = totals(runs, impl.name);
      if (opt.brief) {
        double impl_secs = 0;
        for (const auto& r : runs)
          if (r.impl == impl.name) impl_secs += r.outcome.seconds;
        char took[48];
        std::snprintf(took, sizeof took, " in %.1f s", impl_secs);
        out << impl.name << ": " << t.word() << ", " << totals_text(t) << took << "\n";
        if (t.exit_status() == kExitPassed) continue;
      } else {
        out << "\n" << impl.name << ":\n";
      }
      if (no_device.count(impl.name)) {
        out << "  not verified: " << no_device[impl.name] << " (all " << t.runs << " runs)\n";
        continue;
      }
      print_table(out, impl.name, runs);
      for (const auto& r : runs)
        if (r.impl == impl.name && r.outcome.failure) print_failure(out, r.outcome, r.replay);
      if (hang_notes.count(impl.name)) out << "  note: " << hang_notes[impl.name] << "\n";
      print_unverified(out, impl.name, runs, opt.axes, opt.dtypes);
      print_coverage(out, coverage[impl.name], opt.precision);
    }
  }
  const Totals t = totals(runs);
  char timing[96];
  std::snprintf(timing, sizeof timing, " in %.1f s (%.0f cases/s)", secs, secs > 0 ? t.checked / secs : 0.0);
  // --brief: the implementations' lines are the summary (the totals too when several).
  if (!opt.brief || opt.case_text || impls.size() > 1)
    out << (opt.brief && !opt.case_text ? "" : "\n") << t.word() << ": " << totals_text(t) << timing << "\n";
  if (t.exit_status() == kExitNotVerified)
    out << "(exit status 3: nothing failed, but the runs above marked NOT VERIFIED checked no case)\n";
  if (runs_out) *runs_out = runs;
  bool unwritten = false;
  if (!opt.json.empty() && !write_json(opt.json, ReportHeader{opt.target, opt.seed, opt.precision}, runs, t, secs)) {
    err << "attncheck: cannot write the JSON report " << opt.json << "\n";
    unwritten = true;
  }
  if (!opt.junit.empty() && !write_junit(opt.junit, runs, t, secs)) {
    err << "attncheck: cannot write the JUnit report " << opt.junit << "\n";
    unwritten = true;
  }
  if (!unwritten) return t.exit_status();
  if (t.exit_status() == kExitFailed) {
    err << "attncheck: exit status 1: a property failed (and a report could not be written)\n";
    return kExitFailed;
  }
  return kExitError;
}

}  // namespace attncheck
