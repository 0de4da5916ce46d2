#include "imaging/grid.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace pigment {
namespace {

Image solid(int w, int h, uint8_t r, uint8_t g, uint8_t b) {
  Image img{w, h, 3, std::vector<uint8_t>(size_t(w) * h * 3)};
  for (size_t i = 0; i < img.pixels.size(); i += 3) img.pixels[i] = r, img.pixels[i + 1] = g, img.pixels[i + 2] = b;
  return img;
}

TEST(Grid, CellsInRowsWithGaps) {
  std::vector<Image> pics = {solid(4, 4, 255, 0, 0), solid(4, 4, 0, 255, 0), solid(4, 4, 0, 0, 255)};
  GridOptions o;
  o.columns = 2;
  o.gap = 1;
  Image g = make_grid(pics, o);
  ASSERT_EQ(g.width, 2 * 4 + 3);
  ASSERT_EQ(g.height, 2 * 4 + 3);
  auto px = [&](int x, int y, int c) { return g.pixels[(size_t(y) * g.width + x) * 3 + c]; };
  EXPECT_EQ(px(0, 0, 0), 255);  // gap: white
  EXPECT_EQ(px(0, 0, 1), 255);
  EXPECT_EQ(px(1, 1, 0), 255);  // first cell red
  EXPECT_EQ(px(1, 1, 1), 0);
  EXPECT_EQ(px(6, 1, 1), 255);  // second cell green
  EXPECT_EQ(px(6, 1, 0), 0);
  EXPECT_EQ(px(1, 6, 2), 255);  // third cell, second row: blue
  EXPECT_EQ(px(1, 6, 0), 0);
  EXPECT_EQ(px(6, 6, 0), 255);  // empty fourth cell: white
  EXPECT_EQ(px(6, 6, 2), 255);
}

TEST(Grid, ScalesToTheCellAndRefusesNonsense) {
  GridOptions o;
  o.cell = 8;
  o.gap = 0;
  Image g = make_grid({solid(2, 2, 10, 20, 30), solid(16, 16, 10, 20, 30)}, o);
  EXPECT_EQ(g.width, 16);
  EXPECT_EQ(g.height, 8);
  for (size_t i = 0; i < g.pixels.size(); i += 3) ASSERT_EQ(g.pixels[i + 2], 30) << i;
  EXPECT_THROW(make_grid({}, o), Error);
  o.columns = -1;
  EXPECT_THROW(make_grid({solid(2, 2, 0, 0, 0)}, o), Error);
}

}  // namespace
}  // namespace pigment
