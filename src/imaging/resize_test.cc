#include "imaging/resize.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"

namespace pigment {
namespace {

std::vector<float> values(const Tensor& t) { return std::vector<float>(t.f32(), t.f32() + t.numel()); }

TEST(Interpolate, NearestDoubles) {
  Tensor x = Tensor::from_vector({1, 1, 2, 2}, {1, 2, 3, 4});
  Tensor y = interpolate(x, 4, 4, "nearest", false);
  EXPECT_EQ(values(y), (std::vector<float>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}));
}

TEST(Interpolate, NearestVersusNearestExactAtOneAndAHalf) {
  // 2 → 3: nearest takes floor(o·2/3) = 0, 0, 1; nearest-exact floor((o + 0.5)·2/3) = 0, 1, 1.
  Tensor x = Tensor::from_vector({1, 1, 1, 2}, {5, 7});
  EXPECT_EQ(values(interpolate(x, 1, 3, "nearest", false)), (std::vector<float>{5, 5, 7}));
  EXPECT_EQ(values(interpolate(x, 1, 3, "nearest-exact", false)), (std::vector<float>{5, 7, 7}));
}

TEST(Interpolate, BilinearHalfPixelCentres) {
  // 2 → 4 (align_corners=False): sources −0.25 (clamped to 0), 0.25, 0.75, 1.25 (right neighbour clamped).
  Tensor x = Tensor::from_vector({1, 1, 1, 2}, {0, 8});
  EXPECT_EQ(values(interpolate(x, 1, 4, "bilinear", false)), (std::vector<float>{0, 2, 6, 8}));
  // Separable: the same along y, and a 2x2 → 4x4 corner keeps the corner value.
  Tensor q = Tensor::from_vector({1, 1, 2, 2}, {0, 8, 16, 24});
  Tensor y = interpolate(q, 4, 4, "bilinear", false);
  EXPECT_FLOAT_EQ(y.f32()[0], 0);
  EXPECT_FLOAT_EQ(y.f32()[5], 0.75f * (0.75f * 0 + 0.25f * 8) + 0.25f * (0.75f * 16 + 0.25f * 24));
  EXPECT_FLOAT_EQ(y.f32()[15], 24);
}

TEST(Interpolate, BicubicUsesTorchsA) {
  // 4 → 8, output 3: source (3.5)·0.5 − 0.5 = 1.25, taps at 0..3 with torch's A = −0.75 weights for t = 0.25.
  Tensor x = Tensor::from_vector({1, 1, 1, 4}, {1, 2, 4, 8});
  Tensor y = interpolate(x, 1, 8, "bicubic", false);
  const double A = -0.75, t = 0.25;
  auto c1 = [&](double v) { return ((A + 2) * v - (A + 3)) * v * v + 1; };
  auto c2 = [&](double v) { return ((A * v - 5 * A) * v + 8 * A) * v - 4 * A; };
  double expect = c2(t + 1) * 1 + c1(t) * 2 + c1(1 - t) * 4 + c2(2 - t) * 8;
  EXPECT_NEAR(y.f32()[3], expect, 1e-5);
  // Output 0: source −0.25, floor −1; indices −2..1 clamp to 0, 0, 0, 1.
  double t0 = 0.75;
  double e0 = c2(t0 + 1) * 1 + c1(t0) * 1 + c1(1 - t0) * 1 + c2(2 - t0) * 2;
  EXPECT_NEAR(y.f32()[0], e0, 1e-5);
}

TEST(Interpolate, AntialiasedUpscaleNormalizesAtTheBorder) {
  // Upscaling with antialias: triangle filter of support 1 at centres (o + 0.5)·0.5; at the border the weights
  // are renormalized instead of clamping the source: output 0 (centre 0.25) → taps 0 only... value = x0.
  Tensor x = Tensor::from_vector({1, 1, 1, 2}, {0, 8});
  std::vector<float> v = values(interpolate(x, 1, 4, "bilinear", true));
  EXPECT_FLOAT_EQ(v[0], 0);
  EXPECT_FLOAT_EQ(v[1], 2);
  EXPECT_FLOAT_EQ(v[2], 6);
  EXPECT_FLOAT_EQ(v[3], 8);
}

TEST(Interpolate, AntialiasedDownscaleAverages) {
  // 4 → 2 bilinear with antialias: support 2 around centres 1 and 3: weights (0.25, 0.75, 0.75, 0.25) / 2 then
  // clipped to the input: output 0 uses x0..x2 with weights 0.75, 0.75, 0.25 (normalized).
  Tensor x = Tensor::from_vector({1, 1, 1, 4}, {0, 4, 8, 12});
  std::vector<float> v = values(interpolate(x, 1, 2, "bilinear", true));
  EXPECT_NEAR(v[0], (0.75 * 0 + 0.75 * 4 + 0.25 * 8) / 1.75, 1e-5);
  EXPECT_NEAR(v[1], (0.25 * 4 + 0.75 * 8 + 0.75 * 12) / 1.75, 1e-5);
}

TEST(Interpolate, ShapesAndErrors) {
  Tensor x = Tensor::zeros({2, 4, 8, 6});
  Tensor y = interpolate(x, 16, 12, "bicubic", true);
  EXPECT_EQ(y.shape(), (Shape{2, 4, 16, 12}));
  EXPECT_THROW(interpolate(x, 16, 12, "area", false), Error);
  EXPECT_THROW(interpolate(x, 16, 12, "nearest", true), Error);
  EXPECT_THROW(interpolate(x, 0, 12, "nearest", false), Error);
}

TEST(ResizeImage, LanczosKeepsFlatImagesAndUpscalesSmoothly) {
  Image flat{3, 2, 3, std::vector<uint8_t>(3 * 2 * 3, 77)};
  Image up = resize_image(flat, 9, 5, ImageFilter::Lanczos);
  ASSERT_EQ(up.width, 9);
  ASSERT_EQ(up.height, 5);
  for (uint8_t v : up.pixels) EXPECT_EQ(v, 77);
  // A step edge upscaled by Lanczos rings (values outside the input range are clipped) but stays monotone in the
  // middle; bilinear is exactly the triangle interpolation: 2 → 4 gives 0, 64, 191, 255 (PIL rounding).
  Image step{2, 1, 1, {0, 255}};
  Image bl = resize_image(step, 4, 1, ImageFilter::Bilinear);
  EXPECT_EQ(bl.pixels, (std::vector<uint8_t>{0, 64, 191, 255}));
  Image nn = resize_image(step, 4, 1, ImageFilter::Nearest);
  EXPECT_EQ(nn.pixels, (std::vector<uint8_t>{0, 0, 255, 255}));
}

TEST(ResizeArea, ExactFractionalCoverage) {
  // 3 pixels to 2: output 0 covers source 0 and half of source 1; output 1 the other half and source 2.
  Image img{3, 1, 1, {0, 100, 200}};
  Image o = resize_area(img, 2, 1);
  EXPECT_EQ(o.pixels, (std::vector<uint8_t>{uint8_t((0 * 2 + 100 * 1 + 1) / 3), uint8_t((100 + 200 * 2 + 1) / 3)}));
  // Integer factors are plain block means (rounded half up): 2x2 blocks of {1, 2, 3, 4} → 2.5 → 3.
  Image b{4, 2, 1, {1, 2, 10, 10, 3, 4, 10, 11}};
  EXPECT_EQ(resize_area(b, 2, 1).pixels, (std::vector<uint8_t>{3, 10}));
  // 136 → 64 (the emoji strikes): a flat image stays flat, per channel.
  Image flat{136, 136, 3, {}};
  for (int i = 0; i < 136 * 136; ++i) flat.pixels.insert(flat.pixels.end(), {255, 17, 0});
  Image f = resize_area(flat, 64, 64);
  ASSERT_EQ(f.width, 64);
  for (int i = 0; i < 64 * 64; ++i) ASSERT_EQ(f.pixels[size_t(i) * 3 + 1], 17);
  EXPECT_THROW(resize_area(img, 4, 1), Error);
}

}  // namespace
}  // namespace pigment
