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

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += c;
    else if (c == '\n') o += "\\n";
    else if (static_cast<unsigned char>(c) < 0x20) o += ' ';
    else o += c;
  }
  return o;
}

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

const char* run_result(const PropertyOutcome& o) {
  if (o.failure) return "FAILED";
  if (!o.error.empty()) return "ERROR";
  if (!o.not_verified().empty()) return "NOT VERIFIED";
  return "ok";
}

struct Totals {
  int runs = 0, failed = 0, errors = 0, not_verified = 0, checked = 0, declined = 0;
  int exit_status() const {
    if (failed) return kExitFailed;
    if (errors) return kExitError;
    if (not_verified) return kExitNotVerified;
    return kExitPassed;
  }
  const char* word() const { return exit_word(exit_status()); }
};

Totals totals(const std::vector<Run>& runs, const std::string& impl = "") {
  Totals t;
  for (const auto& r : runs) {
    if (!impl.empty() && r.impl != impl) continue;
    const auto& o = r.outcome;
    ++t.runs;
    t.failed += o.failure.has_value();
    t.errors += !o.failure && !o.error.empty();
    t.not_verified += !o.not_verified().empty();
    t.checked += o.checked;
    t.declined += o.declined;
  }
  return t;
}

// "8 of 24 property runs failed, 2 not verified, 1 error; 640 cases checked, 80 declined"
std::string totals_text(const Totals& t) {
  std::string s = std::to_string(t.runs) + " property runs";
  if (t.failed) s += ", " + std::to_string(t.failed) + " failed";
  if (t.not_verified) s += ", " + std::to_string(t.not_verified) + " not verified";
  if (t.errors) s += ", " + std::to_string(t.errors) + " could not run";
  s += "; " + std::to_string(t.checked) + " cases checked";
  if (t.declined) s += ", " + std::to_string(t.declined) + " calls declined";
  return s;
}

std::string run_name(const PropertyOutcome& o) {
  return std::string(name_of(o.property)) + " " + ref::name_of(o.axes) + " " + ref::name_of(o.dtype);
}

// Where some runs verified nothing: the axes families and dtypes in which
// some run did check cases, as the options that verify only those.
std::string served_options(const std::vector<Run>& runs, const VerifyOptions& opt) {
  std::set<Axes> axes;
  std::set<DType> dtypes;
  for (const auto& r : runs)
    if (r.outcome.checked > 0) axes.insert(r.outcome.axes), dtypes.insert(r.outcome.dtype);
  if (axes.empty()) return "";
  std::string s;
  if (axes.size() < std::set<Axes>(opt.axes.begin(), opt.axes.end()).size()) {
    s += " --axes ";
    for (auto a : axes) s += std::string(s.back() == ' ' ? "" : ",") + ref::name_of(a);
  }
  if (dtypes.size() < std::set<DType>(opt.dtypes.begin(), opt.dtypes.end()).size()) {
    s += " --dtype ";
    for (auto d : dtypes) s += std::string(s.back() == ' ' ? "" : ",") + ref::name_of(d);
  }
  return s;
}

void print_table(std::ostream& out, const std::string& impl, const std::vector<Run>& runs) {
  out << "  property             axes             dtype  checked  declined  vacuous  result\n";
  for (const auto& r : runs) {
    if (r.impl != impl) continue;
    const auto& o = r.outcome;
    char line[200];
    std::snprintf(line, sizeof line, "  %-20s %-16s %-6s %7d  %8d  %7d  %s\n", name_of(o.property),
                  ref::name_of(o.axes), ref::name_of(o.dtype), o.checked, o.declined, o.vacuous, run_result(o));
    out << line;
  }
}

void print_coverage(std::ostream& out, const Coverage& cov, Precision precision) {
  out << "  coverage (cases checked / declined) by layout class:";
  for (const auto& [cls, n] : cov.by_class) out << " " << cls << " " << n.first << "/" << n.second;
  out << "\n  by axes and dtype:";
  for (const auto& [k, n] : cov.by_axes_dtype) out << " " << k << " " << n.first << "/" << n.second;
  out << "\n";
  for (const auto& [why, n] : cov.decline_reasons) out << "  declined " << n << "x: " << why << "\n";
  // Per dtype: the worst error / bound, and the worst error / the error of
  // the contract's literal evaluation in its own precision.
  for (const auto& [dt, bound] : cov.worst_bound_ratio) {
    char line[200];
    std::snprintf(line, sizeof line, "  %s (contract %s): worst error / bound %.3g", ref::name_of(dt),
                  name_of(contract_for(dt, precision)), bound);
    out << line;
    if (auto it = cov.worst_literal_ratio.find(dt); it != cov.worst_literal_ratio.end()) {
      std::snprintf(line, sizeof line, "; worst error / the contract's literal evaluation's error %.3g", it->second);
      out << line;
    } else {
      out << "; error / the literal evaluation's: not measured (no passing semantics case)";
    }
    out << "\n";
  }
}

