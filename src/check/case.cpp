#include <attncheck/case.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <sstream>
#include <stdexcept>

namespace attncheck {

const char* role_name(int role) {
  static const char* names[] = {"q", "k", "v", "out", "dout", "dq", "dk", "dv"};
  return role >= 0 && role < kRoles ? names[role] : "?";
}

const char* name_of(ValueKind k) {
  switch (k) {
    case ValueKind::normal: return "normal";
    case ValueKind::large: return "large";
    case ValueKind::ties: return "ties";
    case ValueKind::dominant: return "dominant";
    case ValueKind::scaled: return "scaled";
    case ValueKind::offset: return "offset";
  }
  return "?";
}

const char* name_of(Share s) {
  switch (s) {
    case Share::none: return "none";
    case Share::qk_same: return "qk_same";
    case Share::kv_overlap: return "kv_overlap";
  }
  return "?";
}

// Lexicographic permutation number `order` of (0..4): 0 is the identity.
std::array<int, 5> memory_order(int order) {
  std::array<int, 5> p{0, 1, 2, 3, 4};
  for (int i = 0; i < order % 120; ++i) std::next_permutation(p.begin(), p.end());
  return p;
}

int order_index(const std::array<int, 5>& target) {
  for (int i = 0; i < 120; ++i)
    if (memory_order(i) == target) return i;
  return 0;
}

int channels_last_order() { return order_index({0, 2, 3, 4, 1}); }

bool LayoutRecipe::is_compact() const {
  return order == 0 && inner == 1 && pad == std::array<int64_t, 5>{} && offset == 0 && !misalign &&
         broadcast == 0 && size1_stride == 0;
}

Layout make_layout(const LayoutRecipe& r, const std::vector<int64_t>& shape) {
  Layout l;
  l.shape = shape;
  l.stride.assign(5, 0);
  l.offset = r.offset;
  const auto order = memory_order(r.order);
  int64_t next = r.inner;
  for (int i = 4; i >= 0; --i) {
    const int d = order[i];
    if (r.broadcast & (1 << d)) continue;  // stride 0: one slice of memory serves all
    l.stride[d] = shape[d] == 1 && r.size1_stride > 0 ? r.size1_stride : next;
    int64_t grown;
    if (__builtin_mul_overflow(next, shape[d], &grown) ||
        __builtin_add_overflow(grown, r.pad[d], &next))
      throw std::overflow_error("layout recipe: strides overflow int64");
  }
  return l;
}

std::vector<int64_t> Case::shape(int role) const {
  switch (role) {
    case kRoleQ:
    case kRoleDq: return {B, C, Tq, Hq, Wq};
    case kRoleK:
    case kRoleDk: return {B, C, Tk, Hk, Wk};
    case kRoleV:
    case kRoleDv: return {B, Cv, Tk, Hk, Wk};
    default: return {B, Cv, Tq, Hq, Wq};  // out, dout
  }
}

Geometry Case::geometry(int role) const {
  const bool key = role == kRoleK || role == kRoleV || role == kRoleDk || role == kRoleDv;
  return Geometry{static_cast<attncheck_axes>(axes), key ? Tk : Tq, key ? Hk : Hq, key ? Wk : Wq};
}
int64_t Case::groups() const { return geometry(kRoleQ).groups(B); }
int64_t Case::Sq() const { return geometry(kRoleQ).positions(); }
int64_t Case::Sk() const { return geometry(kRoleK).positions(); }
double Case::flops() const {
  // A backward case makes its forward call, then the backward (five
  // products of the forward's size where the forward has two).
  return 4.0 * groups() * heads * Sq() * Sk() * std::max(D(), Dv()) * (backward ? 3.5 : 1.0);
}

void Case::normalize() {
  auto bad = [](const std::string& s) { return std::invalid_argument("case: " + s); };
  const int64_t sizes[] = {B, C, Cv, heads, Tq, Hq, Wq, Tk, Hk, Wk};
  const char* names[] = {"B", "C", "Cv", "heads", "Tq", "Hq", "Wq", "Tk", "Hk", "Wk"};
  for (int i = 0; i < 10; ++i)
    if (sizes[i] < 1 || sizes[i] > (int64_t{1} << 24))
      throw bad(std::string(names[i]) + " = " + std::to_string(sizes[i]) + " is out of range [1, 2^24]");
  if (C % heads || Cv % heads)
    throw bad("heads = " + std::to_string(heads) + " does not divide C = " + std::to_string(C) +
              " and Cv = " + std::to_string(Cv));
  if (axes == Axes::spatial && Tk != Tq) throw bad("spatial attention needs Tk = Tq");
  if (axes == Axes::temporal && (Hk != Hq || Wk != Wq))
    throw bad("temporal attention needs Hk = Hq and Wk = Wq");
  if (!std::isfinite(scale)) throw bad("scale is not finite");
  if (!backward) {
    // Canonical: a forward case carries no backward fields.
    for (int t = kForwardRoles; t < kRoles; ++t) layout[t] = {};
    values[3] = {};
  }
  for (int t = 0; t < roles(); ++t) {
    auto& r = layout[t];
    if (r.order < 0 || r.order >= 120) throw bad(std::string(role_name(t)) + " layout order not in 0..119");
    if (r.inner < 1 || r.inner > 64) throw bad(std::string(role_name(t)) + " inner stride not in 1..64");
    for (auto p : r.pad)
      if (p < 0 || p > 4096) throw bad(std::string(role_name(t)) + " padding not in 0..4096");
    if (r.offset < 0 || r.offset > 4096) throw bad(std::string(role_name(t)) + " offset not in 0..4096");
    if (r.size1_stride < 0 || r.size1_stride > 4096)
      throw bad(std::string(role_name(t)) + " size-1 stride not in 0..4096");
    if (r.broadcast < 0 || r.broadcast > 31) throw bad(std::string(role_name(t)) + " broadcast mask not in 0..31");
  }
  for (int t : {kRoleOut, kRoleDq, kRoleDk, kRoleDv})
    if (layout[t].broadcast) throw bad(std::string(role_name(t)) + " may not have zero strides");
  if (share == Share::qk_same) {
    if (shape(kRoleQ) != shape(kRoleK)) throw bad("qk_same needs k's shape to equal q's");
    layout[kRoleK] = layout[kRoleQ];
    values[kRoleK] = values[kRoleQ];
  }
  if (share == Share::kv_overlap) {
    if (kv_overlap < 0 || kv_overlap > std::min(C, Cv))
      throw bad("kv_overlap = " + std::to_string(kv_overlap) + " not in 0..min(C, Cv)");
    if (layout[kRoleK].broadcast & 2) throw bad("kv_overlap with a broadcast channel dim");
    layout[kRoleV] = layout[kRoleK];
    values[kRoleV] = values[kRoleK];
  } else {
    kv_overlap = 0;
  }
}

bool Case::misaligned(int role) const {
  if (flush_high || ref::size_of(dtype) >= 16) return false;
  if (role == kRoleK && share == Share::qk_same) role = kRoleQ;
  if (role == kRoleV && share == Share::kv_overlap) return false;
  return layout[role].misalign;
}

std::vector<std::string> Case::layout_classes() const {
  std::vector<std::string> out;
  bool any = false;
  auto add = [&](const char* c) {
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
    any = true;
  };
  for (int t = 0; t < roles(); ++t) {
    const auto& r = layout[t];
    if (r.order == channels_last_order()) add("channels_last");
    else if (r.order != 0) add("permuted");
    if (r.inner > 1) add("inner_stride");
    for (auto p : r.pad)
      if (p) add("padded");
    if (r.offset) add("offset");
    if (misaligned(t)) add("misaligned");
    if (r.broadcast) add("broadcast");
    if (r.size1_stride) add("size1_strides");
  }
  if (share != Share::none) add("shared");
  if (!any) out.push_back("compact");
  return out;
}

// ---- text form ----

namespace {

std::string recipe_text(const LayoutRecipe& r) {
  std::ostringstream s;
  s << r.order << "/" << r.inner << "/" << r.pad[0] << ":" << r.pad[1] << ":" << r.pad[2] << ":"
    << r.pad[3] << ":" << r.pad[4] << "/" << r.offset << "/" << (r.misalign ? "m" : "a") << "/"
    << r.broadcast << "/" << r.size1_stride;
  return s.str();
}

int64_t to_int(std::string_view t, const std::string& field) {
  int64_t x = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), x);
  if (ec != std::errc() || p != t.data() + t.size())
    throw std::invalid_argument("case: " + field + ": '" + std::string(t) + "' is not an integer");
  return x;
}

