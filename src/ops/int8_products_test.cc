// Precision::Int8 linear layers and convolutions: the quantisation, the oneDNN kernels against their scalar twins bit
// for bit (the integer sums are exact), closeness to float32 within int8 rounding, 1 and 2 threads alike, and the
// fallbacks (no VNNI — forced here on any machine —, short rows, a fused activation, conv_in's 4 channels, 3 outputs,
// 1x1 shortcuts)
// computing exactly as Precision::Fast.
#include "ops/int8_products.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "ops/ops.h"
#include "ops/ops_test_util.h"
#include "ops/precision.h"

namespace pigment::ops::int8 {
namespace {
using testing::deterministic;
using testing::randn;
using testing::rel_err;
using testing::same_bits;

TEST(Int8Products, QuantizesEachRowSymmetricallyTo127Levels) {
  const Tensor x = randn({5, 67}, 1, 2.f);
  const Quantized q = quantize_rows(x.f32(), 5, 67);
  for (int64_t m = 0; m < 5; ++m) {
    float amax = 0;
    for (int64_t k = 0; k < 67; ++k) amax = std::max(amax, std::fabs(x.f32()[m * 67 + k]));
    EXPECT_FLOAT_EQ(q.scale[size_t(m)], amax / 127.f);
    bool reaches = false;
    for (int64_t k = 0; k < 67; ++k) {
      const int v = q.q[size_t(m * 67 + k)];
      EXPECT_LE(std::abs(v), 127);
      reaches |= std::abs(v) == 127;
      EXPECT_LE(std::fabs(v * q.scale[size_t(m)] - x.f32()[m * 67 + k]), 0.5f * q.scale[size_t(m)] * 1.0001f);
    }
    EXPECT_TRUE(reaches);  // the largest element maps to ±127
  }
  const std::vector<float> zeros(8, 0.f);
  EXPECT_EQ(quantize_rows(zeros.data(), 1, 8).q, std::vector<int8_t>(8, 0));  // an all-zero row stays zero
}

TEST(Int8Products, QuantizesEachRowAsymmetricallyTo255LevelsKeepingZeroExact) {
  Tensor x = randn({3, 70}, 40, 2.f);
  for (int64_t k = 0; k < 70; ++k) x.f32()[70 + k] = std::fabs(x.f32()[70 + k]) + 0.5f;  // row 1: all positive
  x.f32()[70 + 3] = 0.f;
  const QuantizedAsymmetric q = quantize_rows_asymmetric(x.f32(), 3, 70);
  for (int64_t m = 0; m < 3; ++m) {
    float lo = 0, hi = 0;
    for (int64_t k = 0; k < 70; ++k) lo = std::min(lo, x.f32()[m * 70 + k]), hi = std::max(hi, x.f32()[m * 70 + k]);
    const float s = q.scale[size_t(m)];
    const int z = q.zero_point[size_t(m)];
    EXPECT_FLOAT_EQ(s, (hi - lo) / 255.f);
    for (int64_t k = 0; k < 70; ++k) {
      const float v = x.f32()[m * 70 + k];
      EXPECT_LE(std::fabs((int(q.q[size_t(m * 70 + k)]) - z) * s - v), 0.5f * s * 1.0001f) << m << "," << k;
    }
  }
  EXPECT_EQ(q.zero_point[1], 0);     // an all-positive row uses all 255 levels above zero
  EXPECT_EQ(q.q[size_t(70 + 3)], 0);  // and its zero stays zero
  const std::vector<float> zeros(8, 0.f);
  const QuantizedAsymmetric z = quantize_rows_asymmetric(zeros.data(), 1, 8);
  EXPECT_EQ(z.q, std::vector<uint8_t>(8, uint8_t(z.zero_point[0])));  // an all-zero row stays zero
}

TEST(Int8Products, LinearIsItsScalarTwinBitForBitAndCloseToFloat32) {
  if (!available()) GTEST_SKIP() << "no int8 path (AVX-512 VNNI or AMX) here; the fallback tests below run";
  ScopedPrecision p(Precision::Int8);
  for (DType wd : {DType::F32, DType::F16}) {
    const Tensor x = randn({2, 37, 130}, 2), w = randn({70, 130}, 3, 0.05f).to(wd), b = randn({70}, 4),
                 r = randn({2, 37, 70}, 5);
    LinearOptions o;
    o.residual = &r;
    Tensor y;
    ASSERT_TRUE(linear(x, w, &b, o, y));
    EXPECT_TRUE(same_bits(y, reference_linear(x, w, &b, &r)));
    Tensor exact;
    {
      ScopedPrecision e(Precision::Fp32);
      exact = ops::linear(x, w, &b, o);
    }
    const double err = rel_err(y, exact);
    EXPECT_LT(err, 2e-2);  // two 8-bit roundings per product, summed over K = 130
    EXPECT_GT(err, 1e-5);  // and it really ran in int8
    EXPECT_TRUE(same_bits(ops::linear(x, w, &b, o), y));  // ops::linear takes this path under Int8
  }
}

TEST(Int8Products, SameBitsAtOneAndTwoThreads) {
  ScopedPrecision p(Precision::Int8);
  const Tensor x = randn({300, 320}, 6), w = randn({640, 320}, 7, 0.05f);
  EXPECT_TRUE(deterministic([&] { return ops::linear(x, w, nullptr); }));
}

TEST(Int8Products, FallbacksComputeExactlyAsFast) {
  const Tensor x = randn({3, 29, 96}, 8), w = randn({48, 96}, 9, 0.05f), b = randn({48}, 10);
  const Tensor ws = randn({48, 40}, 11, 0.05f), xs = randn({3, 29, 40}, 12);  // K < 64
  auto under = [](Precision prec, auto&& f) {
    ScopedPrecision p(prec);
    return f();
  };
  LinearOptions gelu;
  gelu.activation = Activation::Gelu;
  EXPECT_TRUE(same_bits(under(Precision::Int8, [&] { return ops::linear(xs, ws, &b); }),
                        under(Precision::Fast, [&] { return ops::linear(xs, ws, &b); })));
  EXPECT_TRUE(same_bits(under(Precision::Int8, [&] { return ops::linear(x, w, &b, gelu); }),
                        under(Precision::Fast, [&] { return ops::linear(x, w, &b, gelu); })));
  const bool was = set_enabled(false);  // a CPU without VNNI
  EXPECT_FALSE(available());
  EXPECT_TRUE(same_bits(under(Precision::Int8, [&] { return ops::linear(x, w, &b); }),
                        under(Precision::Fast, [&] { return ops::linear(x, w, &b); })));
  {
    ScopedPrecision p(Precision::Int8);
    EXPECT_STRNE(precision_used(), "int8");
  }
  set_enabled(was);
}

TEST(Int8Products, AWeightChangedInPlaceAndForgottenIsQuantisedAgain) {
  if (!available()) GTEST_SKIP() << "no int8 path here";
  ScopedPrecision p(Precision::Int8);
  const Tensor x = randn({8, 64}, 13);
  Tensor w = randn({16, 64}, 14, 0.05f);
  const Tensor before = ops::linear(x, w, nullptr);
  for (int64_t i = 0; i < w.numel(); ++i) w.f32()[i] *= -1.f;
  forget_prepared(w);
  const Tensor after = ops::linear(x, w, nullptr);
  EXPECT_TRUE(same_bits(after, reference_linear(x, w, nullptr)));
  EXPECT_FALSE(same_bits(before, after));
  EXPECT_STREQ(precision_used(), "int8");
}

TEST(Int8Products, ConvolutionIsItsScalarTwinBitForBitAndCloseToFloat32) {
  if (!available()) GTEST_SKIP() << "no int8 path (AVX-512 VNNI or AMX) here; the fallback tests below run";
  ScopedPrecision p(Precision::Int8);
  struct Case {
    int64_t N, C, H, W, O, k;
    Conv2dParams p;
  };
  // 3x3 same, stride 2 with the UNet's asymmetric padding, 3x3 unpadded, a non-square image, batch 2 (a scale per
  // image); larger images (306 and 340 output pixels).
  for (const Case& c : {Case{1, 32, 9, 9, 24, 3, Conv2dParams::same(1)}, Case{2, 16, 10, 7, 20, 3, {2, 0, 0, 1, 1}},
                        Case{1, 64, 6, 6, 40, 3, Conv2dParams::same(0)}, Case{2, 24, 5, 8, 33, 3, Conv2dParams::same(1)},
                        Case{2, 16, 18, 17, 24, 3, Conv2dParams::same(1)}, Case{1, 16, 40, 34, 20, 3, {2, 0, 0, 1, 1}}}) {
    for (DType wd : {DType::F32, DType::F16}) {
      Tensor x = randn({c.N, c.C, c.H, c.W}, 20);
      if (c.N == 2)  // the second image ten times larger: its own scale
        for (int64_t i = x.numel() / 2; i < x.numel(); ++i) x.f32()[i] *= 10.f;
      else  // as after a SiLU (≥ −0.28): a zero point far from 128, which the padding must count as zero
        for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = std::max(x.f32()[i], -0.28f);
      const Tensor w = randn({c.O, c.C, c.k, c.k}, 21, 0.05f).to(wd), b = randn({c.O}, 22);
      Tensor y0 = ops::conv2d(x, w, &b, c.p);
      const Tensor r = randn(y0.shape(), 23);
      Conv2dOptions o;
      o.residual = &r;
      Tensor y;
      ASSERT_TRUE(conv2d(x, w, &b, c.p, o, y));
      EXPECT_TRUE(same_bits(y, reference_conv2d(x, w, &b, c.p, &r)));
      EXPECT_TRUE(same_bits(ops::conv2d(x, w, &b, c.p, o), y));  // ops::conv2d takes this path under Int8
      Tensor exact;
      {
        ScopedPrecision e(Precision::Fp32);
        exact = ops::conv2d(x, w, &b, c.p, o);
      }
      const double err = rel_err(y, exact);
      EXPECT_LT(err, 2e-2) << c.C << "->" << c.O << " k" << c.k;
      EXPECT_GT(err, 1e-5);  // and it really ran in int8
    }
  }
}

TEST(Int8Products, ConvolutionSameBitsAtOneAndTwoThreads) {
  ScopedPrecision p(Precision::Int8);
  const Tensor x = randn({2, 64, 20, 20}, 24), w = randn({96, 64, 3, 3}, 25, 0.05f), b = randn({96}, 26);
  EXPECT_TRUE(deterministic([&] { return ops::conv2d(x, w, &b, Conv2dParams::same(1)); }));
}

TEST(Int8Products, ConvolutionFallbacksComputeExactlyAsFast) {
  auto under = [](Precision prec, auto&& f) {
    ScopedPrecision p(prec);
    return f();
  };
  const Tensor b = randn({48}, 27);
  const Tensor x4 = randn({1, 4, 12, 12}, 28), w4 = randn({48, 4, 3, 3}, 29, 0.1f);    // conv_in: 4 channels
  const Tensor x = randn({1, 32, 12, 12}, 30), w3 = randn({3, 32, 3, 3}, 31, 0.05f);  // 3 outputs (conv_out)
  const Tensor w = randn({48, 32, 3, 3}, 32, 0.05f), w1 = randn({48, 32, 1, 1}, 33, 0.1f);  // 1x1: a shortcut
  const auto same = Conv2dParams::same(1);
  {
    ScopedPrecision p(Precision::Int8);
    EXPECT_EQ(takes_conv(32, 48, 9), available());
    EXPECT_FALSE(takes_conv(4, 48, 9));
    EXPECT_FALSE(takes_conv(32, 3, 9));
    EXPECT_FALSE(takes_conv(64, 48, 1));
  }
  EXPECT_FALSE(takes_conv(32, 48, 9));  // not under Fast
  EXPECT_TRUE(same_bits(under(Precision::Int8, [&] { return ops::conv2d(x, w1, &b, Conv2dParams::same(0)); }),
                        under(Precision::Fast, [&] { return ops::conv2d(x, w1, &b, Conv2dParams::same(0)); })));
  EXPECT_TRUE(same_bits(under(Precision::Int8, [&] { return ops::conv2d(x4, w4, &b, same); }),
                        under(Precision::Fast, [&] { return ops::conv2d(x4, w4, &b, same); })));
  EXPECT_TRUE(same_bits(under(Precision::Int8, [&] { return ops::conv2d(x, w3, nullptr, same); }),
                        under(Precision::Fast, [&] { return ops::conv2d(x, w3, nullptr, same); })));
  const bool was = set_enabled(false);  // a CPU without VNNI
  EXPECT_FALSE(under(Precision::Int8, [] { return takes_conv(32, 48, 9); }));
  EXPECT_TRUE(same_bits(under(Precision::Int8, [&] { return ops::conv2d(x, w, &b, same); }),
                        under(Precision::Fast, [&] { return ops::conv2d(x, w, &b, same); })));
  set_enabled(was);
}

// Low-memory mode keeps no quantised weights: each call quantises afresh, with the same bits.
TEST(Int8Products, WeightsNotKeptWhenToldGiveTheSameBits) {
  if (!available()) GTEST_SKIP() << "no int8 path here";
  ScopedPrecision p(Precision::Int8);
  const Tensor x = randn({40, 96}, 50), w = randn({64, 96}, 51, 0.05f);
  const Tensor xc = randn({1, 32, 10, 10}, 52), wc = randn({40, 32, 3, 3}, 53, 0.05f);
  const Tensor kept = ops::linear(x, w, nullptr), kept_c = ops::conv2d(xc, wc, nullptr, Conv2dParams::same(1));
  EXPECT_GT(kept_weights(), 0u);
  const bool was = set_keep_weights(false);
  EXPECT_TRUE(same_bits(ops::linear(x, w, nullptr), kept));
  EXPECT_TRUE(same_bits(ops::conv2d(xc, wc, nullptr, Conv2dParams::same(1)), kept_c));
  EXPECT_EQ(kept_weights(), 0u);
  set_keep_weights(was);
}

}  // namespace
}  // namespace pigment::ops::int8
