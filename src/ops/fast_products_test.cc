// Precision::Fast (bf16 products on AMX): close to the float32 path within bf16 rounding, fused bias/activation/
// residual, the same bits at 1 and 2 threads, and exactly the float32 path where the CPU has no AMX.
#include "ops/fast_products.h"

#include <gtest/gtest.h>

#include "ops/ops.h"
#include "ops/ops_test_util.h"
#include "ops/precision.h"

namespace pigment::ops {
namespace {
using testing::randn;
using testing::rel_err;
using testing::same_bits;

// bf16 keeps 8 significant bits: inputs and weights are each rounded by at most 2^-9 relative, so a dot product of
// random terms is off by about 2^-9 of its typical term times sqrt(K) — a few 1e-3 of the output scale.
constexpr double kBf16Tolerance = 1.5e-2;

TEST(FastPrecision, ParsesNames) {
  EXPECT_EQ(parse_precision("fp32"), Precision::Fp32);
  EXPECT_EQ(parse_precision("fast"), Precision::Fast);
  EXPECT_THROW(parse_precision("half"), Error);
  EXPECT_STREQ(precision_name(Precision::Fast), "fast");
  ScopedPrecision p(Precision::Fast);
  EXPECT_EQ(precision(), Precision::Fast);
}

TEST(FastPrecision, LinearIsCloseToFloat32WithFusedEpilogues) {
  const Tensor x = randn({2, 77, 320}, 1), w = randn({640, 320}, 2, 0.05f), b = randn({640}, 3);
  const Tensor r = randn({2, 77, 640}, 4);
  for (Activation act : {Activation::None, Activation::Gelu, Activation::Silu}) {
    for (bool res : {false, true}) {
      LinearOptions o;
      o.activation = act;
      o.residual = res ? &r : nullptr;
      const Tensor want = linear(x, w, &b, o);
      ScopedPrecision p(Precision::Fast);
      const Tensor got = linear(x, w, &b, o);
      if (fast_precision_available()) {
        EXPECT_LT(rel_err(got, want), kBf16Tolerance) << int(act) << " " << res;
        EXPECT_GT(rel_err(got, want), 0) << "the bf16 path did not run";
      } else {
        EXPECT_TRUE(same_bits(got, want));
      }
    }
  }
}

TEST(FastPrecision, HalfWeightsAreUsedAsTheyAre) {
  const Tensor x = randn({64, 96}, 5), w = randn({48, 96}, 6, 0.1f).to(DType::F16), b = randn({48}, 7).to(DType::F16);
  const Tensor want = linear(x, w, &b);
  ScopedPrecision p(Precision::Fast);
  EXPECT_LT(rel_err(linear(x, w, &b), want), kBf16Tolerance);
}

TEST(FastPrecision, ConvIsCloseToFloat32WithResidual) {
  const Tensor x = randn({2, 32, 20, 18}, 8), w = randn({48, 32, 3, 3}, 9, 0.06f), b = randn({48}, 10);
  const Tensor r = randn({2, 48, 20, 18}, 11);
  Conv2dOptions o;
  o.residual = &r;
  for (auto params : {Conv2dParams::same(1), Conv2dParams::same(1, 2), Conv2dParams{2, 0, 0, 1, 1}}) {
    Conv2dOptions oo = params.stride == 1 ? o : Conv2dOptions{};
    const Tensor want = conv2d(x, w, &b, params, oo);
    ScopedPrecision p(Precision::Fast);
    const Tensor got = conv2d(x, w, &b, params, oo);
    EXPECT_LT(rel_err(got, want), kBf16Tolerance) << params.stride;
    if (fast_precision_available()) {
      EXPECT_GT(rel_err(got, want), 0) << "the bf16 path did not run";
    }
  }
  const Tensor w1 = randn({16, 32, 1, 1}, 12, 0.2f);
  const Tensor want = conv2d(x, w1, nullptr, Conv2dParams{});
  ScopedPrecision p(Precision::Fast);
  EXPECT_LT(rel_err(conv2d(x, w1, nullptr, Conv2dParams{}), want), kBf16Tolerance);
}

TEST(FastPrecision, SameBitsAtOneAndTwoThreads) {
  ScopedPrecision p(Precision::Fast);
  const Tensor x = randn({2, 320, 32, 32}, 13), w = randn({320, 320, 3, 3}, 14, 0.02f), b = randn({320}, 15);
  EXPECT_TRUE(testing::deterministic([&] { return conv2d(x, w, &b, Conv2dParams::same(1)); }));
  const Tensor s = randn({2, 1024, 320}, 16), wl = randn({1280, 320}, 17, 0.05f);
  EXPECT_TRUE(testing::deterministic([&] { return linear(s, wl, nullptr); }));
}

}  // namespace
}  // namespace pigment::ops