std::vector<std::string_view> split(std::string_view t, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    auto i = t.find(sep);
    out.push_back(t.substr(0, i));
    if (i == std::string_view::npos) return out;
    t.remove_prefix(i + 1);
  }
}

LayoutRecipe parse_recipe(std::string_view t, const std::string& field) {
  auto parts = split(t, '/');
  if (parts.size() != 7)
    throw std::invalid_argument("case: " + field + ": expected order/inner/pads/offset/a|m/bcast/s1");
  LayoutRecipe r;
  r.order = static_cast<int>(to_int(parts[0], field));
  r.inner = to_int(parts[1], field);
  auto pads = split(parts[2], ':');
  if (pads.size() != 5) throw std::invalid_argument("case: " + field + ": expected 5 paddings");
  for (int i = 0; i < 5; ++i) r.pad[i] = to_int(pads[i], field);
  r.offset = to_int(parts[3], field);
  if (parts[4] != "a" && parts[4] != "m")
    throw std::invalid_argument("case: " + field + ": alignment must be a or m");
  r.misalign = parts[4] == "m";
  r.broadcast = static_cast<int>(to_int(parts[5], field));
  r.size1_stride = to_int(parts[6], field);
  return r;
}

void parse_dims(std::string_view t, int64_t& T, int64_t& H, int64_t& W, const std::string& field) {
  auto p = split(t, 'x');
  if (p.size() != 3) throw std::invalid_argument("case: " + field + ": expected TxHxW");
  T = to_int(p[0], field), H = to_int(p[1], field), W = to_int(p[2], field);
}

}  // namespace

