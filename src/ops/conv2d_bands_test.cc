#include "ops/conv2d_bands.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>
#include <utility>

#include "core/threading.h"
#include "ops/conv2d_bands_test_util.h"
#include "ops/fast_products.h"
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

// What the planner must answer for bands of at most `asked` rows: the tallest bands that oneDNN, asked directly,
// runs with the whole image's kernel and weight layout (conv2d_bands_test_util.h), or 0 (the whole convolution)
// where there are none. Which of the two a shape gets depends on the CPU: oneDNN's F(4,3) blocking follows the cache
// sizes it reads (or guesses: 512 KiB of L2 where CPUID leaf 4 is empty, as on AMD) and the number of tiles, and
// without AVX-512 it has no Winograd kernel at all. The tests hold for either answer.
int64_t expected_rows(int64_t C, int64_t H, int64_t W, int64_t O, int64_t asked, bool bias, bool residual) {
  if (asked >= H) return 0;  // one band would cover the image
  return testing::tallest_matching_bands(C, H, W, O, asked, bias, residual);
}

void report(const std::string& what, int64_t rows) {
  if (rows) std::printf("%s: bands of %lld rows\n", what.c_str(), (long long)rows);
  else std::printf("%s: whole convolution\n", what.c_str());
}

// Shapes where oneDNN 2.6 gives bands and image the same blocking on the CPUs seen so far (Intel Xeon with 2 MiB L2
// read from CPUID; AMD EPYC with L2 guessed at 512 KiB, where 256 channels at 64 columns need bands of 45 rows or
// more and an image of as many), and shapes where only some CPUs do.
TEST(Conv2dBands, SameBitsAsTheWholeConvolution) {
  const Case cases[] = {
      {1, 256, 256, 64, 64, 16, true, false},   // F(4,3)
      {1, 256, 256, 64, 64, 24, true, true},    // residual added by the sum post-op, as in a resnet's conv2
      {1, 256, 256, 66, 64, 12, true, false},   // H not a multiple of the tile
      {2, 256, 256, 36, 128, 8, false, true},   // a batch, no bias
      {1, 512, 256, 64, 64, 16, true, true},    // C != O
      {1, 256, 256, 96, 64, 48, true, true},    // two tall bands
      {1, 256, 256, 144, 64, 48, true, false},  // first, middle and last band
  };
  int banded = 0;
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
    const int64_t rows = conv3x3_band_rows(x, w, bias, o);
    EXPECT_EQ(rows, expected_rows(c.C, c.H, c.W, c.O, c.rows, c.bias, c.residual));
    std::ostringstream name;
    name << "N" << c.N << " " << c.C << "->" << c.O << " @" << c.H << "x" << c.W << ", at most " << c.rows << " rows";
    report(name.str(), rows);
    banded += rows > 0;
    Tensor banded_y = conv3x3_banded(x, w, bias, o);
    EXPECT_TRUE(same_bits(banded_y, whole(x, w, bias, o.residual)));
  }
  // Where oneDNN has Winograd F(4,3) for these shapes, some of them run in bands (the test is about bands).
  bool fused = false;
  if (testing::winograd_desc(256, 64, 64, 256, 1, 1, true, false, &fused)) {
    EXPECT_GT(banded, 0);
  }
}

TEST(Conv2dBands, HalfPrecisionWeightsAsInACheckpoint) {
  for (int64_t H : {64, 96}) {
    SCOPED_TRACE(::testing::Message() << "H " << H);
    Tensor x = randn({1, 256, H, 64}, 5);
    Tensor w = randn({256, 256, 3, 3}, 6, 0.02f).to(DType::F16);
    Tensor b = randn({256}, 7).to(DType::F16);
    const int64_t asked = H == 64 ? 16 : 48;
    BandOptions o;
    o.band_bytes = bytes_for_rows(asked, 256, 256, 64);
    EXPECT_EQ(conv3x3_band_rows(x, w, &b, o), expected_rows(256, H, 64, 256, asked, true, false));
    EXPECT_TRUE(same_bits(conv3x3_banded(x, w, &b, o), whole(x, w, &b, nullptr)));
  }
}

