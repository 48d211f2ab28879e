#include <attncheck/report.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

namespace attncheck {

namespace {

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

// Where some runs verified nothing: the axes families and dtypes in which
// some run did check cases, as the options that verify only those.
std::string served_options(const std::vector<VerifyRun>& runs, const std::vector<Axes>& req_axes,
                           const std::vector<DType>& req_dtypes) {
  std::set<Axes> axes;
  std::set<DType> dtypes;
  for (const auto& r : runs)
    if (r.outcome.checked > 0) axes.insert(r.outcome.axes), dtypes.insert(r.outcome.dtype);
  if (axes.empty()) return "";
  std::string s;
  if (axes.size() < std::set<Axes>(req_axes.begin(), req_axes.end()).size()) {
    s += " --axes ";
    for (auto a : axes) s += std::string(s.back() == ' ' ? "" : ",") + ref::name_of(a);
  }
  if (dtypes.size() < std::set<DType>(req_dtypes.begin(), req_dtypes.end()).size()) {
    s += " --dtype ";
    for (auto d : dtypes) s += std::string(s.back() == ' ' ? "" : ",") + ref::name_of(d);
  }
  return s;
}

}  // namespace

const char* run_result(const PropertyOutcome& o) {
  if (o.failure) return "FAILED";
  if (!o.error.empty()) return "ERROR";
  if (!o.not_verified().empty()) return "NOT VERIFIED";
  return "ok";
}

int Totals::exit_status() const {
  if (failed) return kExitFailed;
  if (errors) return kExitError;
  if (not_verified) return kExitNotVerified;
  return kExitPassed;
}

Totals totals(const std::vector<VerifyRun>& runs, const std::string& impl) {
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

void print_table(std::ostream& out, const std::string& impl, const std::vector<VerifyRun>& runs) {
  // The property column fits the longest name shown (backward.* are longer).
  int width = 20;
  for (const auto& r : runs)
    if (r.impl == impl) width = std::max(width, static_cast<int>(std::strlen(name_of(r.outcome.property))));
  out << "  " << std::string("property") + std::string(static_cast<size_t>(width) - 8, ' ')
      << " axes             dtype  checked  declined  vacuous  result\n";
  for (const auto& r : runs) {
    if (r.impl != impl) continue;
    const auto& o = r.outcome;
    char line[240];
    std::snprintf(line, sizeof line, "  %-*s %-16s %-6s %7d  %8d  %7d  %s\n", width, name_of(o.property),
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
void print_unverified(std::ostream& out, const std::string& impl, const std::vector<VerifyRun>& runs,
                      const std::vector<Axes>& axes, const std::vector<DType>& dtypes) {
  std::vector<const VerifyRun*> nv;
  for (const auto& r : runs)
    if (r.impl == impl && !r.outcome.failure && (!r.outcome.error.empty() || !r.outcome.not_verified().empty()))
      nv.push_back(&r);
  if (nv.empty()) return;
  // One line per distinct reason, naming the runs.
  std::map<std::string, std::vector<std::string>> by_reason;
  for (const VerifyRun* r : nv) {
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
  std::vector<VerifyRun> own;
  for (const auto& r : runs)
    if (r.impl == impl) own.push_back(r);
  const std::string serve = served_options(own, axes, dtypes);
  if (!serve.empty()) out << "  to verify only what it serves:" << serve << "\n";
}

bool write_json(const std::string& path, const ReportHeader& opt, const std::vector<VerifyRun>& runs,
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

bool write_junit(const std::string& path, const std::vector<VerifyRun>& runs, const Totals& t, double secs) {
  std::ofstream x(path);
  x << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"attncheck\" tests=\"" << t.runs
    << "\" failures=\"" << t.failed << "\" errors=\"" << t.errors << "\" skipped=\"" << t.not_verified
    << "\" time=\"" << secs << "\">\n";
  std::map<std::string, std::vector<const VerifyRun*>> by_impl;
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

const char* exit_word(int status) {
  switch (status) {
    case kExitPassed: return "PASSED";
    case kExitFailed: return "FAILED";
    case kExitNotVerified: return "NOT VERIFIED";
  }
  return "ERROR";
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}


void print_failure(std::ostream& out, const PropertyOutcome& r, const std::string& replay) {
  const Failure& f = *r.failure;
  const Case& c = f.c;
  out << "  FAILED " << name_of(r.property) << " (" << ref::name_of(r.axes) << ", " << ref::name_of(r.dtype)
      << (r.dtype == DType::f16 || r.dtype == DType::bf16 ? std::string(", precision contract ") + name_of(r.contract)
                                                          : std::string())
      << ") after " << r.cases_before_failure + 1 << " case(s)\n";
  out << "    " << f.v.summary << "\n";
  for (const auto& d : f.v.details) out << "    " << d << "\n";
  if (f.v.wrong_values || !f.v.diagnosis.empty())
    out << "    diagnosis: " << (f.v.diagnosis.empty() ? "no known wrong semantics matches" : f.v.diagnosis)
        << "\n";
  out << "    " << (f.not_minimal.empty() ? "minimal case" : "case (" + f.not_minimal + ")") << ": "
      << ref::name_of(c.axes) << " " << ref::name_of(c.dtype) << ", B=" << c.B
      << " C=" << c.C << " Cv=" << c.Cv << " heads=" << c.heads << " scale=" << c.scale << ", groups "
      << c.groups() << ", Sq " << c.Sq() << ", Sk " << c.Sk() << ", share " << name_of(c.share) << "\n";
  for (int t = 0; t < c.roles(); ++t) {
    const int value = t < 3 ? t : t == kRoleDout ? 3 : -1;  // inputs with values
    const std::string name = role_name(t);
    out << "      " << name << std::string((c.backward ? 5 : 4) - name.size(), ' ') << make_layout(c.layout[t], c.shape(t)).str()
        << (c.misaligned(t) ? " misaligned" : "")
        << (value >= 0 ? std::string(" values ") + name_of(c.values[value].kind) : std::string()) << "\n";
  }
  out << "    replay: " << replay << "\n";
}


std::string verify_replay(const std::string& command, Property p, const Case& c, const ReplayOptions& o) {
  if (const size_t at = command.find("{case}"); at != std::string::npos)
    return std::string(command).replace(at, 6, shell_quote(c.to_text()));
  std::string s = command + " --property " + name_of(p);
  if (o.strict) s += " --strict";
  if (o.no_declines) s += " --no-declines";
  if (o.precision != Precision::fused && (c.dtype == DType::f16 || c.dtype == DType::bf16))
    s += std::string(" --precision ") + name_of(o.precision);
  if (!o.fork) s += " --no-fork";
  return s + " --case " + shell_quote(c.to_text());
}

std::string gtest_replay(const std::string& binary, const std::string& filter, const Case& c,
                         const ReplayOptions& o) {
  return "ATTNCHECK_CASE=" + shell_quote(c.to_text()) + (o.strict ? " ATTNCHECK_STRICT=1" : "") +
         (o.no_declines ? " ATTNCHECK_NO_DECLINES=1" : "") + (!o.fork ? " ATTNCHECK_FORK=0" : "") +
         (o.precision != Precision::fused ? std::string(" ATTNCHECK_PRECISION=") + name_of(o.precision)
                                          : std::string()) +
         " " + shell_quote(binary) + " --gtest_filter=" + filter;
}

}  // namespace attncheck
