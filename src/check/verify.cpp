#include <attncheck/loader.h>
#include <attncheck/suite.h>
#include <attncheck/verify.h>

#ifdef ATTNCHECK_HAVE_CUDA
#include "cuda/device_harness.h"
#endif

#include <chrono>
#include <fstream>
#include <map>

namespace attncheck {

namespace {

struct Run {
  std::string impl;
  PropertyOutcome outcome;
  std::string replay;
};

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

bool write_json(const std::string& path, const VerifyOptions& opt, const std::vector<Run>& runs, bool failed,
                int cases, double secs) {
  std::ofstream j(path);
  j << "{\n  \"target\": \"" << json_escape(opt.target) << "\",\n  \"seed\": " << opt.seed
    << ",\n  \"passed\": " << (failed ? "false" : "true") << ",\n  \"cases\": " << cases
    << ",\n  \"seconds\": " << secs << ",\n  \"runs\": [\n";
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& r = runs[i];
    const auto& o = r.outcome;
    j << "    {\"impl\": \"" << json_escape(r.impl) << "\", \"property\": \"" << name_of(o.property)
      << "\", \"axes\": \"" << ref::name_of(o.axes) << "\", \"dtype\": \"" << ref::name_of(o.dtype)
      << "\", \"passed\": " << o.passed << ", \"declined\": " << o.declined
      << ", \"failed\": " << (o.failure ? "true" : "false");
    if (o.failure)
      j << ", \"case\": \"" << json_escape(o.failure->c.to_text()) << "\", \"summary\": \""
        << json_escape(o.failure->v.summary) << "\", \"diagnosis\": \"" << json_escape(o.failure->v.diagnosis)
        << "\", \"replay\": \"" << json_escape(r.replay) << "\"";
    j << "}" << (i + 1 < runs.size() ? "," : "") << "\n";
  }
  j << "  ]\n}\n";
  return static_cast<bool>(j);
}

bool write_junit(const std::string& path, const std::vector<Run>& runs, int failed, double secs) {
  std::ofstream x(path);
  x << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"attncheck\" tests=\"" << runs.size()
    << "\" failures=\"" << failed << "\" time=\"" << secs << "\">\n";
  std::map<std::string, std::vector<const Run*>> by_impl;
  for (const auto& r : runs) by_impl[r.impl].push_back(&r);
  for (const auto& [impl, rs] : by_impl) {
    int f = 0;
    for (auto* r : rs) f += r->outcome.failure.has_value();
    x << "  <testsuite name=\"" << xml_escape(impl) << "\" tests=\"" << rs.size() << "\" failures=\"" << f << "\">\n";
    for (auto* r : rs) {
      const auto& o = r->outcome;
      x << "    <testcase classname=\"" << xml_escape(impl) << "\" name=\"" << name_of(o.property) << "."
        << ref::name_of(o.axes) << "." << ref::name_of(o.dtype) << "\" time=\"" << o.seconds << "\"";
      if (!o.failure) {
        x << "/>\n";
        continue;
      }
      x << ">\n      <failure message=\"" << xml_escape(o.failure->v.summary) << "\">"
        << xml_escape(o.failure->v.diagnosis + "\ncase: " + o.failure->c.to_text() + "\nreplay: " + r->replay)
        << "</failure>\n    </testcase>\n";
    }
    x << "  </testsuite>\n";
  }
  x << "</testsuites>\n";
  return static_cast<bool>(x);
}

}  // namespace

