#include "imaging/blur.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"

namespace pigment {
namespace {

TEST(MaskBlurA1111, KernelSizeAndMirroredBorders) {
  // σ = 1: kernel 2·int(2.5 + 0.5) + 1 = 7 taps; a single white pixel spreads with the Gaussian weights (OpenCV's
  // 8-bit path rounds its fixed-point kernel, so within one level of the exact value).
  Image g{11, 1, 1, std::vector<uint8_t>(11, 0)};
  g.pixels[5] = 255;
  Image b = mask_blur_a1111(g, 1, 0);
  double sum = 0;
  for (int i = -3; i <= 3; ++i) sum += std::exp(-0.5 * i * i);
  EXPECT_NEAR(b.pixels[5], 255 / sum, 1.0);
  EXPECT_NEAR(b.pixels[4], 255 * std::exp(-0.5) / sum, 1.0);
  EXPECT_NEAR(b.pixels[2], 255 * std::exp(-4.5) / sum, 1.0);
  EXPECT_GT(b.pixels[2], 0);   // 3 away: inside the kernel
  EXPECT_EQ(b.pixels[1], 0);   // 4 away: outside
  // blur_y = 0 leaves the columns alone; blur_x = 0 the rows.
  Image col{1, 11, 1, g.pixels};
  EXPECT_EQ(mask_blur_a1111(col, 1, 0).pixels, col.pixels);
  EXPECT_EQ(mask_blur_a1111(col, 0, 1).pixels, b.pixels);
  // BORDER_REFLECT_101: a white pixel at x = 1 reaches x = 0 from both sides (taps −1 → 1 and +1 → 1).
  Image e{7, 1, 1, {0, 255, 0, 0, 0, 0, 0}};
  EXPECT_NEAR(mask_blur_a1111(e, 1, 0).pixels[0], 2 * 255 * std::exp(-0.5) / sum, 1.0);
  EXPECT_THROW(mask_blur_a1111(Image{2, 2, 3, std::vector<uint8_t>(12)}, 1, 1), Error);
  EXPECT_THROW(mask_blur_a1111(g, -1, 1), Error);
}

TEST(BinaryMaskA1111, AlphaThresholdedOtherwiseGray) {
  // RGBA with transparency: the alpha, > 128 → 255.
  Image rgba{3, 1, 4, {0, 0, 0, 128, 0, 0, 0, 129, 9, 9, 9, 0}};
  EXPECT_EQ(binary_mask_a1111(rgba).pixels, (std::vector<uint8_t>{0, 255, 0}));
  // Opaque RGBA, RGB or gray: the gray values, unthresholded.
  Image rgb{2, 1, 3, {100, 100, 100, 255, 255, 255}};
  EXPECT_EQ(binary_mask_a1111(rgb).pixels, (std::vector<uint8_t>{100, 255}));
}

TEST(PilGaussianBlur, RadiusZeroIsTheIdentityAndFlatStaysFlat) {
  Image img{5, 4, 3, {}};
  for (int i = 0; i < 60; ++i) img.pixels.push_back(uint8_t(i * 37 % 256));
  EXPECT_EQ(pil_gaussian_blur(img, 0).pixels, img.pixels);
  Image flat{9, 7, 1, std::vector<uint8_t>(63, 200)};
  EXPECT_EQ(pil_gaussian_blur(flat, 3.5f).pixels, flat.pixels);
  EXPECT_THROW(pil_gaussian_blur(img, -1), Error);
}

}  // namespace
}  // namespace pigment
