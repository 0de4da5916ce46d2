#include "imaging/image_features.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <numeric>

#include "core/error.h"

namespace pigment {
namespace {

using Paint = std::function<bool(double x, double y)>;  // x, y in [0, 1): inside the shape?

Image draw(const Paint& inside, uint8_t r, uint8_t g, uint8_t b, int size = 64) {
  Image img{size, size, 3, std::vector<uint8_t>(size_t(size) * size * 3, 255)};
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x)
      if (inside((x + 0.5) / size, (y + 0.5) / size)) {
        uint8_t* p = &img.pixels[(size_t(y) * size + x) * 3];
        p[0] = r, p[1] = g, p[2] = b;
      }
  return img;
}

Paint disc(double cx, double cy, double radius) {
  return [=](double x, double y) { return (x - cx) * (x - cx) + (y - cy) * (y - cy) < radius * radius; };
}
Paint square(double x0, double y0, double x1, double y1) {
  return [=](double x, double y) { return x >= x0 && x < x1 && y >= y0 && y < y1; };
}

const FeatureBlock& block(const std::string& name) {
  for (const auto& b : image_feature_blocks())
    if (b.name == name) return b;
  throw std::runtime_error("no block " + name);
}
double at(const FeatureVector& f, const std::string& name, int k) { return f[size_t(block(name).offset + k)]; }

TEST(ImageFeatures, BlocksCoverTheVector) {
  int offset = 0;
  for (const auto& b : image_feature_blocks()) {
    EXPECT_EQ(b.offset, offset) << b.name;
    offset += b.size;
  }
  EXPECT_EQ(offset, image_feature_dims());
  EXPECT_EQ(image_feature_dims(), 362);
}

TEST(ImageFeatures, WhitePicture) {
  const FeatureVector f = image_features(draw([](double, double) { return false; }, 0, 0, 0));
  ASSERT_EQ(f.size(), size_t(image_feature_dims()));
  for (const std::string name : {"colour", "mask", "gradients"})
    for (int k = 0; k < block(name).size; ++k) EXPECT_EQ(at(f, name, k), 0.0) << name << k;
  for (int k = 0; k < block("thumbnail").size; ++k) EXPECT_EQ(at(f, "thumbnail", k), 1.0);
  EXPECT_EQ(at(f, "global", 0), 0.0);  // no foreground
  EXPECT_EQ(at(f, "global", 1), 1.0);  // its colour reads as white
  EXPECT_EQ(at(f, "global", 5), 0.5);  // centred
}

TEST(ImageFeatures, RedDisc) {
  const FeatureVector f = image_features(draw(disc(0.5, 0.5, 0.3), 255, 0, 0));
  // All foreground in the pure-red colour bin (r = 3, g = 0, b = 0 of 4 bins each).
  EXPECT_DOUBLE_EQ(at(f, "colour", 3 * 16), 1.0);
  EXPECT_NEAR(std::accumulate(f.begin() + block("colour").offset,
                              f.begin() + block("colour").offset + block("colour").size, 0.0),
              1.0, 1e-12);
  // The silhouette: the centre blocks are full, the corners empty; the thumbnail is red there and white there.
  EXPECT_EQ(at(f, "mask", 3 * 8 + 3), 1.0);
  EXPECT_EQ(at(f, "mask", 0), 0.0);
  EXPECT_EQ(at(f, "thumbnail", (3 * 8 + 3) * 3 + 1), 0.0);
  EXPECT_EQ(at(f, "thumbnail", 1), 1.0);
  // Foreground area ≈ π·0.3², centroid in the middle, mean colour red.
  EXPECT_NEAR(at(f, "global", 0), 3.14159265 * 0.09, 0.01);
  EXPECT_NEAR(at(f, "global", 1), 1.0, 1e-12);
  EXPECT_NEAR(at(f, "global", 2), 0.0, 1e-12);
  EXPECT_NEAR(at(f, "global", 5), 0.5, 1e-9);
  EXPECT_NEAR(at(f, "global", 6), 0.5, 1e-9);
  EXPECT_NEAR(at(f, "global", 7), at(f, "global", 8), 1e-9);  // round: the same spread both ways
  // Gradients: a distribution over quadrants × directions; a disc puts a quarter in each quadrant, and in the
  // top-left quadrant the edge normals point up-left (luminance rises outwards from the dark red disc).
  double total = 0, q[4] = {0, 0, 0, 0};
  for (int k = 0; k < 32; ++k) total += at(f, "gradients", k), q[k / 8] += at(f, "gradients", k);
  EXPECT_NEAR(total, 1.0, 1e-12);
  for (double x : q) EXPECT_NEAR(x, 0.25, 0.01);
  // atan2(gy <= 0, gx <= 0) lies from 180° to 270° (y grows downwards): directions 4 to 6 of 8.
  EXPECT_GT(at(f, "gradients", 4) + at(f, "gradients", 5) + at(f, "gradients", 6), 0.99 * q[0]);
  EXPECT_GT(at(f, "gradients", 5), at(f, "gradients", 1));
}

TEST(ImageFeatures, OtherSizesAreResampled) {
  const FeatureVector a = image_features(draw(disc(0.5, 0.5, 0.3), 0, 0, 255, 64));
  const FeatureVector b = image_features(draw(disc(0.5, 0.5, 0.3), 0, 0, 255, 128));
  // Pillow's bilinear filter widens its support when it shrinks (antialiasing): the 128-pixel disc's edge pixels come
  // out partly coloured and count as foreground, so its fraction is up to ~0.03 above the 64-pixel drawing's.
  EXPECT_NEAR(at(a, "global", 0), at(b, "global", 0), 0.035);
  EXPECT_NEAR(at(a, "global", 3), at(b, "global", 3), 0.035);
  Image gray{64, 64, 1, std::vector<uint8_t>(64 * 64, 255)};
  EXPECT_EQ(image_features(gray)[size_t(block("thumbnail").offset)], 1.0);
  EXPECT_THROW(image_features(Image{}), Error);
}

std::vector<Image> shapes() {
  return {draw(disc(0.5, 0.5, 0.3), 220, 30, 30),        draw(disc(0.5, 0.5, 0.3), 30, 30, 220),
          draw(square(0.2, 0.2, 0.8, 0.8), 220, 30, 30),  draw(square(0.3, 0.1, 0.7, 0.9), 40, 180, 40),
          draw(disc(0.3, 0.3, 0.15), 250, 200, 0),        draw(square(0.1, 0.4, 0.9, 0.6), 90, 60, 30)};
}

TEST(ImageFeatures, StandardisedReferenceHasZeroMeanAndEqualBlocks) {
  std::vector<FeatureVector> raw;
  for (const auto& img : shapes()) raw.push_back(image_features(img));
  const FeatureStandardizer st = FeatureStandardizer::fit(raw);
  const auto z = st.apply(raw);
  for (size_t k = 0; k < raw[0].size(); ++k) {
    double m = 0;
    for (const auto& v : z) m += v[k];
    EXPECT_NEAR(m / double(z.size()), 0.0, 1e-9) << k;
  }
  // Each block's dimensions that vary add up to a total variance of (varying dims)/(block size) ≤ 1; a dimension
  // that never varies (e.g. the thumbnail's white corners) is scaled by 0.
  for (const auto& b : image_feature_blocks()) {
    double var = 0;
    int varying = 0;
    for (int k = b.offset; k < b.offset + b.size; ++k) {
      double v = 0;
      for (const auto& x : z) v += x[size_t(k)] * x[size_t(k)];
      var += v / double(z.size());
      varying += st.scale()[size_t(k)] != 0;
    }
    EXPECT_NEAR(var, double(varying) / b.size, 1e-9) << b.name;
  }
  EXPECT_EQ(st.scale()[size_t(block("thumbnail").offset)], 0.0);  // the top-left corner is white in every shape
  EXPECT_THROW(FeatureStandardizer::fit({raw[0]}), Error);
  EXPECT_THROW(st.apply(FeatureVector(3)), Error);
  EXPECT_THROW(FeatureStandardizer::fit({{1.0, 2.0}, {2.0, 1.0}}), Error);  // the image blocks do not fit
  EXPECT_NO_THROW(FeatureStandardizer::fit({{1.0, 2.0}, {2.0, 1.0}}, {}));
}

TEST(ImageFeatures, RetrievalFindsTheNearestPicture) {
  std::vector<FeatureVector> raw;
  for (const auto& img : shapes()) raw.push_back(image_features(img));
  const FeatureStandardizer st = FeatureStandardizer::fit(raw);
  const auto gallery = st.apply(raw);
  // Slightly changed versions of each shape (moved by 2 pixels, colour off by 20) still find their original first.
  const std::vector<Image> queries = {
      draw(disc(0.53, 0.5, 0.3), 200, 40, 40),        draw(disc(0.5, 0.47, 0.28), 40, 40, 200),
      draw(square(0.22, 0.2, 0.82, 0.8), 200, 40, 30), draw(square(0.3, 0.12, 0.7, 0.92), 50, 160, 50),
      draw(disc(0.32, 0.3, 0.15), 240, 210, 20),      draw(square(0.1, 0.42, 0.9, 0.62), 100, 70, 40)};
  for (size_t i = 0; i < queries.size(); ++i) {
    const Retrieval r = retrieve(st.apply(image_features(queries[i])), gallery, i);
    EXPECT_EQ(r.rank, 0) << i;
    EXPECT_EQ(r.nearest, i) << i;
  }
  // Asked for the blue disc, a red disc ranks it behind the red disc (and perhaps the red square).
  const Retrieval wrong = retrieve(gallery[0], gallery, 1);
  EXPECT_GE(wrong.rank, 1);
  EXPECT_EQ(wrong.nearest, 0u);
  // Ties count against the target: with a duplicate in the gallery, the exact picture is rank 1, not top-1.
  auto dup = gallery;
  dup.push_back(gallery[2]);
  EXPECT_EQ(retrieve(gallery[2], dup, 2).rank, 1);
  EXPECT_EQ(retrieve(gallery[2], dup, 2).nearest, 2u);
  EXPECT_THROW(retrieve(gallery[0], gallery, 99), Error);
}

}  // namespace
}  // namespace pigment
