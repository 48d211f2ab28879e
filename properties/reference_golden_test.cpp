// The reference against golden values computed once by NumPy
// (reference/golden/make_golden.py), with the inputs placed in several
// non-packed layouts so the reference's stride handling is exercised too.
#include <attncheck/reference/attention.h>

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

namespace attncheck {
namespace {

using ref::real;

struct GoldenCase {
  std::string axes;
  int64_t B, C, Cv, heads, Tq, Hq, Wq, Tk, Hk, Wk;
  double scale;
  std::vector<double> q, k, v, out, legacy;
};

std::vector<GoldenCase> load() {
  std::ifstream in(ATTNCHECK_GOLDEN_FILE);
  EXPECT_TRUE(in) << "cannot open " << ATTNCHECK_GOLDEN_FILE;
  std::vector<GoldenCase> cases;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string tag;
    ls >> tag;
    if (tag == "case") {
      GoldenCase c;
      ls >> c.axes >> c.B >> c.C >> c.Cv >> c.heads >> c.Tq >> c.Hq >> c.Wq >> c.Tk >> c.Hk >> c.Wk >>
          c.scale;
      cases.push_back(c);
      continue;
    }
    if (tag.empty() || tag[0] == '#') continue;
    auto& c = cases.back();
    std::vector<double>* dst = tag == "q" ? &c.q : tag == "k" ? &c.k : tag == "v" ? &c.v
                               : tag == "out" ? &c.out : &c.legacy;
    double x;
    while (ls >> x) dst->push_back(x);
  }
  return cases;
}

// Stores packed values into a buffer under the layout `memory order` (a
// permutation of dims, outermost first) with a pad after each dimension.
struct Placed {
  std::vector<float> mem;
  ref::View view;
  Placed(const std::vector<double>& packed, std::vector<int64_t> shape, std::array<int, 5> order,
         int64_t pad, int64_t offset) {
    Layout l;
    l.shape = shape;
    l.stride.assign(5, 0);
    l.offset = offset;
    int64_t next = 1 + (pad > 0);
    for (int i = 4; i >= 0; --i) {
      l.stride[order[i]] = next;
      next = next * shape[order[i]] + pad;
    }
    mem.assign(static_cast<size_t>(l.max_offset() + 1), NAN);
    int64_t i = 0;
    ref::for_each_index(shape, [&](std::span<const int64_t> idx) {
      mem[l.index(idx)] = static_cast<float>(packed[i++]);
    });
    view = ref::View{ref::DType::f32, reinterpret_cast<const std::byte*>(mem.data()), l, {}};
  }
};

TEST(Golden, ReferenceMatchesNumPy) {
  const auto cases = load();
  ASSERT_EQ(cases.size(), 7u);
  const std::array<int, 5> orders[] = {{0, 1, 2, 3, 4}, {0, 2, 3, 4, 1}, {2, 0, 1, 3, 4}, {4, 3, 2, 1, 0}};
  int legacy_checked = 0;
  for (const auto& c : cases) {
    for (size_t o = 0; o < std::size(orders); ++o) {
      SCOPED_TRACE(c.axes + " layout " + std::to_string(o));
      Placed q(c.q, {c.B, c.C, c.Tq, c.Hq, c.Wq}, orders[o], o, 3 * o);
      Placed k(c.k, {c.B, c.C, c.Tk, c.Hk, c.Wk}, orders[(o + 1) % 4], o % 2, o);
      Placed v(c.v, {c.B, c.Cv, c.Tk, c.Hk, c.Wk}, orders[(o + 2) % 4], 1, 0);
      const ref::Axes axes = c.axes == "spatial"    ? ref::Axes::spatial
                             : c.axes == "temporal" ? ref::Axes::temporal
                                                    : ref::Axes::spatiotemporal;
      ref::AttentionArgs a{axes, q.view, k.view, v.view, c.heads, c.scale};
      const ref::Tensor out = ref::attention(a);
      ASSERT_EQ(static_cast<size_t>(out.numel()), c.out.size());
      for (int64_t i = 0; i < out.numel(); ++i)
        EXPECT_NEAR(static_cast<double>(out[i]), c.out[i], 1e-13 * (1 + std::fabs(c.out[i])));
      if (!c.legacy.empty()) {
        ++legacy_checked;
        const ref::Tensor legacy = ref::legacy_attention(a);
        for (int64_t i = 0; i < legacy.numel(); ++i)
          EXPECT_NEAR(static_cast<double>(legacy[i]), c.legacy[i], 1e-13 * (1 + std::fabs(c.legacy[i])));
      }
    }
  }
  EXPECT_GT(legacy_checked, 0);
}

}  // namespace
}  // namespace attncheck
