// Precision::Int8 linear layers: the quantisation, the oneDNN kernel against its scalar twin bit for bit (the integer
// sums are exact), closeness to float32 within int8 rounding, 1 and 2 threads alike, and the fallbacks (no VNNI —
// forced here on any machine —, short rows, a fused activation) computing exactly as Precision::Fast.
#include "ops/int8_products.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace pigment::ops::int8
