#include <attncheck/generators.h>
#include <attncheck/loader.h>
#include <attncheck/shrink.h>
#include <attncheck/verify.h>

#include <rapidcheck/detail/TestListener.h>

#include <chrono>
#include <cstdlib>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

namespace attncheck {

namespace {

struct Failure {
  Case c;
  Verdict v;
};

struct PropertyRun {
  PropertyRun(std::string i, Property p, Axes a, DType d) : impl(std::move(i)), property(p), axes(a), dtype(d) {}
  std::string impl;
  Property property;
  Axes axes;
  DType dtype;
  int passed = 0, declined = 0;
  std::optional<Failure> failure;
  int tests_before_failure = 0;  // cases run before the first failure
  double seconds = 0;
  std::string replay;
};

struct Coverage {
  std::map<std::string, std::pair<int, int>> by_class;  // class -> (run, declined)
  std::map<std::string, std::pair<int, int>> by_axes_dtype;
  std::map<std::string, int> decline_reasons;
};

class Listener : public rc::detail::TestListener {
 public:
  explicit Listener(int max_shrinks) : max_shrinks_(max_shrinks) {}
  void onTestCaseFinished(const rc::detail::CaseDescription&) override {}
  void onShrinkTried(const rc::detail::CaseDescription&, bool) override { ++shrinks; }
  void onTestFinished(const rc::detail::TestMetadata&, const rc::detail::TestResult&) override {}
  int shrinks = 0;
  int max_shrinks_;
};

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

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

void print_failure(std::ostream& out, const PropertyRun& r) {
  const Failure& f = *r.failure;
  const Case& c = f.c;
  out << "  FAILED " << name_of(r.property) << " (" << ref::name_of(r.axes) << ", "
      << ref::name_of(r.dtype) << ") after " << r.tests_before_failure + 1 << " case(s)\n";
  out << "    " << f.v.summary << "\n";
  for (const auto& d : f.v.details) out << "    " << d << "\n";
  if (r.property == Property::semantics || r.property == Property::robustness)
    out << "    diagnosis: " << (f.v.diagnosis.empty() ? "no known wrong semantics matches" : f.v.diagnosis)
        << "\n";
  out << "    minimal case: " << ref::name_of(c.axes) << " " << ref::name_of(c.dtype) << ", B=" << c.B
      << " C=" << c.C << " Cv=" << c.Cv << " heads=" << c.heads << " scale=" << c.scale << ", groups "
      << c.groups() << ", Sq " << c.Sq() << ", Sk " << c.Sk() << ", share " << name_of(c.share) << "\n";
  for (int t = 0; t < 4; ++t)
    out << "      " << role_name(t) << (t == 3 ? " " : "   ")
        << make_layout(c.layout[t], c.shape(t)).str()
        << (c.layout[t].misalign ? " misaligned" : "")
        << (t < 3 ? std::string(" values ") + name_of(c.values[t].kind) : std::string()) << "\n";
  out << "    replay: " << r.replay << "\n";
}

}  // namespace

int run_verify(const VerifyOptions& opt, std::ostream& out, std::ostream& err) {
  std::shared_ptr<Plugin> plugin;
  std::vector<attncheck_impl> impls;
  try {
    if (opt.target.rfind("builtin:", 0) == 0) {
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
      err << "attncheck: " << impl.name
          << " runs on CUDA: no CUDA device is present (this build checks CPU implementations)\n";
      return 2;
    }

  CheckOptions copt;
  copt.run.fork = opt.fork;
  copt.strict = opt.strict;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<PropertyRun> runs;
  std::map<std::string, Coverage> coverage;
  std::map<std::string, double> worst_f32_ratio, worst_bound_ratio;
  int total_cases = 0;
  bool any_failed = false;

  auto replay_line = [&](const attncheck_impl& impl, Property p, const Case& c) {
    std::string s = "attncheck verify " + shell_quote(opt.target);
    if (opt.target.rfind("builtin:", 0) != 0) s += std::string(" --impl ") + impl.name;
    s += std::string(" --property ") + name_of(p);
    if (opt.strict) s += " --strict";
    return s + " --case " + shell_quote(c.to_text());
  };

  // Replay of one case.
  if (opt.case_text) {
    Case c;
    try {
      c = Case::parse(*opt.case_text);
    } catch (const std::exception& e) {
      err << "attncheck: --case: " << e.what() << "\n";
      return 2;
    }
    copt.compare_f32 = true;
    for (const auto& impl : impls)
      for (Property p : opt.properties) {
        if (!property_accepts(p, c)) continue;
        PropertyRun r(impl.name, p, c.axes, c.dtype);
        const Verdict v = check_property(p, impl, c, copt);
        ++total_cases;
        if (v.kind == Verdict::pass) ++r.passed;
        if (v.kind == Verdict::declined) ++r.declined;
        if (v.kind == Verdict::fail) {
          r.failure = Failure{c, v};
          r.replay = replay_line(impl, p, c);
          any_failed = true;
        }
        out << impl.name << " " << name_of(p) << ": "
            << (v.kind == Verdict::pass ? "passed" : v.kind == Verdict::declined ? "declined: " + v.summary : "FAILED")
            << "\n";
        if (r.failure) print_failure(out, r);
        runs.push_back(r);
      }
  } else {
    for (const auto& impl : impls) {
      out << "verifying " << impl.name << " from " << plugin->path() << " (seed " << opt.seed << ", "
          << opt.cases << " cases per property, axes family and dtype)\n";
      for (DType dt : opt.dtypes)
        for (Axes ax : opt.axes)
          for (Property p : opt.properties) {
            PropertyRun r(impl.name, p, ax, dt);
            const auto start = std::chrono::steady_clock::now();
            gen::CaseOptions g;
            g.axes = ax;
            g.dtype = dt;
            g.property = p;
            Coverage& cov = coverage[impl.name];
            CheckOptions po = copt;
            po.compare_f32 = p == Property::semantics;
            po.diagnose = false;  // only the minimal case is diagnosed, below
            int seen = 0;
            bool failed_once = false;
            Listener listener(opt.max_shrinks);
            auto body = [&] {
              const Case c = *rc::gen::suchThat(gen::attention_case(g),
                                                [p](const Case& x) { return property_accepts(p, x); });
              if (failed_once && listener.shrinks > opt.max_shrinks) RC_SUCCEED("shrink budget spent");
              Verdict v = check_property(p, impl, c, po);
              ++total_cases;
              if (!failed_once) {
                ++seen;
                const std::string ad = std::string(ref::name_of(ax)) + " " + ref::name_of(dt);
                cov.by_axes_dtype[ad].first++;
                for (const auto& cls : c.layout_classes()) cov.by_class[cls].first++;
                if (v.kind == Verdict::declined) {
                  cov.by_axes_dtype[ad].second++;
                  for (const auto& cls : c.layout_classes()) cov.by_class[cls].second++;
                  cov.decline_reasons[v.summary]++;
                }
              }
              if (v.kind == Verdict::fail) {
                if (!failed_once) r.tests_before_failure = seen - 1;
                failed_once = true;
                r.failure = Failure{c, v};
                RC_FAIL(v.summary);
              }
              if (v.kind == Verdict::declined && !failed_once) ++r.declined;
              else if (!failed_once) {
                ++r.passed;
                if (p == Property::semantics && v.f32_ratio >= 0)
                  worst_f32_ratio[impl.name] = std::max(worst_f32_ratio[impl.name], v.f32_ratio);
                worst_bound_ratio[impl.name] = std::max(worst_bound_ratio[impl.name], v.worst_ratio);
              }
              if (opt.progress) {
                err << "\r  " << impl.name << " " << name_of(p) << " " << ref::name_of(ax) << " "
                    << ref::name_of(dt) << " " << seen << "/" << opt.cases << "        " << std::flush;
              }
            };
            rc::detail::TestParams params;
            params.seed = opt.seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(p) * 1000003 +
                          static_cast<uint64_t>(ax) * 7919 + static_cast<uint64_t>(dt) * 104729;
            params.maxSuccess = opt.cases;
            params.maxSize = 100;
            params.maxDiscardRatio = 10;
            rc::detail::TestMetadata meta;
            meta.id = std::string(impl.name) + "/" + name_of(p);
            const auto result = rc::detail::checkTestable(body, meta, params, listener);
            (void)result;
            if (r.failure) {
              // RapidCheck's shrink, then attncheck's own over the case's
              // fields, then the minimal case is diagnosed.
              r.failure->c = shrink_case(
                  r.failure->c,
                  [&](const Case& c) {
                    return property_accepts(p, c) && check_property(p, impl, c, po).kind == Verdict::fail;
                  },
                  opt.max_case_shrinks);
              CheckOptions d = copt;
              d.compare_f32 = true;
              Verdict v = check_property(p, impl, r.failure->c, d);
              if (v.kind == Verdict::fail) r.failure->v = v;
              r.replay = replay_line(impl, p, r.failure->c);
              any_failed = true;
            }
            r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            runs.push_back(r);
          }
      if (opt.progress) err << "\r" << std::string(70, ' ') << "\r";
    }
    // Text report.
    for (const auto& impl : impls) {
      out << "\n" << impl.name << ":\n";
      out << "  property             axes             dtype  passed  declined  result\n";
      for (const auto& r : runs) {
        if (r.impl != impl.name) continue;
        char line[200];
        std::snprintf(line, sizeof line, "  %-20s %-16s %-6s %6d  %8d  %s\n", name_of(r.property),
                      ref::name_of(r.axes), ref::name_of(r.dtype), r.passed, r.declined,
                      r.failure ? "FAILED" : "ok");
        out << line;
      }
      for (const auto& r : runs)
        if (r.impl == impl.name && r.failure) print_failure(out, r);
      const Coverage& cov = coverage[impl.name];
      out << "  coverage (cases run / declined) by layout class:";
      for (const auto& [cls, n] : cov.by_class) out << " " << cls << " " << n.first << "/" << n.second;
      out << "\n  by axes and dtype:";
      for (const auto& [k, n] : cov.by_axes_dtype) out << " " << k << " " << n.first << "/" << n.second;
      out << "\n";
      for (const auto& [why, n] : cov.decline_reasons) out << "  declined " << n << "x: " << why << "\n";
      char ratio[160];
      std::snprintf(ratio, sizeof ratio,
                    "  worst error / bound %.3g; worst error / reference_f32's error %.3g\n",
                    worst_bound_ratio[impl.name], worst_f32_ratio.count(impl.name) ? worst_f32_ratio[impl.name] : -1.0);
      out << ratio;
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int failed = 0;
  for (const auto& r : runs) failed += r.failure.has_value();
  char summary[200];
  std::snprintf(summary, sizeof summary, "\n%s: %d property runs, %d failed; %d cases in %.1f s (%.0f cases/s)\n",
                any_failed ? "FAILED" : "PASSED", static_cast<int>(runs.size()), failed, total_cases, secs,
                secs > 0 ? total_cases / secs : 0.0);
  out << summary;

  if (!opt.json.empty()) {
    std::ofstream j(opt.json);
    j << "{\n  \"target\": \"" << json_escape(opt.target) << "\",\n  \"seed\": " << opt.seed
      << ",\n  \"passed\": " << (any_failed ? "false" : "true") << ",\n  \"cases\": " << total_cases
      << ",\n  \"seconds\": " << secs << ",\n  \"runs\": [\n";
    for (size_t i = 0; i < runs.size(); ++i) {
      const auto& r = runs[i];
      j << "    {\"impl\": \"" << json_escape(r.impl) << "\", \"property\": \"" << name_of(r.property)
        << "\", \"axes\": \"" << ref::name_of(r.axes) << "\", \"dtype\": \"" << ref::name_of(r.dtype)
        << "\", \"passed\": " << r.passed << ", \"declined\": " << r.declined
        << ", \"failed\": " << (r.failure ? "true" : "false");
      if (r.failure) {
        j << ", \"case\": \"" << json_escape(r.failure->c.to_text()) << "\", \"summary\": \""
          << json_escape(r.failure->v.summary) << "\", \"diagnosis\": \"" << json_escape(r.failure->v.diagnosis)
          << "\", \"replay\": \"" << json_escape(r.replay) << "\"";
      }
      j << "}" << (i + 1 < runs.size() ? "," : "") << "\n";
    }
    j << "  ]\n}\n";
    if (!j) {
      err << "attncheck: cannot write " << opt.json << "\n";
      return 2;
    }
  }
  if (!opt.junit.empty()) {
    std::ofstream x(opt.junit);
    x << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"attncheck\" tests=\"" << runs.size()
      << "\" failures=\"" << failed << "\" time=\"" << secs << "\">\n";
    std::map<std::string, std::vector<const PropertyRun*>> by_impl;
    for (const auto& r : runs) by_impl[r.impl].push_back(&r);
    for (const auto& [impl, rs] : by_impl) {
      int f = 0;
      for (auto* r : rs) f += r->failure.has_value();
      x << "  <testsuite name=\"" << xml_escape(impl) << "\" tests=\"" << rs.size() << "\" failures=\"" << f
        << "\">\n";
      for (auto* r : rs) {
        x << "    <testcase classname=\"" << xml_escape(impl) << "\" name=\"" << name_of(r->property) << "."
          << ref::name_of(r->axes) << "." << ref::name_of(r->dtype) << "\" time=\"" << r->seconds << "\"";
        if (!r->failure) {
          x << "/>\n";
          continue;
        }
        x << ">\n      <failure message=\"" << xml_escape(r->failure->v.summary) << "\">"
          << xml_escape(r->failure->v.diagnosis + "\ncase: " + r->failure->c.to_text() + "\nreplay: " + r->replay)
          << "</failure>\n    </testcase>\n";
      }
      x << "  </testsuite>\n";
    }
    x << "</testsuites>\n";
    if (!x) {
      err << "attncheck: cannot write " << opt.junit << "\n";
      return 2;
    }
  }
  return any_failed ? 1 : 0;
}

}  // namespace attncheck