TEST(Conv2dBands, UpsampledInputSameBitsAsUpsampleThenConvolution) {
  for (auto [h, rows] : {std::pair<int64_t, int64_t>{25, 8}, {25, 20}, {48, 48}}) {  // 50 or 96 rows after upsampling
    SCOPED_TRACE(::testing::Message() << "h " << h << " rows " << rows);
    Tensor x = randn({1, 256, h, 32}, 8);
    Tensor w = randn({256, 256, 3, 3}, 9, 0.02f);
    Tensor b = randn({256}, 10);
    BandOptions o;
    o.band_bytes = bytes_for_rows(rows, 256, 256, 64, true);
    EXPECT_EQ(conv3x3_band_rows(x, w, &b, o, true), expected_rows(256, 2 * h, 64, 256, rows, true, false));
    EXPECT_TRUE(same_bits(upsample2x_conv3x3_banded(x, w, &b, o), whole(upsample_nearest2x(x), w, &b, nullptr)));
  }
}

TEST(Conv2dBands, SameBitsAtOneAndTwoThreads) {
  for (auto [H, rows] : {std::pair<int64_t, int64_t>{48, 12}, {96, 48}}) {
    SCOPED_TRACE(::testing::Message() << "H " << H << " rows " << rows);
    Tensor x = randn({1, 256, H, 64}, 11);
    Tensor w = randn({256, 256, 3, 3}, 12, 0.02f);
    Tensor b = randn({256}, 13);
    BandOptions o;
    o.band_bytes = bytes_for_rows(rows, 256, 256, 64);
    for (int threads : {1, 2}) {
      ScopedNumThreads t(threads);  // oneDNN's blocking, so the plan, may depend on the thread count
      EXPECT_EQ(conv3x3_band_rows(x, w, &b, o), expected_rows(256, H, 64, 256, rows, true, false));
    }
    EXPECT_TRUE(deterministic([&] { return conv3x3_banded(x, w, &b, o); }));
  }
}

TEST(Conv2dBands, WholeConvolutionWhereBandsWouldNotBeWinograd) {
  {  // few channels or a small image: conv2d runs these direct
    BandOptions o;
    o.band_bytes = bytes_for_rows(8, 256, 256, 64);
    Tensor x = randn({1, 8, 64, 64}, 14), w = randn({32, 8, 3, 3}, 15, 0.1f), b = randn({32}, 16);
    EXPECT_EQ(conv3x3_band_rows(x, w, &b, o), 0);
    EXPECT_TRUE(same_bits(conv3x3_banded(x, w, &b, o), whole(x, w, &b, nullptr)));
    Tensor xs = randn({1, 256, 16, 32}, 17), ws = randn({256, 256, 3, 3}, 18, 0.02f);
    EXPECT_EQ(conv3x3_band_rows(xs, ws, nullptr, o), 0);
  }
  // A shape that runs in bands where oneDNN allows it (checked), and every setting that turns them off.
  for (auto [H, rows] : {std::pair<int64_t, int64_t>{64, 8}, {96, 48}}) {
    SCOPED_TRACE(::testing::Message() << "H " << H << " rows " << rows);
    BandOptions o;
    o.band_bytes = bytes_for_rows(rows, 256, 256, 64);
    Tensor x = randn({1, 256, H, 64}, 19);
    Tensor w = randn({256, 256, 3, 3}, 20, 0.02f);
    Tensor b = randn({256}, 21);
    EXPECT_EQ(conv3x3_band_rows(x, w, &b, o), expected_rows(256, H, 64, 256, rows, true, false));
    {  // direct convolutions (low-memory mode), other precisions
      set_default_conv_algorithm(ConvAlgorithm::Direct);
      EXPECT_EQ(conv3x3_band_rows(x, w, &b, o), 0);
      EXPECT_TRUE(same_bits(conv3x3_banded(x, w, &b, o), whole(x, w, &b, nullptr)));
      set_default_conv_algorithm(ConvAlgorithm::Auto);
      ScopedPrecision plain(Precision::Reference);
      EXPECT_EQ(conv3x3_band_rows(x, w, &b, o), 0);
    }
    {  // Precision::Fast: whole where its bf16 kernels take the shape (AMX), else fp32 Winograd in bands (AVX-512
       // BF16 leaves 256 channels at >= 64x64 to it; no fast path: Fast is Fp32)
      ScopedPrecision fast_products(Precision::Fast);
      const bool bf16 = fast::takes_conv(256, 256, H * 64, true);
      EXPECT_EQ(bf16, fast_path() == FastPath::Amx);
      EXPECT_EQ(conv3x3_band_rows(x, w, &b, o), bf16 ? 0 : expected_rows(256, H, 64, 256, rows, true, false));
    }
    {  // one band covers the image; the process-wide band size
      BandOptions one_band;
      one_band.band_bytes = bytes_for_rows(H, 256, 256, 64);
      EXPECT_EQ(conv3x3_band_rows(x, w, &b, one_band), 0);
      BandOptions never;
      never.band_bytes = SIZE_MAX;
      EXPECT_EQ(conv3x3_band_rows(x, w, &b, never), 0);
      const size_t before = default_band_bytes();
      set_default_band_bytes(0);
      EXPECT_EQ(conv3x3_band_rows(x, w, &b), 0);
      set_default_band_bytes(bytes_for_rows(rows, 256, 256, 64));
      EXPECT_EQ(conv3x3_band_rows(x, w, &b), expected_rows(256, H, 64, 256, rows, true, false));
      set_default_band_bytes(before);
    }
  }
}

