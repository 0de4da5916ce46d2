#include "io/image.h"

#include <gtest/gtest.h>
#include <jpeglib.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace pigment {
namespace {

std::string tmp(const std::string& name) { return (std::filesystem::temp_directory_path() / name).string(); }

Image gradient(int w, int h, int ch) {
  Image img{w, h, ch, std::vector<uint8_t>(size_t(w) * h * ch)};
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = uint8_t(i * 7 % 256);
  return img;
}

TEST(Image, PngRoundTripWithText) {
  Image img = gradient(13, 7, 3);
  std::string path = tmp("pigment_image_test.png");
  write_png(path, img, {{"parameters", "a cat\nSteps: 20, Seed: 1"}, {"note", "café ✓"}});
  Image back = read_image(path);
  EXPECT_EQ(back.width, 13);
  EXPECT_EQ(back.height, 7);
  EXPECT_EQ(back.channels, 3);
  EXPECT_EQ(back.pixels, img.pixels);
  auto text = read_png_text(path);
  EXPECT_EQ(text.at("parameters"), "a cat\nSteps: 20, Seed: 1");
  EXPECT_EQ(text.at("note"), "café ✓");
  std::filesystem::remove(path);
}

TEST(Image, GrayAndAlpha) {
  for (int ch : {1, 4}) {
    std::string path = tmp("pigment_image_test_ch.png");
    Image img = gradient(5, 4, ch);
    write_png(path, img);
    Image back = read_image(path);
    EXPECT_EQ(back.channels, ch);
    EXPECT_EQ(back.pixels, img.pixels);
    EXPECT_EQ(to_rgb(back).channels, 3);
    EXPECT_EQ(to_gray(back).channels, 1);
    std::filesystem::remove(path);
  }
}

TEST(Image, JpegDecodes) {
  // Encode a small JPEG with libjpeg, then read it back through pigment.
  Image img = gradient(16, 8, 3);
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &buf, &size);
  c.image_width = 16;
  c.image_height = 8;
  c.input_components = 3;
  c.in_color_space = JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < 8) {
    JSAMPROW row = img.pixels.data() + c.next_scanline * 16 * 3;
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  Image back = decode_image(buf, size, "<jpeg>");
  free(buf);
  EXPECT_EQ(back.width, 16);
  EXPECT_EQ(back.height, 8);
  EXPECT_EQ(back.channels, 3);
}

TEST(Image, CorruptFilesAreRefused) {
  std::string path = tmp("pigment_image_bad.png");
  Image img = gradient(8, 8, 3);
  write_png(path, img);
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  bytes.resize(bytes.size() / 2);
  std::ofstream(path, std::ios::binary) << bytes;
  EXPECT_THROW(read_image(path), Error);
  std::ofstream(path, std::ios::binary) << "hello";
  EXPECT_THROW(read_image(path), Error);
  const uint8_t bad_jpeg[] = {0xff, 0xd8, 0xff, 0x00, 0x12};
  EXPECT_THROW(decode_image(bad_jpeg, sizeof bad_jpeg, "<jpeg>"), Error);
  EXPECT_THROW(read_image(tmp("pigment_no_such_file.png")), Error);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace pigment