std::string Case::to_text() const {
  char scale_text[64];
  std::snprintf(scale_text, sizeof scale_text, "%.17g", scale);
  std::ostringstream s;
  s << ref::name_of(axes) << " " << ref::name_of(dtype) << " B=" << B << " C=" << C << " Cv=" << Cv
    << " heads=" << heads << " q=" << Tq << "x" << Hq << "x" << Wq << " k=" << Tk << "x" << Hk
    << "x" << Wk << " scale=" << scale_text << " share=" << name_of(share);
  if (share == Share::kv_overlap) s << ":" << kv_overlap;
  s << " place=" << (flush_high ? "high" : "low");
  for (int t = 0; t < roles(); ++t) s << " L" << role_name(t) << "=" << recipe_text(layout[t]);
  for (int t = 0; t < (backward ? 4 : 3); ++t)
    s << " V" << role_name(t == 3 ? kRoleDout : t) << "=" << name_of(values[t].kind) << ":" << values[t].seed;
  return s.str();
}

Case Case::parse(const std::string& text) {
  Case c;
  std::istringstream in(text);
  std::string tok;
  int positional = 0;
  std::map<std::string, bool> seen;
  while (in >> tok) {
    auto eq = tok.find('=');
    if (eq == std::string::npos) {
      if (positional == 0) {
        if (tok == "spatial") c.axes = Axes::spatial;
        else if (tok == "temporal") c.axes = Axes::temporal;
        else if (tok == "spatiotemporal") c.axes = Axes::spatiotemporal;
        else throw std::invalid_argument("case: '" + tok + "' is not spatial, temporal or spatiotemporal");
      } else if (positional == 1) {
        c.dtype = ref::parse_dtype(tok);
      } else {
        throw std::invalid_argument("case: unexpected '" + tok + "'");
      }
      ++positional;
      continue;
    }
    const std::string key = tok.substr(0, eq);
    const std::string_view val = std::string_view(tok).substr(eq + 1);
    if (seen[key]) throw std::invalid_argument("case: field " + key + " given twice");
    seen[key] = true;
    if (key == "B") c.B = to_int(val, key);
    else if (key == "C") c.C = to_int(val, key);
    else if (key == "Cv") c.Cv = to_int(val, key);
    else if (key == "heads") c.heads = to_int(val, key);
    else if (key == "q") parse_dims(val, c.Tq, c.Hq, c.Wq, key);
    else if (key == "k") parse_dims(val, c.Tk, c.Hk, c.Wk, key);
    else if (key == "scale") {
      std::string v(val);
      char* end = nullptr;
      c.scale = std::strtod(v.c_str(), &end);
      if (v.empty() || *end) throw std::invalid_argument("case: scale: '" + v + "' is not a number");
    } else if (key == "share") {
      auto p = split(val, ':');
      if (p[0] == "none") c.share = Share::none;
      else if (p[0] == "qk_same") c.share = Share::qk_same;
      else if (p[0] == "kv_overlap" && p.size() == 2) {
        c.share = Share::kv_overlap;
        c.kv_overlap = to_int(p[1], key);
      } else throw std::invalid_argument("case: share: expected none, qk_same or kv_overlap:N");
    } else if (key == "place") {
      if (val != "low" && val != "high") throw std::invalid_argument("case: place must be low or high");
      c.flush_high = val == "high";
    } else if (key.size() >= 2 && key[0] == 'L') {
      const std::string role = key.substr(1);
      int t = -1;
      for (int r = 0; r < kRoles; ++r)
        if (role == role_name(r)) t = r;
      if (t < 0) throw std::invalid_argument("case: unknown field " + key);
      c.layout[t] = parse_recipe(val, key);
      if (t >= kForwardRoles) c.backward = true;
    } else if (key[0] == 'V') {
      const std::string role = key.substr(1);
      const int t = role == "q" ? 0 : role == "k" ? 1 : role == "v" ? 2 : role == "dout" ? 3 : -1;
      if (t == 3) c.backward = true;
      if (t < 0) throw std::invalid_argument("case: unknown field " + key);
      auto p = split(val, ':');
      if (p.size() != 2) throw std::invalid_argument("case: " + key + ": expected kind:seed");
      const std::string kind(p[0]);
      bool known = false;
      for (int k = 0; k < kValueKinds && !known; ++k)
        if (kind == name_of(static_cast<ValueKind>(k))) c.values[t].kind = static_cast<ValueKind>(k), known = true;
      if (!known) throw std::invalid_argument("case: " + key + ": unknown value kind " + kind);
      const int64_t seed = to_int(p[1], key);
      if (seed < 0 || seed > 0xffffffffLL) throw std::invalid_argument("case: " + key + ": seed out of range");
      c.values[t].seed = static_cast<uint32_t>(seed);
    } else {
      throw std::invalid_argument("case: unknown field " + key);
    }
  }
  if (positional < 2) throw std::invalid_argument("case: expected axes and dtype first");
  c.normalize();
  return c;
}

}  // namespace attncheck
