#include "pipelines/qr_code.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace pigment {
namespace {

TEST(QrCode, RenderedCodeScansBackToItsText) {
  for (const std::string text : {"https://example.com/pigment", "HELLO 123", "grüße, ünïcode ✓"}) {
    for (QrLevel level : {QrLevel::L, QrLevel::H}) {
      QrCode code = encode_qr(text, level);
      Image img = render_qr(code, 512, 384);
      ASSERT_EQ(img.width, 512);
      ASSERT_EQ(img.height, 384);
      std::vector<std::string> found = scan_qr(img);
      ASSERT_EQ(found.size(), 1u) << text;
      EXPECT_EQ(found[0], text);
    }
  }
}

TEST(QrCode, HigherErrorCorrectionNeedsALargerCode) {
  std::string text(60, 'x');
  EXPECT_GT(encode_qr(text, QrLevel::H).size, encode_qr(text, QrLevel::L).size);
  QrCode c = encode_qr("A", QrLevel::L);
  EXPECT_EQ(c.version, 1);
  EXPECT_EQ(c.size, 21);
}

TEST(QrCode, RenderHasAQuietZoneAndWholePixelModules) {
  QrCode code = encode_qr("quiet", QrLevel::H);
  const int modules = code.size + 8, px = 256 / modules;
  Image img = render_qr(code, 256, 256);
  const int x0 = (256 - code.size * px) / 2;
  ASSERT_GE(x0, 4 * px);
  for (int y = 0; y < 256; ++y)
    for (int x = 0; x < 256; ++x) {
      bool in_code = x >= x0 && x < x0 + code.size * px && y >= x0 && y < x0 + code.size * px;
      uint8_t expect = in_code && code.at((x - x0) / px, (y - x0) / px) ? 0 : 255;
      ASSERT_EQ(img.at(x, y, 0), expect) << x << "," << y;
    }
  EXPECT_THROW(render_qr(code, code.size + 7, 300), Error);
}

TEST(QrCode, NoCodeInABlankOrNoisyImage) {
  Image blank{64, 64, 3, std::vector<uint8_t>(64 * 64 * 3, 255)};
  EXPECT_TRUE(scan_qr(blank).empty());
  Image noise{64, 64, 1, std::vector<uint8_t>(64 * 64)};
  uint32_t s = 1;
  for (auto& p : noise.pixels) p = uint8_t((s = s * 1664525u + 1013904223u) >> 24);
  EXPECT_TRUE(scan_qr(noise).empty());
}

TEST(QrCode, Errors) {
  EXPECT_THROW(encode_qr(""), Error);
  EXPECT_THROW(encode_qr(std::string(3000, 'a'), QrLevel::H), Error);  // H holds at most 1273 bytes
  EXPECT_NO_THROW(encode_qr(std::string(1273, 'a'), QrLevel::H));
  EXPECT_EQ(parse_qr_level("h"), QrLevel::H);
  EXPECT_THROW(parse_qr_level("X"), Error);
}

}  // namespace
}  // namespace pigment
