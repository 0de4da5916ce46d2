#include "ops/conv2d_narrow.h"

#include <gtest/gtest.h>

#include "ops/ops_test_util.h"

namespace pigment::ops {
namespace {
using testing::close;
using testing::deterministic;
using testing::randn;

TEST(Conv2dNarrow, MatchesReference) {
  // Widths of one to several vectors (edges in the first and last strip, strips of 4 and a remainder), 1-4 outputs,
  // with and without bias, batch 2, a height of 1 (both kernel rows outside the image).
  uint32_t seed = 1;
  for (auto [C, H, W, O] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{3, 5, 16, 1}, {8, 7, 32, 2},
                            {16, 4, 48, 3}, {5, 3, 80, 4}, {128, 6, 64, 3}, {4, 1, 16, 4}, {2, 9, 112, 3}})
    for (bool with_bias : {true, false}) {
      Tensor x = randn({2, C, H, W}, seed++);
      Tensor w = randn({O, C, 3, 3}, seed++, 0.2f);
      Tensor b = randn({O}, seed++);
      const Tensor* bp = with_bias ? &b : nullptr;
      Tensor y;
      ASSERT_TRUE(conv2d_narrow(x, w, bp, Conv2dParams::same(1), {}, y)) << C << " " << H << " " << W << " " << O;
      EXPECT_TRUE(close(y, ref::conv2d(x, w, bp, Conv2dParams::same(1)), 1e-5f, 1e-5f))
          << C << " " << H << " " << W << " " << O << " bias " << with_bias;
      EXPECT_TRUE(close(conv2d(x, w, bp, Conv2dParams::same(1)), y, 0.f, 0.f));  // conv2d takes this path
    }
}

TEST(Conv2dNarrow, HalfWeightsResidualAndThreads) {
  Tensor x = randn({1, 64, 12, 64}, 30);
  Tensor w = randn({3, 64, 3, 3}, 31, 0.1f).to(DType::F16);
  Tensor b = randn({3}, 32).to(DType::F16);
  Tensor r = randn({1, 3, 12, 64}, 33);
  Conv2dOptions o;
  o.residual = &r;
  Tensor y;
  ASSERT_TRUE(conv2d_narrow(x, w, &b, Conv2dParams::same(1), o, y));
  EXPECT_TRUE(close(y, ref::add(ref::conv2d(x, w, &b, Conv2dParams::same(1)), r), 1e-5f, 1e-5f));
  EXPECT_TRUE(deterministic([&] { return conv2d(x, w, &b, Conv2dParams::same(1)); }));
}

TEST(Conv2dNarrow, LeavesOtherShapesToConv2d) {
  Tensor y;
  Tensor x = randn({1, 4, 8, 16}, 40);
  EXPECT_FALSE(conv2d_narrow(x, randn({5, 4, 3, 3}, 41), nullptr, Conv2dParams::same(1), {}, y));  // 5 outputs
  EXPECT_FALSE(conv2d_narrow(x, randn({3, 4, 3, 3}, 42), nullptr, Conv2dParams::same(1, 2), {}, y));  // stride 2
  EXPECT_FALSE(conv2d_narrow(x, randn({3, 4, 1, 1}, 43), nullptr, Conv2dParams{}, {}, y));            // 1x1
  EXPECT_FALSE(conv2d_narrow(randn({1, 4, 8, 20}, 44), randn({3, 4, 3, 3}, 45), nullptr, Conv2dParams::same(1), {},
                             y));  // width not a multiple of 16
  EXPECT_FALSE(y.defined());
}

}  // namespace
}  // namespace pigment::ops