// The runs of one implementation that were not verified or could not run,
// each with why.
void print_unverified(std::ostream& out, const std::string& impl, const std::vector<Run>& runs,
                      const VerifyOptions& opt) {
  std::vector<const Run*> nv;
  for (const auto& r : runs)
    if (r.impl == impl && !r.outcome.failure && (!r.outcome.error.empty() || !r.outcome.not_verified().empty()))
      nv.push_back(&r);
  if (nv.empty()) return;
  // One line per distinct reason, naming the runs.
  std::map<std::string, std::vector<std::string>> by_reason;
  for (const Run* r : nv) {
    const auto& o = r->outcome;
    by_reason[o.error.empty() ? "not verified: " + o.not_verified() : "could not run: " + o.error].push_back(
        run_name(o));
  }
  for (const auto& [why, names] : by_reason) {
    out << "  " << why << " (" << names.size() << " run" << (names.size() > 1 ? "s" : "") << ": ";
    for (size_t i = 0; i < names.size() && i < 4; ++i) out << (i ? ", " : "") << names[i];
    if (names.size() > 4) out << ", ...";
    out << ")\n";
  }
  std::vector<Run> own;
  for (const auto& r : runs)
    if (r.impl == impl) own.push_back(r);
  const std::string serve = served_options(own, opt);
  if (!serve.empty()) out << "  to verify only what it serves:" << serve << "\n";
}

bool write_json(const std::string& path, const VerifyOptions& opt, const std::vector<Run>& runs,
                const Totals& t, double secs) {
  std::ofstream j(path);
  j << "{\n  \"target\": \"" << json_escape(opt.target) << "\",\n  \"seed\": " << opt.seed
    << ",\n  \"status\": \"" << t.word() << "\",\n  \"exit_status\": " << t.exit_status()
    << ",\n  \"passed\": " << (t.exit_status() == kExitPassed ? "true" : "false")
    << ",\n  \"precision\": \"" << name_of(opt.precision) << "\""
    << ",\n  \"cases_checked\": " << t.checked << ",\n  \"calls_declined\": " << t.declined
    << ",\n  \"seconds\": " << secs << ",\n  \"runs\": [\n";
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& r = runs[i];
    const auto& o = r.outcome;
    const std::string why = o.error.empty() ? o.not_verified() : o.error;
    j << "    {\"impl\": \"" << json_escape(r.impl) << "\", \"property\": \"" << name_of(o.property)
      << "\", \"axes\": \"" << ref::name_of(o.axes) << "\", \"dtype\": \"" << ref::name_of(o.dtype)
      << "\", \"checked\": " << o.checked << ", \"declined\": " << o.declined << ", \"vacuous\": " << o.vacuous
      << ", \"contract\": \"" << name_of(o.contract) << "\""
      << ", \"failed\": " << (o.failure ? "true" : "false")
      << ", \"verified\": " << (!o.failure && why.empty() ? "true" : "false");
    if (!o.failure && !why.empty()) j << ", \"reason\": \"" << json_escape(why) << "\"";
    if (o.checked > 0) j << ", \"worst_error_bound_ratio\": " << o.worst_bound_ratio;
    if (o.worst_literal_ratio >= 0) j << ", \"worst_error_literal_ratio\": " << o.worst_literal_ratio;
    if (o.failure)
      j << ", \"case\": \"" << json_escape(o.failure->c.to_text()) << "\", \"summary\": \""
        << json_escape(o.failure->v.summary) << "\", \"diagnosis\": \"" << json_escape(o.failure->v.diagnosis)
        << "\", \"replay\": \"" << json_escape(r.replay) << "\"";
    j << "}" << (i + 1 < runs.size() ? "," : "") << "\n";
  }
  j << "  ]\n}\n";
  j.close();
  return static_cast<bool>(j);
}