// The SD VAE decoder's large 3x3 convolutions at 512x512 with the default band size: each runs in the bands oneDNN
// allows on this CPU (the decode's memory depends on it), or whole where it allows none.
TEST(Conv2dBands, Sd15DecoderShapesAt512GetTheBandsOneDnnAllows) {
  struct Shape3x3 {
    int64_t C, O, H;  // square images
    bool upsampled, residual;
  };
  const Shape3x3 shapes[] = {{512, 512, 64, false, false},  {512, 512, 64, false, true},  {512, 512, 128, true, false},
                             {512, 512, 128, false, false}, {512, 512, 128, false, true}, {512, 512, 256, true, false},
                             {512, 256, 256, false, false}, {256, 256, 256, false, true}, {256, 256, 512, true, false},
                             {256, 128, 512, false, false}, {128, 128, 512, false, true}};
  const size_t band_bytes = default_band_bytes();
  for (const Shape3x3& s : shapes) {
    const std::string name = std::to_string(s.C) + "->" + std::to_string(s.O) + " @" + std::to_string(s.H) +
                             (s.upsampled ? " upsampled" : "") + (s.residual ? " +residual" : "");
    SCOPED_TRACE(name);
    const int64_t h = s.upsampled ? s.H / 2 : s.H;
    // Only the shapes matter to the planner: memory that is never touched (never made resident).
    Tensor x = Tensor::empty({1, s.C, h, h}), w = Tensor::empty({s.O, s.C, 3, 3}), b = Tensor::empty({s.O});
    Tensor r = Tensor::empty({1, s.O, s.H, s.H});
    BandOptions o;
    o.residual = s.residual ? &r : nullptr;
    const int64_t rows = conv3x3_band_rows(x, w, &b, o, s.upsampled);
    const double per_row = 4.0 * double(s.H) * (2.25 * double(s.C + s.O) + double(s.C) * (s.upsampled ? 2 : 1) + double(s.O));
    const int64_t max_rows =
        band_bytes == SIZE_MAX ? s.H : std::max<int64_t>(4, int64_t(double(band_bytes) / per_row) / 4 * 4);
    EXPECT_EQ(rows, expected_rows(s.C, s.H, s.H, s.O, max_rows, true, s.residual));
    report(name, rows);
  }
}

}  // namespace
}  // namespace pigment::ops
