#include "ops/conv2d_bands.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>

#include "ops/ops_test_util.h"
#include "ops/precision.h"

namespace pigment::ops {
namespace {
using testing::deterministic;
using testing::randn;
using testing::same_bits;

// Per-band bytes that give bands of `rows` output rows for C -> O channels, W wide (the estimate in conv2d_bands.cc).
size_t bytes_for_rows(int64_t rows, int64_t C, int64_t O, int64_t W, bool upsampled = false) {
  const double per_row = 4.0 * double(W) * (2.25 * double(C + O) + double(C) * (upsampled ? 2 : 1) + double(O));
  return size_t(per_row * double(rows)) + 1;
}

struct Case {
  int64_t N, C, O, H, W, rows;
  bool bias, residual;
};

Tensor whole(const Tensor& x, const Tensor& w, const Tensor* b, const Tensor* residual) {
  Conv2dOptions o;
  o.residual = residual;
  return conv2d(x, w, b, Conv2dParams::same(1), o);
}

// The rows a plan chose: at most the requested ones (fewer where oneDNN would block the weights differently for the
// band than for the whole image), a multiple of the F(4,3) tile, and not 0 (the test is about bands).
::testing::AssertionResult banded_rows(int64_t got, int64_t asked) {
  if (got > 0 && got <= asked && got % 4 == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "bands of " << got << " rows for " << asked << " asked";
}

// oneDNN picks its F(4,3) kernel for these channel counts (256 and more, as the VAE's 256- and 512-channel layers)
// and its F(2,3) one for fewer (64, 128).
TEST(Conv2dBands, SameBitsAsTheWholeConvolution) {
  const Case cases[] = {
      {1, 256, 256, 64, 64, 16, true, false},   // F(4,3)
      {1, 256, 256, 64, 64, 24, true, true},    // residual added by the sum post-op, as in a resnet's conv2
      {1, 256, 256, 66, 64, 12, true, false},   // H not a multiple of the tile
      {2, 256, 256, 36, 128, 8, false, true},   // a batch, no bias
      {1, 512, 256, 64, 64, 16, true, true},    // C != O
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "N" << c.N << " " << c.C << "->" << c.O << " @" << c.H << "x" << c.W
                                      << " rows " << c.rows);
    Tensor x = randn({c.N, c.C, c.H, c.W}, 1);
    Tensor w = randn({c.O, c.C, 3, 3}, 2, 1.f / std::sqrt(9.f * c.C));
    Tensor b = randn({c.O}, 3);
    Tensor r = randn({c.N, c.O, c.H, c.W}, 4);
    BandOptions o;
    o.band_bytes = bytes_for_rows(c.rows, c.C, c.O, c.W);
    o.residual = c.residual ? &r : nullptr;
    const Tensor* bias = c.bias ? &b : nullptr;
    EXPECT_TRUE(banded_rows(conv3x3_band_rows(x, w, bias, o), c.rows));
    Tensor banded = conv3x3_banded(x, w, bias, o);
    EXPECT_TRUE(same_bits(banded, whole(x, w, bias, o.residual)));
  }
}

TEST(Conv2dBands, HalfPrecisionWeightsAsInACheckpoint) {
  Tensor x = randn({1, 256, 64, 64}, 5);
  Tensor w = randn({256, 256, 3, 3}, 6, 0.02f).to(DType::F16);
  Tensor b = randn({256}, 7).to(DType::F16);
  BandOptions o;
  o.band_bytes = bytes_for_rows(16, 256, 256, 64);
  ASSERT_TRUE(banded_rows(conv3x3_band_rows(x, w, &b, o), 16));
  EXPECT_TRUE(same_bits(conv3x3_banded(x, w, &b, o), whole(x, w, &b, nullptr)));
}

TEST(Conv2dBands, UpsampledInputSameBitsAsUpsampleThenConvolution) {
  for (int64_t rows : {8, 20}) {
    Tensor x = randn({1, 256, 25, 32}, 8);  // 50 x 64 after upsampling
    Tensor w = randn({256, 256, 3, 3}, 9, 0.02f);
    Tensor b = randn({256}, 10);
    BandOptions o;
    o.band_bytes = bytes_for_rows(rows, 256, 256, 64, true);
    EXPECT_TRUE(banded_rows(conv3x3_band_rows(x, w, &b, o, true), rows));
    EXPECT_TRUE(same_bits(upsample2x_conv3x3_banded(x, w, &b, o), whole(upsample_nearest2x(x), w, &b, nullptr)));
  }
}

TEST(Conv2dBands, SameBitsAtOneAndTwoThreads) {
  Tensor x = randn({1, 256, 48, 64}, 11);
  Tensor w = randn({256, 256, 3, 3}, 12, 0.02f);
  Tensor b = randn({256}, 13);
  BandOptions o;
  o.band_bytes = bytes_for_rows(12, 256, 256, 64);
  ASSERT_GT(conv3x3_band_rows(x, w, &b, o), 0);
  EXPECT_TRUE(deterministic([&] { return conv3x3_banded(x, w, &b, o); }));
}

TEST(Conv2dBands, WholeConvolutionWhereBandsWouldNotBeWinograd) {
  BandOptions o;
  o.band_bytes = bytes_for_rows(8, 256, 256, 64);
  {  // few channels or a small image: conv2d runs these direct
    Tensor x = randn({1, 8, 64, 64}, 14), w = randn({32, 8, 3, 3}, 15, 0.1f), b = randn({32}, 16);
    EXPECT_EQ(conv3x3_band_rows(x, w, &b, o), 0);
    EXPECT_TRUE(same_bits(conv3x3_banded(x, w, &b, o), whole(x, w, &b, nullptr)));
    Tensor xs = randn({1, 256, 16, 32}, 17), ws = randn({256, 256, 3, 3}, 18, 0.02f);
    EXPECT_EQ(conv3x3_band_rows(xs, ws, nullptr, o), 0);
  }
  Tensor x = randn({1, 256, 64, 64}, 19);
  Tensor w = randn({256, 256, 3, 3}, 20, 0.02f);
  Tensor b = randn({256}, 21);
  ASSERT_TRUE(banded_rows(conv3x3_band_rows(x, w, &b, o), 8));
  {  // direct convolutions (low-memory mode), other precisions
    set_default_conv_algorithm(ConvAlgorithm::Direct);
    EXPECT_EQ(conv3x3_band_rows(x, w, &b, o), 0);
    EXPECT_TRUE(same_bits(conv3x3_banded(x, w, &b, o), whole(x, w, &b, nullptr)));
    set_default_conv_algorithm(ConvAlgorithm::Auto);
    ScopedPrecision plain(Precision::Reference);
    EXPECT_EQ(conv3x3_band_rows(x, w, &b, o), 0);
  }
  {  // one band covers the image; the process-wide band size
    BandOptions one_band;
    one_band.band_bytes = bytes_for_rows(64, 256, 256, 64);
    EXPECT_EQ(conv3x3_band_rows(x, w, &b, one_band), 0);
    BandOptions never;
    never.band_bytes = SIZE_MAX;
    EXPECT_EQ(conv3x3_band_rows(x, w, &b, never), 0);
    const size_t before = default_band_bytes();
    set_default_band_bytes(0);
    EXPECT_EQ(conv3x3_band_rows(x, w, &b), 0);
    set_default_band_bytes(bytes_for_rows(16, 256, 256, 64));
    EXPECT_TRUE(banded_rows(conv3x3_band_rows(x, w, &b), 16));
    set_default_band_bytes(before);
  }
}

}  // namespace
}  // namespace pigment::ops
