// 1x1 convolutions run as matrix products: the same values as the scalar convolution, with bias and residual, in
// batches, and the same bits at 1 and 2 threads.
#include "ops/conv2d_pointwise.h"

#include <gtest/gtest.h>

#include "ops/ops_test_util.h"
#include "ops/precision.h"
#include "ops/reference.h"

namespace pigment::ops {
namespace {
using testing::randn;
using testing::rel_err;

TEST(Conv2dPointwise, MatchesTheScalarConvolution) {
  for (int64_t n : {1, 2}) {
    const Tensor x = randn({n, 48, 13, 11}, 1), w = randn({32, 48, 1, 1}, 2, 0.1f), b = randn({32}, 3);
    const Tensor r = randn({n, 32, 13, 11}, 4);
    Conv2dOptions o;
    o.residual = &r;
    Tensor y;
    ASSERT_TRUE(conv2d_pointwise(x, w, &b, Conv2dParams{}, o, y));
    EXPECT_LT(rel_err(y, ref::add(ref::conv2d(x, w, &b, Conv2dParams{}), r)), 1e-5) << n;
    EXPECT_LT(rel_err(conv2d(x, w, nullptr, Conv2dParams{}), ref::conv2d(x, w, nullptr, Conv2dParams{})), 1e-5) << n;
    EXPECT_LT(rel_err(conv2d(x.to(DType::F32), w.to(DType::F16), &b, Conv2dParams{}),
                      ref::conv2d(x, w.to(DType::F16), &b, Conv2dParams{})),
              1e-5);
  }
}

TEST(Conv2dPointwise, OnlyPlainOneByOneInFloat32) {
  const Tensor x = randn({1, 8, 6, 6}, 1), w1 = randn({4, 8, 1, 1}, 2), w3 = randn({4, 8, 3, 3}, 3);
  Tensor y;
  EXPECT_FALSE(conv2d_pointwise(x, w3, nullptr, Conv2dParams::same(1), Conv2dOptions{}, y));
  Conv2dParams strided;
  strided.stride = 2;
  EXPECT_FALSE(conv2d_pointwise(x, w1, nullptr, strided, Conv2dOptions{}, y));
  EXPECT_FALSE(conv2d_pointwise(x, w1, nullptr, Conv2dParams::same(1), Conv2dOptions{}, y));
  ScopedPrecision p(Precision::Reference);
  EXPECT_FALSE(conv2d_pointwise(x, w1, nullptr, Conv2dParams{}, Conv2dOptions{}, y));
  EXPECT_FALSE(y.defined());
}

TEST(Conv2dPointwise, SameBitsAtOneAndTwoThreads) {
  const Tensor x = randn({2, 64, 32, 32}, 1), w = randn({96, 64, 1, 1}, 2, 0.1f), b = randn({96}, 3);
  EXPECT_TRUE(testing::deterministic([&] { return conv2d(x, w, &b, Conv2dParams{}); }));
}

}  // namespace
}  // namespace pigment::ops
