// Images on disk: PNG (read/write, with text chunks such as A1111's "parameters"), JPEG and WebP (read).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace pigment {

struct Image {
  int width = 0, height = 0, channels = 0;  // channels: 1 (gray), 3 (RGB) or 4 (RGBA)
  std::vector<uint8_t> pixels;             // row-major, interleaved
  uint8_t at(int x, int y, int c) const { return pixels[(size_t(y) * width + x) * channels + c]; }
};

// Reads PNG, JPEG or WebP (chosen by the file's first bytes). Throws naming the file on any problem.
Image read_image(const std::string& path);
Image decode_image(const uint8_t* data, size_t size, const std::string& label);
// Text chunks of a PNG file (tEXt, zTXt and iTXt), keyword → text (UTF-8).
std::map<std::string, std::string> read_png_text(const std::string& path);
// The same from PNG bytes in memory (`label` names them in errors).
std::map<std::string, std::string> png_text_chunks(const uint8_t* data, size_t size, const std::string& label);
// Writes an 8-bit PNG with the given text chunks (iTXt where the text is not Latin-1, tEXt otherwise).
// Written to a temporary file and renamed into place: a failure never leaves a partial file.
void write_png(const std::string& path, const Image& img, const std::map<std::string, std::string>& text = {});
// PNG bytes in memory (for the HTTP API).
std::vector<uint8_t> encode_png(const Image& img, const std::map<std::string, std::string>& text = {});

Image to_rgb(const Image& img);   // gray/RGBA → RGB (alpha dropped)
Image to_gray(const Image& img);  // luminance (ITU-R 601-2, as PIL's "L")
// Resizing, blurs and masks live in imaging/ (imaging/resize.h).

}  // namespace pigment
