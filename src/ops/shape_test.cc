#include <gtest/gtest.h>

#include "ops/ops_test_util.h"

namespace pigment::ops {
namespace {
using testing::deterministic;
using testing::randn;
using testing::same_bits;

TEST(Upsample, MatchesReference) {
  for (Shape s : {Shape{1, 1, 1, 1}, Shape{1, 3, 5, 7}, Shape{2, 4, 16, 17}, Shape{1, 2, 3, 33}, Shape{1, 64, 32, 32}}) {
    Tensor x = randn(s, 1);
    EXPECT_TRUE(same_bits(upsample_nearest2x(x), ref::upsample_nearest2x(x))) << shape_str(s);
  }
  EXPECT_THROW(upsample_nearest2x(Tensor::zeros({2, 3})), Error);
}

TEST(AvgPool, MatchesReference) {
  Tensor x = randn({2, 3, 9, 8}, 2);
  EXPECT_TRUE(same_bits(avg_pool2x(x), ref::avg_pool2x(x)));
}

TEST(Concat, MatchesReferenceOnEveryDimension) {
  Tensor a = randn({2, 3, 4, 5}, 3), b = randn({2, 3, 4, 5}, 4);
  for (int dim : {0, 1, 2, 3, -1}) {
    Shape sc = a.shape();
    sc[dim < 0 ? 3 : dim] = 2;
    Tensor c = randn(sc, 5).to(DType::F16);  // mixed dtypes are converted
    EXPECT_TRUE(same_bits(concat({a, b, c}, dim), ref::concat({a, b, c}, dim))) << dim;
  }
  Tensor big1 = randn({1, 320, 64, 64}, 6), big2 = randn({1, 320, 64, 64}, 7);
  EXPECT_TRUE(same_bits(concat({big1, big2}, 1), ref::concat({big1, big2}, 1)));
  EXPECT_THROW(concat({a, Tensor::zeros({2, 3, 4})}, 0), Error);
  EXPECT_THROW(concat({a, Tensor::zeros({2, 3, 4, 6})}, 1), Error);
  EXPECT_THROW(concat({}, 0), Error);
  EXPECT_THROW(concat({a}, 4), Error);
}

TEST(SliceChunk, MatchReference) {
  Tensor x = randn({3, 10, 7}, 8);
  EXPECT_TRUE(same_bits(slice(x, 1, 2, 9), ref::slice(x, 1, 2, 9)));
  EXPECT_TRUE(same_bits(slice(x, -1, 0, 0), ref::slice(x, -1, 0, 0)));
  auto a = chunk(x, 2, 1), b = ref::chunk(x, 2, 1);
  ASSERT_EQ(a.size(), 2u);
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(same_bits(a[i], b[i]));
  EXPECT_THROW(slice(x, 1, 4, 11), Error);
  EXPECT_THROW(chunk(x, 3, 1), Error);
}

TEST(Permute, MatchesReference) {
  Tensor x = randn({2, 3, 4, 5}, 9);
  std::vector<int> perm{0, 1, 2, 3};
  do {
    EXPECT_TRUE(same_bits(permute(x, perm), ref::permute(x, perm)));
  } while (std::next_permutation(perm.begin(), perm.end()));
  EXPECT_THROW(permute(x, {0, 1, 2}), Error);
  EXPECT_THROW(permute(x, {0, 1, 1, 2}), Error);
}

TEST(Layout, NchwNlcRoundTrip) {
  for (Shape s : {Shape{1, 1, 1, 1}, Shape{2, 5, 3, 7}, Shape{1, 320, 16, 16}, Shape{2, 67, 9, 13}}) {
    Tensor x = randn(s, 10);
    Tensor n = nchw_to_nlc(x);
    EXPECT_TRUE(same_bits(n, ref::nchw_to_nlc(x))) << shape_str(s);
    EXPECT_TRUE(same_bits(nlc_to_nchw(n, s[2], s[3]), x)) << shape_str(s);
  }
  EXPECT_THROW(nlc_to_nchw(Tensor::zeros({1, 6, 2}), 2, 2), Error);
}

TEST(Layout, SameBitsAtOneAndTwoThreads) {
  Tensor x = randn({2, 320, 32, 32}, 11);
  EXPECT_TRUE(deterministic([&] { return nchw_to_nlc(x); }));
  EXPECT_TRUE(deterministic([&] { return upsample_nearest2x(x); }));
  EXPECT_TRUE(deterministic([&] { return concat({x, x}, 1); }));
}

}  // namespace
}  // namespace pigment::ops