int run_verify(const VerifyOptions& opt, std::ostream& out, std::ostream& err) {
  // verify takes its cases and seed from its options, not from RC_PARAMS; a
  // malformed RC_PARAMS is still an error (RapidCheck would exit on it).
  try {
    rapidcheck_params_from_env();
  } catch (const std::invalid_argument& e) {
    err << "attncheck: " << e.what() << "\n";
    return 2;
  }
  std::shared_ptr<Plugin> plugin;
  std::vector<attncheck_impl> impls;
  const bool builtin = opt.target.rfind("builtin:", 0) == 0;
  try {
    if (builtin) {
      plugin = Plugin::builtin();
      impls.push_back(plugin->find(opt.target.substr(8)));
    } else {
      plugin = Plugin::load(opt.target);
      if (opt.impls.empty()) impls = plugin->impls();
    }
    for (const auto& name : opt.impls) {
      const auto& impl = plugin->find(name);
      bool have = false;
      for (const auto& i : impls) have |= std::string(i.name) == name;
      if (!have) impls.push_back(impl);
    }
  } catch (const LoadError& e) {
    err << "attncheck: " << e.what() << "\n";
    return 2;
  }
  for (const auto& impl : impls)
    if (impl.device_type != kDLCPU) {
#ifdef ATTNCHECK_HAVE_CUDA
      // Checked through the device harness (src/check/cuda/) when a device is there.
      std::string why;
      if (cuda_harness::device_present(&why)) continue;
      err << "attncheck: " << impl.name << " runs on CUDA: no CUDA device is present (" << why << ")\n";
#else
      err << "attncheck: " << impl.name
          << " runs on CUDA: no CUDA device is present (this build checks CPU implementations)\n";
#endif
      return 2;
    }
  SuiteOptions sopt;
  sopt.cases = opt.cases;
  sopt.seed = opt.seed;
  sopt.strict = opt.strict;
  sopt.fork = opt.fork;
  sopt.max_shrinks = opt.max_shrinks;
  sopt.max_case_shrinks = opt.max_case_shrinks;
  auto replay_line = [&](const attncheck_impl& impl, Property p, const Case& c) {
    std::string s = "attncheck verify " + shell_quote(opt.target);
    if (!builtin) s += std::string(" --impl ") + impl.name;
    s += std::string(" --property ") + name_of(p);
    if (opt.strict) s += " --strict";
    return s + " --case " + shell_quote(c.to_text());
  };

  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Run> runs;
  std::map<std::string, Coverage> coverage;
  int total_cases = 0;
  if (opt.case_text) {
    Case c;
    try {
      c = Case::parse(*opt.case_text);
    } catch (const std::exception& e) {
      err << "attncheck: --case: " << e.what() << "\n";
      return 2;
    }
    for (const auto& impl : impls)
      for (Property p : opt.properties) {
        if (!property_accepts(p, c)) continue;
        Run r{impl.name, run_case(impl, p, c, sopt), replay_line(impl, p, c)};
        total_cases += r.outcome.cases;
        out << impl.name << " " << name_of(p) << ": "
            << (r.outcome.failure ? "FAILED" : r.outcome.declined ? "declined" : "passed") << "\n";
        if (r.outcome.failure) print_failure(out, r.outcome, r.replay);
        runs.push_back(std::move(r));
      }
  } else {
    for (const auto& impl : impls) {
      out << "verifying " << impl.name << " from " << plugin->path() << " (seed " << opt.seed << ", "
          << opt.cases << " cases per property, axes family and dtype)\n";
      for (DType dt : opt.dtypes)
        for (Axes ax : opt.axes)
          for (Property p : opt.properties) {
            if (opt.progress)
              sopt.progress = [&](int done, int total) {
                err << "\r  " << impl.name << " " << name_of(p) << " " << ref::name_of(ax) << " "
                    << ref::name_of(dt) << " " << done << "/" << total << "        " << std::flush;
              };
            Run r{impl.name, run_property(impl, p, ax, dt, sopt, &coverage[impl.name]), ""};
            if (r.outcome.failure) r.replay = replay_line(impl, p, r.outcome.failure->c);
            total_cases += r.outcome.cases;
            runs.push_back(std::move(r));
          }
      if (opt.progress) err << "\r" << std::string(70, ' ') << "\r";
    }
    for (const auto& impl : impls) {
      out << "\n" << impl.name << ":\n";
      out << "  property             axes             dtype  passed  declined  result\n";
      for (const auto& r : runs) {
        if (r.impl != impl.name) continue;
        const auto& o = r.outcome;
        char line[200];
        std::snprintf(line, sizeof line, "  %-20s %-16s %-6s %6d  %8d  %s\n", name_of(o.property),
                      ref::name_of(o.axes), ref::name_of(o.dtype), o.passed, o.declined,
                      o.failure ? "FAILED" : "ok");
        out << line;
      }
      for (const auto& r : runs)
        if (r.impl == impl.name && r.outcome.failure) print_failure(out, r.outcome, r.replay);
      const Coverage& cov = coverage[impl.name];
      out << "  coverage (cases run / declined) by layout class:";
      for (const auto& [cls, n] : cov.by_class) out << " " << cls << " " << n.first << "/" << n.second;
      out << "\n  by axes and dtype:";
      for (const auto& [k, n] : cov.by_axes_dtype) out << " " << k << " " << n.first << "/" << n.second;
      out << "\n";
      for (const auto& [why, n] : cov.decline_reasons) out << "  declined " << n << "x: " << why << "\n";
      char ratio[64] = "not measured (no passing semantics case in f32, f16 or bf16)";
      if (cov.worst_f32_ratio >= 0) std::snprintf(ratio, sizeof ratio, "%.3g", cov.worst_f32_ratio);
      char line[200];
      std::snprintf(line, sizeof line, "  worst error / bound %.3g; worst error / reference_f32's error %s\n",
                    cov.worst_bound_ratio, ratio);
      out << line;
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int failed = 0;
  for (const auto& r : runs) failed += r.outcome.failure.has_value();
  char summary[200];
  std::snprintf(summary, sizeof summary, "\n%s: %d property runs, %d failed; %d cases in %.1f s (%.0f cases/s)\n",
                failed ? "FAILED" : "PASSED", static_cast<int>(runs.size()), failed, total_cases, secs,
                secs > 0 ? total_cases / secs : 0.0);
  out << summary;
  if (!opt.json.empty() && !write_json(opt.json, opt, runs, failed > 0, total_cases, secs)) {
    err << "attncheck: cannot write " << opt.json << "\n";
    return 2;
  }
  if (!opt.junit.empty() && !write_junit(opt.junit, runs, failed, secs)) {
    err << "attncheck: cannot write " << opt.junit << "\n";
    return 2;
  }
  return failed ? 1 : 0;
}

}  // namespace attncheck
