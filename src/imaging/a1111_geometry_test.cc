#include "imaging/a1111_geometry.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "imaging/resize.h"

namespace pigment {
namespace {

Image gray(int w, int h, uint8_t v = 0) { return Image{w, h, 1, std::vector<uint8_t>(size_t(w) * h, v)}; }

TEST(HiresGeometry, ScaleTruncatesLikePythonInt) {
  HiresGeometry g = hires_geometry(512, 512, 2.0, 0, 0, 8);
  EXPECT_EQ(g.upscale_to_x, 1024);
  EXPECT_EQ(g.upscale_to_y, 1024);
  EXPECT_EQ(g.latent_w, 128);
  EXPECT_EQ(g.width, 1024);
  // int(512 * 1.1) = 563 → latent 70 → 560 pixels; int(768 * 1.1) = 844 → 105 → 840.
  g = hires_geometry(512, 768, 1.1, 0, 0, 8);
  EXPECT_EQ(g.upscale_to_x, 563);
  EXPECT_EQ(g.upscale_to_y, 844);
  EXPECT_EQ(g.latent_w, 70);
  EXPECT_EQ(g.latent_h, 105);
  EXPECT_EQ(g.width, 560);
  EXPECT_EQ(g.height, 840);
  EXPECT_EQ(g.truncate_x, 0);
}

TEST(HiresGeometry, OneResizeSideKeepsTheAspectRatio) {
  HiresGeometry g = hires_geometry(512, 768, 2.0, 1024, 0, 8);  // the scale is ignored
  EXPECT_EQ(g.upscale_to_x, 1024);
  EXPECT_EQ(g.upscale_to_y, 1536);
  g = hires_geometry(512, 768, 2.0, 0, 1000, 8);  // 1000 * 512 // 768 = 666
  EXPECT_EQ(g.upscale_to_x, 666);
  EXPECT_EQ(g.upscale_to_y, 1000);
  EXPECT_EQ(g.width, 664);
  EXPECT_EQ(g.height, 1000);
}

TEST(HiresGeometry, BothResizeSidesCoverThenCropTheLatent) {
  // 512x512 → 1024x768: wider target, so x fits and y overflows: upscale to 1024x1024, crop 256 px = 32 latents.
  HiresGeometry g = hires_geometry(512, 512, 2.0, 1024, 768, 8);
  EXPECT_EQ(g.upscale_to_x, 1024);
  EXPECT_EQ(g.upscale_to_y, 1024);
  EXPECT_EQ(g.truncate_x, 0);
  EXPECT_EQ(g.truncate_y, 32);
  EXPECT_EQ(g.width, 1024);
  EXPECT_EQ(g.height, 768);
  // Taller target: y fits, x overflows.
  g = hires_geometry(512, 512, 2.0, 640, 960, 8);
  EXPECT_EQ(g.upscale_to_x, 960);
  EXPECT_EQ(g.upscale_to_y, 960);
  EXPECT_EQ(g.truncate_x, 40);
  EXPECT_EQ(g.width, 640);
  EXPECT_EQ(g.height, 960);
}

TEST(HiresUpscalers, A1111NamesAndModes) {
  HiresUpscaler u = find_hires_upscaler("latent (bicubic antialiased)");
  EXPECT_EQ(u.name, "Latent (bicubic antialiased)");
  EXPECT_TRUE(u.latent);
  EXPECT_EQ(u.mode, "bicubic");
  EXPECT_TRUE(u.antialias);
  EXPECT_EQ(find_hires_upscaler("Latent").mode, "bilinear");
  EXPECT_FALSE(find_hires_upscaler("Latent").antialias);
  EXPECT_EQ(find_hires_upscaler("Latent (nearest-exact)").mode, "nearest-exact");
  EXPECT_FALSE(find_hires_upscaler("Lanczos").latent);
  EXPECT_THROW(find_hires_upscaler("R-ESRGAN 4x+"), Error);
}

TEST(MaskCrop, BoundingBoxPaddedAndClipped) {
  Image m = gray(100, 80);
  EXPECT_FALSE(mask_crop_region(m, 10).has_value());
  for (int y = 30; y < 40; ++y)
    for (int x = 20; x < 50; ++x) m.pixels[size_t(y) * 100 + x] = 255;
  EXPECT_EQ(*mask_crop_region(m, 0), (CropRegion{20, 30, 50, 40}));
  EXPECT_EQ(*mask_crop_region(m, 8), (CropRegion{12, 22, 58, 48}));
  EXPECT_EQ(*mask_crop_region(m, 35), (CropRegion{0, 0, 85, 75}));
  EXPECT_THROW(mask_crop_region(m, -1), Error);
}

TEST(MaskCrop, ExpandsToTheProcessingAspectRatio) {
  // A 30x10 region for a 64x64 generation becomes 30x30, centred: diff 20 → 10 above, 10 below.
  EXPECT_EQ(expand_crop_region({20, 30, 50, 40}, 64, 64, 100, 80), (CropRegion{20, 20, 50, 50}));
  // A tall region for a wide generation grows in x: 10x40 at 2:1 → 80 wide, diff 70 → 35 left, 35 right.
  EXPECT_EQ(expand_crop_region({45, 10, 55, 50}, 128, 64, 200, 80), (CropRegion{10, 10, 90, 50}));
  // Near the bottom edge it is shifted up; taller than the image it is clipped.
  EXPECT_EQ(expand_crop_region({20, 70, 50, 80}, 64, 64, 100, 80), (CropRegion{20, 50, 50, 80}));
  EXPECT_EQ(expand_crop_region({0, 0, 100, 10}, 64, 64, 100, 80), (CropRegion{0, 0, 100, 80}));
  // Near the left edge it is shifted right.
  EXPECT_EQ(expand_crop_region({0, 0, 10, 40}, 64, 64, 100, 80), (CropRegion{0, 0, 40, 40}));
}

TEST(ResizeModes, FillStretchesEdgesAndCropCentres) {
  // 2x1 image (black, white) to 2x4 "resize and fill": fits as 2x1 in the middle row, edges repeat it.
  Image img{2, 1, 1, {0, 255}};
  Image f = resize_fill(img, 2, 4);
  ASSERT_EQ(f.width, 2);
  ASSERT_EQ(f.height, 4);
  for (int y = 0; y < 4; ++y) {
    EXPECT_EQ(f.at(0, y, 0), 0) << y;
    EXPECT_EQ(f.at(1, y, 0), 255) << y;
  }
  // 4x2 to 2x2 "crop and resize": scaled to 4x2 (no change), centre 2 columns kept.
  Image wide{4, 2, 1, {10, 20, 30, 40, 50, 60, 70, 80}};
  Image c = resize_crop(wide, 2, 2);
  EXPECT_EQ(c.pixels, (std::vector<uint8_t>{20, 30, 60, 70}));
}

TEST(Paste, AlphaBlendsInsideTheRegionOnly) {
  Image base{3, 1, 1, {100, 100, 100}};
  Image patch{2, 1, 1, {200, 200}};
  Image alpha{3, 1, 1, {255, 255, 51}};  // the first pixel is outside the region: kept
  Image o = paste_with_alpha(base, patch, {1, 0, 3, 1}, alpha);
  EXPECT_EQ(o.pixels, (std::vector<uint8_t>{100, 200, 120}));
}

TEST(Fill, KeepsUnmaskedPixelsAndPaintsTheHoleFromThem) {
  Image rgb{8, 8, 3, std::vector<uint8_t>(8 * 8 * 3)};
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x)
      for (int c = 0; c < 3; ++c) rgb.pixels[(size_t(y) * 8 + x) * 3 + c] = uint8_t(c == 0 ? 200 : 40);
  Image m = gray(8, 8);
  for (int y = 2; y < 6; ++y)
    for (int x = 2; x < 6; ++x) {
      m.pixels[size_t(y) * 8 + x] = 255;
      for (int c = 0; c < 3; ++c) rgb.pixels[(size_t(y) * 8 + x) * 3 + c] = 255;  // white hole
    }
  Image f = fill_masked_area(rgb, m);
  EXPECT_EQ(f.at(0, 0, 0), 200);
  EXPECT_EQ(f.at(0, 0, 1), 40);
  // Inside the hole the colour comes from the (uniform) surroundings, not from the white pixels.
  EXPECT_NEAR(f.at(3, 3, 0), 200, 2);
  EXPECT_NEAR(f.at(3, 3, 1), 40, 2);
}

}  // namespace
}  // namespace pigment
