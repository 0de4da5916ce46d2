#include "imaging/control_preprocess.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace pigment {
namespace {

Image filled(int w, int h, int channels, uint8_t v) {
  return Image{w, h, channels, std::vector<uint8_t>(size_t(w) * h * channels, v)};
}

// A white filled rectangle [x0, x1) x [y0, y1) on black.
Image rectangle(int w, int h, int x0, int y0, int x1, int y1) {
  Image img = filled(w, h, 3, 0);
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x)
      for (int c = 0; c < 3; ++c) img.pixels[(size_t(y) * w + x) * 3 + c] = 255;
  return img;
}

TEST(ControlPreprocess, CannyOfAFilledRectangleIsItsBorder) {
  const int W = 48, H = 40, x0 = 10, y0 = 8, x1 = 40, y1 = 30;
  Image img = rectangle(W, H, x0, y0, x1, y1);
  Image edges = canny_edges(img);
  ASSERT_EQ(edges.width, W);
  ASSERT_EQ(edges.height, H);
  ASSERT_EQ(edges.channels, 3);
  auto edge = [&](int x, int y) { return edges.at(x, y, 0) == 255; };
  auto inside = [&](int x, int y) { return x >= x0 && x < x1 && y >= y0 && y < y1; };
  // The border runs between pixels; a one-pixel-thin edge marks it on one side or the other (cv::Canny's
  // non-maximum suppression keeps the first of two equal maxima). So: every pair of neighbours that straddles the
  // border has exactly one edge pixel, and every edge pixel touches the border.
  int count = 0;
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      uint8_t v = edges.at(x, y, 0);
      ASSERT_TRUE(v == 0 || v == 255);
      ASSERT_EQ(edges.at(x, y, 1), v);
      ASSERT_EQ(edges.at(x, y, 2), v);
      count += v == 255;
      bool touches = false;
      for (auto [dx, dy] : {std::pair{1, 0}, {-1, 0}, {0, 1}, {0, -1}}) {
        int u = x + dx, w = y + dy;
        if (u < 0 || u >= W || w < 0 || w >= H || inside(u, w) == inside(x, y)) continue;
        touches = true;
        EXPECT_NE(edge(x, y), edge(u, w)) << "border between " << x << "," << y << " and " << u << "," << w;
      }
      if (v == 255) {
        EXPECT_TRUE(touches) << "edge off the border at " << x << "," << y;
      }
    }
  // One closed outline: a pixel per unit of perimeter, less the four corners.
  EXPECT_EQ(count, 2 * (x1 - x0) + 2 * (y1 - y0) - 4);
}

TEST(ControlPreprocess, CannyThresholdsDecideWhichEdgesSurvive) {
  // A step of 20 gray levels: its Sobel response (4 · 20 = 80) is below the default high threshold of 200.
  Image img = filled(32, 32, 3, 100);
  for (int y = 0; y < 32; ++y)
    for (int x = 16; x < 32; ++x)
      for (int c = 0; c < 3; ++c) img.pixels[(size_t(y) * 32 + x) * 3 + c] = 120;
  auto edge_pixels = [](const Image& e) {
    int n = 0;
    for (size_t i = 0; i < e.pixels.size(); i += 3) n += e.pixels[i] == 255;
    return n;
  };
  EXPECT_EQ(edge_pixels(canny_edges(img)), 0);
  EXPECT_EQ(edge_pixels(canny_edges(img, 30, 60)), 32);  // one column
  EXPECT_THROW(canny_edges(img, 200, 100), Error);
  EXPECT_THROW(canny_edges(img, -1, 100), Error);
}

TEST(ControlPreprocess, ResizeModesAsA1111) {
  // A 40x20 image, left half black and right half white, fitted to 20x20.
  Image img = filled(40, 20, 3, 0);
  for (int y = 0; y < 20; ++y)
    for (int x = 20; x < 40; ++x)
      for (int c = 0; c < 3; ++c) img.pixels[(size_t(y) * 40 + x) * 3 + c] = 255;
  Image just = fit_control_image(img, 20, 20, ControlResize::JustResize);
  Image crop = fit_control_image(img, 20, 20, ControlResize::CropAndResize);
  Image fill = fit_control_image(img, 20, 20, ControlResize::ResizeAndFill);
  for (const Image* i : {&just, &crop, &fill}) {
    ASSERT_EQ(i->width, 20);
    ASSERT_EQ(i->height, 20);
    ASSERT_EQ(i->channels, 3);
  }
  // Just Resize squeezes: left half black, right half white.
  EXPECT_EQ(just.at(2, 10, 0), 0);
  EXPECT_EQ(just.at(17, 10, 0), 255);
  // Crop and Resize keeps the scale (1:1 here) and takes the centre 20 columns: x 10..29 of the original.
  for (int x = 0; x < 20; ++x) EXPECT_EQ(crop.at(x, 5, 0), x < 10 ? 0 : 255) << x;
  // Resize and Fill halves the image into rows 5..14 and pads black above and below.
  EXPECT_EQ(fill.at(15, 2, 0), 0);
  EXPECT_EQ(fill.at(15, 10, 0), 255);
  EXPECT_EQ(fill.at(15, 17, 0), 0);
  EXPECT_EQ(fill.at(2, 10, 0), 0);

  EXPECT_EQ(parse_control_resize("Crop and Resize"), ControlResize::CropAndResize);
  EXPECT_EQ(parse_control_resize("just-resize"), ControlResize::JustResize);
  EXPECT_EQ(parse_control_resize("fill"), ControlResize::ResizeAndFill);
  EXPECT_THROW(parse_control_resize("zoom"), Error);
}

TEST(ControlPreprocess, PrepareFitsThenAppliesThePreprocessor) {
  Image img = rectangle(96, 80, 20, 16, 80, 60);  // the rectangle test, at twice the size
  ControlPreprocess none, canny;
  canny.name = "canny";
  Image map = prepare_control_image(img, 48, 40, none, ControlResize::JustResize);
  EXPECT_EQ(map.width, 48);
  EXPECT_EQ(map.channels, 3);
  EXPECT_EQ(map.at(25, 20, 0), 255);
  Image edges = prepare_control_image(img, 48, 40, canny, ControlResize::JustResize);
  EXPECT_EQ(edges.at(25, 20, 0), 0);   // inside: no edge
  EXPECT_TRUE(edges.at(9, 20, 0) == 255 || edges.at(10, 20, 0) == 255);  // the left side of the halved rectangle
  Image gray = filled(8, 8, 1, 7);
  EXPECT_EQ(prepare_control_image(gray, 8, 8, none).channels, 3);
  ControlPreprocess bad;
  bad.name = "depth";
  EXPECT_THROW(prepare_control_image(img, 48, 40, bad), Error);
}

}  // namespace
}  // namespace pigment