bool write_junit(const std::string& path, const std::vector<Run>& runs, const Totals& t, double secs) {
  std::ofstream x(path);
  x << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"attncheck\" tests=\"" << t.runs
    << "\" failures=\"" << t.failed << "\" errors=\"" << t.errors << "\" skipped=\"" << t.not_verified
    << "\" time=\"" << secs << "\">\n";
  std::map<std::string, std::vector<const Run*>> by_impl;
  for (const auto& r : runs) by_impl[r.impl].push_back(&r);
  for (const auto& [impl, rs] : by_impl) {
    const Totals ti = totals(runs, impl);
    x << "  <testsuite name=\"" << xml_escape(impl) << "\" tests=\"" << ti.runs << "\" failures=\"" << ti.failed
      << "\" errors=\"" << ti.errors << "\" skipped=\"" << ti.not_verified << "\">\n";
    for (auto* r : rs) {
      const auto& o = r->outcome;
      x << "    <testcase classname=\"" << xml_escape(impl) << "\" name=\"" << name_of(o.property) << "."
        << ref::name_of(o.axes) << "." << ref::name_of(o.dtype) << "\" time=\"" << o.seconds << "\">\n";
      x << "      <properties><property name=\"precision_contract\" value=\"" << name_of(o.contract)
        << "\"/></properties>\n";
      if (o.failure)
        x << "      <failure message=\"" << xml_escape(o.failure->v.summary) << "\">"
          << xml_escape(o.failure->v.diagnosis + "\ncase: " + o.failure->c.to_text() + "\nreplay: " + r->replay)
          << "</failure>\n";
      else if (!o.error.empty())
        x << "      <error message=\"" << xml_escape(o.error) << "\"/>\n";
      else if (!o.not_verified().empty())
        x << "      <skipped message=\"" << xml_escape("not verified: " + o.not_verified()) << "\"/>\n";
      x << "    </testcase>\n";
    }
    x << "  </testsuite>\n";
  }
  x << "</testsuites>\n";
  x.close();
  return static_cast<bool>(x);
}

}  // namespace

const char* exit_word(int status) {
  switch (status) {
    case kExitPassed: return "PASSED";
    case kExitFailed: return "FAILED";
    case kExitNotVerified: return "NOT VERIFIED";
  }
  return "ERROR";
}

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
        if (!have) throw LoadError(opt.source + ": no implementation named '" + name + "'");
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
  const std::string source = plugin ? plugin->path() : opt.source;
  auto replay_line = [&](const attncheck_impl& impl, Property p, const Case& c) {
    // A command that fixes the property and options itself (a pytest item)
    // takes only the case, where it says {case}.
    if (const size_t at = opt.replay_command.find("{case}"); at != std::string::npos)
      return std::string(opt.replay_command).replace(at, 6, shell_quote(c.to_text()));
    std::string s = opt.replay_command.empty()
                        ? "attncheck verify " + shell_quote(opt.target) + " --impl " + impl.name
                        : opt.replay_command;
    s += std::string(" --property ") + name_of(p);
    if (opt.strict) s += " --strict";
    if (opt.no_declines) s += " --no-declines";
    if (opt.precision != Precision::fused && (c.dtype == DType::f16 || c.dtype == DType::bf16))
      s += std::string(" --precision ") + name_of(opt.precision);
    if (!opt.fork) s += " --no-fork";
    return s + " --case " + shell_quote(c.to_text());
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
    for (const auto& impl : impls)
      for (Property p : opt.properties) {
        Run r{impl.name, {}, replay_line(impl, p, c)};
        if (no_device.count(impl.name)) r.outcome.skipped = no_device[impl.name];
        else if (!property_accepts(p, c)) r.outcome.skipped = "the case is not one this property checks";
        else r.outcome = run_case(impl, p, c, sopt);
        r.outcome.property = p, r.outcome.axes = c.axes, r.outcome.dtype = c.dtype;
        const std::string why = r.outcome.error.empty() ? r.outcome.not_verified() : r.outcome.error;
        out << impl.name << " " << name_of(p) << ": " << run_result(r.outcome)
            << (why.empty() ? "" : " (" + why + ")") << "\n";
        if (r.outcome.failure) print_failure(out, r.outcome, r.replay);
        runs.push_back(std::move(r));
      }
  } else {
    for (const auto& impl : impls) {
      SuiteOptions iopt = sopt;
      if (!opt.brief)
        out << "verifying " << impl.name << " from " << source << " (seed " << opt.seed << ", "
            << opt.cases << " cases per property, axes family and dtype)\n";
      if (!opt.brief)
        for (DType dt : opt.dtypes)
          out << "  " << ref::name_of(dt) << ": precision contract " << name_of(contract_for(dt, opt.precision))
              << " (" << describe(contract_for(dt, opt.precision), dt) << ")\n";
      for (DType dt : opt.dtypes)
        for (Axes ax : opt.axes)
          for (Property p : opt.properties) {
            if (opt.interrupted && opt.interrupted()) {
              err << "attncheck: interrupted\n";
              return kExitError;
            }
            Run r{impl.name, {}, ""};
            if (no_device.count(impl.name)) {
              r.outcome.property = p, r.outcome.axes = ax, r.outcome.dtype = dt;
              r.outcome.skipped = no_device[impl.name];
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
      print_unverified(out, impl.name, runs, opt);
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
  if (!opt.json.empty() && !write_json(opt.json, opt, runs, t, secs)) {
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
