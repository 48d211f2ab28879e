// The properties: each a function of (implementation, case). RapidCheck
// tests, `attncheck verify`, the GoogleTest integration and the fuzz
// targets all call these; none is written twice.
#pragma once

#include <attncheck/case.h>
#include <attncheck/error_model.h>
#include <attncheck/runner.h>

#include <string>
#include <vector>

namespace attncheck {

enum class Property {
  semantics,          // out equals the reference's permute-then-reshape attention
  layout_invariance,  // the same values in another layout give the same out
  memory,             // no fault, no write outside out, inputs unchanged, no poison read
  group_independence, // changing one group's q changes only that group's out
  query_permutation,  // permuting queries permutes out
  key_permutation,    // permuting keys and values jointly changes nothing
  head_independence,  // changing one head's q changes only that head's out
  robustness,         // large logits, exact ties, a dominant key, a single key
  // The backward pass (the plugin's optional backward table): dq, dk, dv.
  backward_semantics,           // dq, dk, dv equal the reference's gradients within the gradient bound
  backward_layout_invariance,   // the same values (dout's too) in other layouts give the same dq, dk, dv
  backward_memory,              // no fault, no write outside dq, dk, dv, inputs, out and dout unchanged, all written
  backward_group_independence,  // changing one group's q changes only that group's dq, dk, dv
  backward_head_independence,   // changing one head's q changes only that head's dq, dk, dv
};
constexpr int kPropertyCount = 8;          // the forward's
constexpr int kBackwardPropertyCount = 5;  // the backward's, after them
const char* name_of(Property p);  // "semantics", ..., "backward.semantics", ...
Property parse_property(const std::string& name);  // throws std::invalid_argument
// The forward pass's properties (every plugin has them).
std::vector<Property> all_properties();
// The backward pass's (plugins that export attncheck_backward_impls).
std::vector<Property> backward_properties();
bool is_backward(Property p);
// Both: the forward's, then the backward's.
std::vector<Property> every_property();

struct CheckOptions {
  RunOptions run;
  bool strict = false;    // layout invariance and independence bitwise
  bool diagnose = true;   // name the wrong semantics a failure matches
  // The precision contract 16-bit runs are checked under (f32 and f64 have one).
  Precision precision = Precision::fused;
  // Also evaluate the contract literally in its own precision and give the
  // ratio of the implementation's error to that one's (semantics).
  bool compare_literal = false;
  bool no_declines = false;  // a declined call is a failure (implementations that claim full coverage)
  // The backward entry point of the implementation under test, for the
  // backward properties (its forward writes the out the backward call gets).
  const attncheck_backward_impl* backward = nullptr;
};

// What one case of one property came to. Only `pass` means the property
// was checked (at least one output element compared, or the memory checks
// made) and held.
struct Verdict {
  enum Kind {
    pass,      // checked and held
    fail,      // checked and broken, or the implementation misbehaved (fault, hang, throw, ...)
    declined,  // the implementation declined a call: nothing checked
    vacuous,   // the property had nothing to compare on this case: nothing checked
    error,     // the checker itself could not run the case (not a verdict on the implementation)
  } kind = pass;
  std::string summary;               // one line: what failed, or why declined / not checked
  std::vector<std::string> details;  // first differing element, bounds, ...
  std::string diagnosis;             // the named wrong semantics it matches, or ""
  bool wrong_values = false;         // failed because out's values are wrong (diagnosis applies)
  double worst_ratio = 0;            // max error / bound over the checked outputs
  double literal_ratio = -1;         // error / max(the contract's literal error, u max|out|) (semantics), -1 if not computed
  bool hang = false;                 // the failure is a call that did not return in time
};

Verdict check_property(Property p, const attncheck_impl& impl, const Case& c,
                       const CheckOptions& opt);

// Cases a property is checked on must satisfy this (metamorphic properties
// need unshared inputs, head_independence two heads or more,
// group_independence two groups or more, robustness robust values...).
// The generator makes such cases for each property.
bool property_accepts(Property p, const Case& c);

}  // namespace attncheck
