// Laws of Layout, permute and reshape, cross-checked against xtensor.
#include "support.h"

#include <attncheck/reference/ops.h>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>
#include <xtensor/xadapt.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xstrided_view.hpp>

namespace attncheck {
namespace {

using test::Buffer;

rc::Gen<std::vector<int64_t>> gen_shape(int min_rank, int max_rank, int64_t max_size) {
  return rc::gen::mapcat(rc::gen::inRange(min_rank, max_rank + 1), [max_size](int r) {
    return rc::gen::container<std::vector<int64_t>>(r, rc::gen::inRange<int64_t>(1, max_size + 1));
  });
}

std::vector<int> random_perm(int r) {
  std::vector<int> perm(r);
  std::iota(perm.begin(), perm.end(), 0);
  auto keys = *rc::gen::container<std::vector<int>>(r, rc::gen::inRange(0, 1000));
  std::stable_sort(perm.begin(), perm.end(), [&](int a, int b) { return keys[a] < keys[b]; });
  return perm;
}

// Splits and merges the logical elements into another shape of equal count.
std::vector<int64_t> random_reshape(const std::vector<int64_t>& shape) {
  // Factor the total count's dimensions into a new list by splitting prime
  // factors of each size and regrouping neighbours.
  std::vector<int64_t> factors;
  for (int64_t s : shape) {
    int64_t n = s;
    for (int64_t p = 2; p * p <= n; ++p)
      while (n % p == 0) factors.push_back(p), n /= p;
    if (n > 1) factors.push_back(n);
  }
  std::vector<int64_t> out;
  for (size_t i = 0; i < factors.size(); ++i) {
    if (!out.empty() && *rc::gen::arbitrary<bool>()) out.back() *= factors[i];
    else out.push_back(factors[i]);
    if (*rc::gen::inRange(0, 6) == 0) out.push_back(1);
  }
  if (out.empty()) out.push_back(1);
  return out;
}

void expect_same_values(const ref::View& a, const ref::View& b) {
  const ref::Tensor x = ref::contiguous(a), y = ref::contiguous(b);
  RC_ASSERT(x.numel() == y.numel());
  for (int64_t i = 0; i < x.numel(); ++i) RC_ASSERT(x[i] == y[i]);
}

TEST(Layout, PrintsInCuteNotation) {
  Layout l{{1, 2, 3, 4, 5}, {120, 1, 40, 10, 2}, 3};
  EXPECT_EQ(l.str(), "(1,2,3,4,5):(120,1,40,10,2)+3");
  EXPECT_EQ(Layout::compact({4, 2}).str(), "(4,2):(2,1)");
  EXPECT_EQ(Layout::parse("(1,2,3,4,5):(120,1,40,10,2)+3"), l);
}

TEST(Layout, RejectsMalformedText) {
  for (const char* bad : {"", "(1,2)", "(1,2):(1)", "(1,2):(2,1)+", "(1,2):(2,-1)", "(1:(1)",
                          "(a):(1)", "(1):(1)+3x", "(9223372036854775807,2):(1,9223372036854775807)"}) {
    EXPECT_ANY_THROW(Layout::parse(bad)) << bad;
  }
}

TEST(Layout, DetectsExtentOverflow) {
  Layout l{{3, 3}, {int64_t{1} << 62, 1}, 0};
  EXPECT_THROW(l.validate(), std::overflow_error);
  Layout m{{int64_t{1} << 40, int64_t{1} << 40}, {1, 1}, 0};
  EXPECT_THROW(m.numel(), std::overflow_error);
}

RC_GTEST_PROP(Layout, TextRoundTrips, ()) {
  const auto shape = *gen_shape(0, 6, 7);
  const auto layout = *test::gen_layout(shape, true);
  RC_ASSERT(Layout::parse(layout.str()) == layout);
}

RC_GTEST_PROP(Layout, PermuteThenInverseIsIdentity, ()) {
  const auto shape = *gen_shape(1, 6, 5);
  const auto layout = *test::gen_layout(shape, true);
  const auto perm = random_perm(layout.rank());
  std::vector<int> inverse(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) inverse[perm[i]] = static_cast<int>(i);
  RC_ASSERT(layout.permuted(perm).permuted(inverse) == layout);
}

RC_GTEST_PROP(Reshape, RoundTripsAndKeepsRowMajorOrder, ()) {
  const auto shape = *gen_shape(1, 5, 6);
  const auto layout = *test::gen_layout(shape, true);
  Buffer buf(ref::DType::f64, layout, *rc::gen::arbitrary<uint64_t>());
  const auto other = random_reshape(shape);
  const ref::View r = ref::reshape(buf.view, other);
  RC_ASSERT(r.shape() == other);
  // Logical row-major order is what reshape keeps.
  expect_same_values(ref::reshape(r, {layout.numel()}), ref::reshape(buf.view, {layout.numel()}));
  expect_same_values(ref::reshape(r, shape), buf.view);
}

RC_GTEST_PROP(Reshape, ViewAndCopyAgree, ()) {
  // Where the strides allow a view, its values equal those of a copy.
  const auto shape = *gen_shape(1, 5, 5);
  const auto layout = *test::gen_layout(shape, true);
  Buffer buf(ref::DType::f32, layout, *rc::gen::arbitrary<uint64_t>());
  const auto other = random_reshape(shape);
  const ref::Tensor packed = ref::contiguous(buf.view);
  const ref::View from_copy = ref::reshape(packed.view(), other);
  const bool shares = from_copy.owner == packed.data;  // a packed tensor reshapes as a view
  RC_ASSERT(shares);
  const ref::View direct = ref::reshape(buf.view, other);
  RC_CLASSIFY(direct.base == buf.view.base, "view");
  expect_same_values(direct, from_copy);
}

RC_GTEST_PROP(Reshape, OfPermutedViewEqualsOfItsCopy, ()) {
  const auto shape = *gen_shape(2, 5, 5);
  const auto layout = *test::gen_layout(shape, false);
  Buffer buf(ref::DType::f64, layout, *rc::gen::arbitrary<uint64_t>());
  const auto perm = random_perm(layout.rank());
  const ref::View permuted = ref::permute(buf.view, perm);
  const auto other = random_reshape(permuted.shape());
  expect_same_values(ref::reshape(permuted, other),
                     ref::reshape(ref::contiguous(permuted).view(), other));
}

RC_GTEST_PROP(Reshape, CompactAlwaysGivesAView, ()) {
  const auto shape = *gen_shape(1, 5, 6);
  const auto other = random_reshape(shape);
  const auto l = Layout::compact(shape, 3).reshaped(other);
  RC_ASSERT(l.has_value());
  RC_ASSERT(*l == Layout::compact(other, 3));
}

// xtensor's own view of a buffer, with the buffer's strides and offset.
auto adapt(const Buffer& buf) {
  const Layout& l = buf.view.layout;
  std::vector<size_t> shape(l.shape.begin(), l.shape.end());
  std::vector<ptrdiff_t> strides(l.stride.begin(), l.stride.end());
  const double* base = reinterpret_cast<const double*>(buf.bytes.data()) + l.offset;
  // xtensor 0.24 wants the element count as the adaptor's size even when
  // the strides reach further (it never bounds-checks element access).
  return xt::adapt(base, static_cast<size_t>(l.numel()), xt::no_ownership(), shape, strides);
}

// xtensor's adapt reads the same element at every index.
RC_GTEST_PROP(Xtensor, AdaptReadsWhatTheViewReads, ()) {
  const auto shape = *gen_shape(1, 5, 5);
  const auto layout = *test::gen_layout(shape, true);
  Buffer buf(ref::DType::f64, layout, *rc::gen::arbitrary<uint64_t>());
  auto x = adapt(buf);
  ref::for_each_index(shape, [&](std::span<const int64_t> idx) {
    std::vector<size_t> i(idx.begin(), idx.end());
    RC_ASSERT(static_cast<long double>(x.element(i.begin(), i.end())) == buf.view.at(idx));
  });
}

// xtensor's transpose and reshape_view agree with permute and reshape.
RC_GTEST_PROP(Xtensor, TransposeAndReshapeAgree, ()) {
  const auto shape = *gen_shape(1, 5, 4);
  const auto layout = *test::gen_layout(shape, false);
  Buffer buf(ref::DType::f64, layout, *rc::gen::arbitrary<uint64_t>());
  auto x = adapt(buf);
  const auto perm = random_perm(layout.rank());
  std::vector<size_t> xperm(perm.begin(), perm.end());
  auto xt_perm = xt::transpose(x, xperm);
  const ref::View permuted = ref::permute(buf.view, perm);
  const auto other = random_reshape(permuted.shape());
  std::vector<size_t> xother(other.begin(), other.end());
  xt::xarray<double> xt_reshaped = xt::reshape_view(xt::xarray<double>(xt_perm), xother);
  const ref::View reshaped = ref::reshape(permuted, other);
  ref::for_each_index(permuted.shape(), [&](std::span<const int64_t> idx) {
    std::vector<size_t> i(idx.begin(), idx.end());
    RC_ASSERT(static_cast<long double>(xt_perm.element(i.begin(), i.end())) == permuted.at(idx));
  });
  ref::for_each_index(other, [&](std::span<const int64_t> idx) {
    std::vector<size_t> i(idx.begin(), idx.end());
    RC_ASSERT(static_cast<long double>(xt_reshaped.element(i.begin(), i.end())) == reshaped.at(idx));
  });
}

TEST(Dtype, HalfCodecIsExactOnEveryBitPattern) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const double x = ref::f16_to_double(static_cast<uint16_t>(b));
    if (std::isnan(x)) continue;
    EXPECT_EQ(ref::double_to_f16(x), b) << b;
    const double y = ref::bf16_to_double(static_cast<uint16_t>(b));
    if (std::isnan(y)) continue;
    EXPECT_EQ(ref::float_to_bf16(static_cast<float>(y)), b) << b;
  }
}

TEST(Dtype, HalfRoundsToNearestEven) {
  EXPECT_EQ(ref::f16_to_double(ref::double_to_f16(1.0 + std::ldexp(1, -11))), 1.0);  // tie -> even
  EXPECT_EQ(ref::f16_to_double(ref::double_to_f16(1.0 + 3 * std::ldexp(1, -11))),
            1.0 + std::ldexp(1, -9));  // tie -> even (up)
  EXPECT_EQ(ref::f16_to_double(ref::double_to_f16(65519.0)), 65504.0);
  EXPECT_TRUE(std::isinf(ref::f16_to_double(ref::double_to_f16(65520.0))));
  EXPECT_EQ(ref::f16_to_double(ref::double_to_f16(std::ldexp(1, -25))), 0.0);  // tie -> 0
  EXPECT_EQ(ref::f16_to_double(ref::double_to_f16(std::ldexp(3, -26))), std::ldexp(1, -24));
}

}  // namespace
}  // namespace attncheck
