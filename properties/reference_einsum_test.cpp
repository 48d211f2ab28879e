// The einsum evaluator against brute-force loops over every index, and
// softmax's laws.
#include "support.h"

#include <attncheck/reference/einsum.h>
#include <attncheck/reference/ops.h>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cmath>
#include <map>

namespace attncheck {
namespace {

using ref::real;

struct RandomEinsum {
  std::string spec;
  std::vector<std::string> terms;
  std::string output;
  std::map<char, int64_t> size;
};

void showValue(const RandomEinsum& e, std::ostream& os) {
  os << e.spec << " sizes";
  for (const auto& [c, n] : e.size) os << " " << c << "=" << n;
}

rc::Gen<RandomEinsum> gen_einsum() {
  return rc::gen::exec([] {
    RandomEinsum e;
    const std::string letters = "abcde";
    const int nletters = *rc::gen::inRange(1, 6);
    for (int i = 0; i < nletters; ++i) e.size[letters[i]] = *rc::gen::inRange<int64_t>(1, 4);
    const int nops = *rc::gen::inRange(1, 4);
    std::string used;
    for (int i = 0; i < nops; ++i) {
      const int rank = *rc::gen::inRange(i == 0 ? 1 : 0, 4);
      std::string term;
      for (int d = 0; d < rank; ++d) term += letters[*rc::gen::inRange(0, nletters)];
      for (char c : term)
        if (used.find(c) == std::string::npos) used += c;
      e.terms.push_back(term);
    }
    for (auto it = e.size.begin(); it != e.size.end();)  // only letters in use
      it = used.find(it->first) == std::string::npos ? e.size.erase(it) : std::next(it);
    for (char c : used)
      if (*rc::gen::arbitrary<bool>()) e.output += c;
    std::reverse(e.output.begin(), e.output.end());
    for (size_t i = 0; i < e.terms.size(); ++i) e.spec += (i ? "," : "") + e.terms[i];
    e.spec += "->" + e.output;
    return e;
  });
}

RC_GTEST_PROP(Einsum, EqualsBruteForceOverEveryIndex, ()) {
  const RandomEinsum e = *gen_einsum();
  std::vector<std::unique_ptr<test::Buffer>> bufs;
  std::vector<ref::View> views;
  for (const auto& term : e.terms) {
    std::vector<int64_t> shape;
    for (char c : term) shape.push_back(e.size.at(c));
    const auto layout = *test::gen_layout(shape, true);
    bufs.push_back(std::make_unique<test::Buffer>(*test::gen_dtype(), layout,
                                                  *rc::gen::arbitrary<uint64_t>()));
    views.push_back(bufs.back()->view);
  }
  const ref::Tensor got = ref::einsum(e.spec, views);

  // Brute force: every assignment of every letter; accumulate each product
  // into its output slot.
  std::string all;
  for (const auto& [c, n] : e.size) all += c;
  std::vector<int64_t> all_shape;
  for (char c : all) all_shape.push_back(e.size.at(c));
  std::vector<int64_t> out_shape;
  for (char c : e.output) out_shape.push_back(e.size.at(c));
  ref::Tensor want(out_shape), magnitude(out_shape);
  ref::for_each_index(all_shape, [&](std::span<const int64_t> idx) {
    auto value_of = [&](char c) { return idx[all.find(c)]; };
    real product = 1;
    for (size_t i = 0; i < views.size(); ++i) {
      std::vector<int64_t> at;
      for (char c : e.terms[i]) at.push_back(value_of(c));
      product *= views[i].at(at);
    }
    int64_t flat = 0;
    for (size_t d = 0; d < e.output.size(); ++d) flat = flat * out_shape[d] + value_of(e.output[d]);
    want[flat] += product;
    magnitude[flat] += std::fabs(product);
  });
  RC_ASSERT(got.shape == out_shape);
  for (int64_t i = 0; i < want.numel(); ++i) {
    // Both sums are long double over at most 243 terms.
    const real bound = 512 * std::numeric_limits<real>::epsilon() * magnitude[i];
    RC_ASSERT(std::fabs(got[i] - want[i]) <= bound);
  }
}

TEST(Einsum, RejectsMalformedSpecs) {
  double x[4] = {1, 2, 3, 4};
  ref::View m{ref::DType::f64, reinterpret_cast<const std::byte*>(x), Layout::compact({2, 2}), {}};
  const ref::View one[1] = {m};
  const ref::View two[2] = {m, m};
  for (const char* spec : {"ij", "ij->k", "ij->ii", "i1->i", "ijk->i", "i->i", "ij,jk->ik"})
    EXPECT_THROW(ref::einsum(spec, one), std::invalid_argument) << spec;
  ref::View v3{ref::DType::f64, reinterpret_cast<const std::byte*>(x), Layout::compact({3}), {}};
  const ref::View mismatch[2] = {m, v3};
  EXPECT_THROW(ref::einsum("ij,j->i", mismatch), std::invalid_argument);
  EXPECT_NO_THROW(ref::einsum("ij,jk->ik", two));
}

TEST(Einsum, TraceAndDiagonal) {
  double x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  ref::View m{ref::DType::f64, reinterpret_cast<const std::byte*>(x), Layout::compact({3, 3}), {}};
  const ref::View one[1] = {m};
  EXPECT_EQ(ref::einsum("ii->", one)[0], 15);
  const ref::Tensor d = ref::einsum("ii->i", one);
  EXPECT_EQ(d[0], 1);
  EXPECT_EQ(d[1], 5);
  EXPECT_EQ(d[2], 9);
}

TEST(Einsum, CompensatedSumIsExactWhereFloatLoses) {
  // 1e20 + 1 - 1e20 in long double loses the 1 without compensation.
  double x[3] = {1e20, 1, -1e20};
  ref::View v{ref::DType::f64, reinterpret_cast<const std::byte*>(x), Layout::compact({3}), {}};
  const ref::View one[1] = {v};
  EXPECT_EQ(ref::einsum("i->", one)[0], 1);
}

RC_GTEST_PROP(Softmax, RowsSumToOneAndShiftIsInvariant, ()) {
  const int64_t rows = *rc::gen::inRange<int64_t>(1, 5), n = *rc::gen::inRange<int64_t>(1, 40);
  const double spread = *rc::gen::element(1.0, 30.0, 1e4);
  const double shift = *rc::gen::element(0.0, 5.5, -1e3, 1e6);
  test::Buffer buf(ref::DType::f64, Layout::compact({rows, n}), *rc::gen::arbitrary<uint64_t>(), spread);
  const int axis = 1;
  const ref::Tensor p = ref::softmax(buf.view, axis);
  ref::Tensor shifted = ref::contiguous(buf.view);
  for (real& x : *shifted.data) x += shift;
  const ref::Tensor p2 = ref::softmax(shifted.view(), axis);
  for (int64_t r = 0; r < rows; ++r) {
    ref::NeumaierSum s;
    for (int64_t j = 0; j < n; ++j) {
      const real x = p[r * n + j];
      RC_ASSERT(x >= 0);
      RC_ASSERT(x <= 1);
      s.add(x);
      // Adding shift rounds x + shift in long double: error ~ eps * |x + shift|
      // in the logit, which exp turns into a relative error of the same size.
      const real tol = 8 * std::numeric_limits<real>::epsilon() * (std::fabs(shift) + 4 * spread * 10);
      RC_ASSERT(std::fabs(p2[r * n + j] - x) <= tol * x + 1e-300L);
    }
    RC_ASSERT(std::fabs(s.value() - 1) <= 4 * n * std::numeric_limits<real>::epsilon());
  }
}

TEST(Softmax, SurvivesLogitsPastFloatOverflow) {
  double x[3] = {1e4, 1e4 - 1, -1e4};
  ref::View v{ref::DType::f64, reinterpret_cast<const std::byte*>(x), Layout::compact({3}), {}};
  const ref::Tensor p = ref::softmax(v, 0);
  EXPECT_NEAR(static_cast<double>(p[0]), 1 / (1 + std::exp(-1.0)), 1e-15);
  EXPECT_EQ(p[2], 0);
}

}  // namespace
}  // namespace attncheck
