#include <attncheck/shrink.h>

#include <cmath>
#include <vector>

namespace attncheck {

namespace {

// Candidate values for a size, smallest first.
std::vector<int64_t> smaller(int64_t x) {
  std::vector<int64_t> v;
  for (int64_t c : {int64_t{1}, x / 2, x - 1})
    if (c >= 1 && c < x && (v.empty() || v.back() != c)) v.push_back(c);
  return v;
}

}  // namespace

Case shrink_case(const Case& start, const std::function<bool(const Case&)>& still_fails, int max_tries,
                 int* tries_used) {
  Case best = start;
  int tries = 0;
  // Tries one edit of best; keeps it when the case is valid and still fails.
  auto attempt = [&](const std::function<void(Case&)>& edit) {
    if (tries >= max_tries) return false;
    Case c = best;
    edit(c);
    try {
      c.normalize();
    } catch (const std::exception&) {
      return false;
    }
    if (c == best) return false;
    ++tries;
    if (!still_fails(c)) return false;
    best = c;
    return true;
  };
  auto set_dim = [](Case& c, int which, int64_t value) {
    int64_t* dims[6] = {&c.Tq, &c.Hq, &c.Wq, &c.Tk, &c.Hk, &c.Wk};
    *dims[which] = value;
    // Keep the axes family's shared extents equal.
    if (c.axes == Axes::spatial && (which == 0 || which == 3)) c.Tq = c.Tk = value;
    if (c.axes == Axes::temporal && (which == 1 || which == 4)) c.Hq = c.Hk = value;
    if (c.axes == Axes::temporal && (which == 2 || which == 5)) c.Wq = c.Wk = value;
    if (c.share == Share::qk_same) c.Tk = c.Tq, c.Hk = c.Hq, c.Wk = c.Wq;
  };
  bool progress = true;
  while (progress && tries < max_tries) {
    progress = false;
    // Sizes.
    for (int64_t b : smaller(best.B)) progress |= attempt([&](Case& c) { c.B = b; });
    for (int64_t h : smaller(best.heads))
      progress |= attempt([&](Case& c) {
        const int64_t D = c.D(), Dv = c.Dv();
        c.heads = h, c.C = h * D, c.Cv = h * Dv;
      });
    for (int64_t d : smaller(best.D())) progress |= attempt([&](Case& c) { c.C = c.heads * d; });
    for (int64_t d : smaller(best.Dv())) progress |= attempt([&](Case& c) { c.Cv = c.heads * d; });
    for (int which = 0; which < 6; ++which) {
      const int64_t cur[6] = {best.Tq, best.Hq, best.Wq, best.Tk, best.Hk, best.Wk};
      for (int64_t x : smaller(cur[which])) {
        if (attempt([&](Case& c) { set_dim(c, which, x); })) {
          progress = true;
          break;
        }
      }
    }
    // Positions folded onto one axis, one fewer: (Hk, Wk) = (2, 3) may fail
    // where no single size shrinks without passing, and (1, 5) fail too.
    for (bool key : {false, true}) {
      if (best.axes == Axes::temporal || (key && best.share == Share::qk_same)) continue;
      const int64_t S = key ? best.Sk() : best.Sq();
      const int64_t W = key ? best.Wk : best.Wq;
      if (S <= 2 || W == S) continue;
      progress |= attempt([&](Case& c) {
        int64_t& t = key ? c.Tk : c.Tq;
        int64_t& h = key ? c.Hk : c.Hq;
        int64_t& w = key ? c.Wk : c.Wq;
        if (c.axes == Axes::spatiotemporal) t = 1;
        h = 1, w = S - 1;
        if (c.share == Share::qk_same) c.Tk = c.Tq, c.Hk = c.Hq, c.Wk = c.Wq;
      });
    }
    // Sharing.
    if (best.share != Share::none) progress |= attempt([](Case& c) { c.share = Share::none; });
    // Layouts: whole recipe plain, then one field at a time.
    for (int t = 0; t < best.roles(); ++t) {
      progress |= attempt([&](Case& c) { c.layout[t] = LayoutRecipe{}; });
      progress |= attempt([&](Case& c) { c.layout[t].broadcast = 0; });
      progress |= attempt([&](Case& c) { c.layout[t].order = 0; });
      progress |= attempt([&](Case& c) { c.layout[t].inner = 1; });
      progress |= attempt([&](Case& c) { c.layout[t].pad = {}; });
      for (int d = 0; d < 5; ++d) progress |= attempt([&](Case& c) { c.layout[t].pad[d] = 0; });
      progress |= attempt([&](Case& c) { c.layout[t].offset = 0; });
      progress |= attempt([&](Case& c) { c.layout[t].misalign = false; });
      progress |= attempt([&](Case& c) { c.layout[t].size1_stride = 0; });
    }
    // Values and scale.
    for (int t = 0; t < (best.backward ? 4 : 3); ++t)
      progress |= attempt([&](Case& c) { c.values[t].kind = ValueKind::normal; });
    progress |= attempt([](Case& c) { c.scale = 1 / std::sqrt(static_cast<double>(c.D())); });
    progress |= attempt([](Case& c) { c.flush_high = false; });
  }
  if (tries_used) *tries_used = tries;
  return best;
}

}  // namespace attncheck
