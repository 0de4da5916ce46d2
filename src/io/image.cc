#include "io/image.h"

#include <jpeglib.h>
#include <png.h>
#include <webp/decode.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include "core/error.h"

namespace pigment {

namespace {

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  PIG_CHECK(f, path, ": cannot open image");
  std::vector<uint8_t> d((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return d;
}

constexpr int64_t kMaxPixels = 1ll << 28;  // 268M pixels: far beyond any image pigment can process

// ---- PNG ----
struct PngReader {
  const uint8_t* data;
  size_t size, pos;
};

void png_read_mem(png_structp png, png_bytep out, png_size_t n) {
  auto* r = static_cast<PngReader*>(png_get_io_ptr(png));
  if (r->pos + n > r->size) png_error(png, "unexpected end of file");
  std::memcpy(out, r->data + r->pos, n);
  r->pos += n;
}

struct PngMessage {
  std::string text;
};

void png_on_error(png_structp png, png_const_charp msg) {
  auto* m = static_cast<PngMessage*>(png_get_error_ptr(png));
  m->text = msg;
  png_longjmp(png, 1);
}
void png_on_warning(png_structp, png_const_charp) {}

Image decode_png(const uint8_t* data, size_t size, const std::string& label,
                 std::map<std::string, std::string>* text_out) {
  PngMessage msg;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &msg, png_on_error, png_on_warning);
  PIG_CHECK(png, label, ": cannot initialise the PNG reader");
  png_infop info = png_create_info_struct(png);
  PngReader reader{data, size, 0};
  Image img;
  std::vector<png_bytep> rows;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    fail(label, ": invalid PNG: ", msg.text);
  }
  png_set_read_fn(png, &reader, png_read_mem);
  png_set_user_limits(png, 1 << 20, 1 << 20);
  png_read_info(png, info);
  png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  if (int64_t(w) * h > kMaxPixels) png_error(png, "image too large");
  int color = png_get_color_type(png, info);
  png_set_strip_16(png);
  png_set_packing(png);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  png_read_update_info(png, info);
  img.width = int(w);
  img.height = int(h);
  img.channels = png_get_channels(png, info);
  if (img.channels == 2) {  // gray + alpha → RGBA
    png_set_gray_to_rgb(png);
    png_read_update_info(png, info);
    img.channels = png_get_channels(png, info);
  }
  img.pixels.resize(size_t(w) * h * img.channels);
  rows.resize(h);
  for (png_uint_32 y = 0; y < h; ++y) rows[y] = img.pixels.data() + size_t(y) * w * img.channels;
  png_read_image(png, rows.data());
  png_read_end(png, info);
  if (text_out) {
    png_textp texts = nullptr;
    int n = 0;
    png_get_text(png, info, &texts, &n);
    for (int i = 0; i < n; ++i)
      (*text_out)[texts[i].key] = std::string(texts[i].text, texts[i].text_length ? texts[i].text_length
                                                                                   : texts[i].itxt_length);
  }
  png_destroy_read_struct(&png, &info, nullptr);
  return img;
}

// ---- JPEG ----
struct JpegError {
  jpeg_error_mgr mgr;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_on_error(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  longjmp(e->jump, 1);
}

Image decode_jpeg(const uint8_t* data, size_t size, const std::string& label) {
  jpeg_decompress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_on_error;
  err.message[0] = 0;
  Image img;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    fail(label, ": invalid JPEG: ", err.message);
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, (unsigned long)size);
  jpeg_read_header(&cinfo, TRUE);
  cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  if (int64_t(cinfo.output_width) * cinfo.output_height > kMaxPixels) {
    std::strcpy(err.message, "image too large");
    longjmp(err.jump, 1);
  }
  img.width = int(cinfo.output_width);
  img.height = int(cinfo.output_height);
  img.channels = int(cinfo.output_components);
  img.pixels.resize(size_t(img.width) * img.height * img.channels);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = img.pixels.data() + size_t(cinfo.output_scanline) * img.width * img.channels;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return img;
}

Image decode_webp(const uint8_t* data, size_t size, const std::string& label) {
  WebPBitstreamFeatures f;
  PIG_CHECK(WebPGetFeatures(data, size, &f) == VP8_STATUS_OK, label, ": invalid WebP");
  PIG_CHECK(int64_t(f.width) * f.height <= kMaxPixels, label, ": image too large");
  Image img;
  img.width = f.width;
  img.height = f.height;
  img.channels = f.has_alpha ? 4 : 3;
  img.pixels.resize(size_t(img.width) * img.height * img.channels);
  uint8_t* ok = f.has_alpha ? WebPDecodeRGBAInto(data, size, img.pixels.data(), img.pixels.size(), img.width * 4)
                            : WebPDecodeRGBInto(data, size, img.pixels.data(), img.pixels.size(), img.width * 3);
  PIG_CHECK(ok, label, ": invalid WebP data");
  return img;
}

void png_write_vec(png_structp png, png_bytep d, png_size_t n) {
  auto* v = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(png));
  v->insert(v->end(), d, d + n);
}
void png_flush_noop(png_structp) {}

bool is_latin1(const std::string& s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;  // conservative: any non-ASCII byte goes to iTXt (UTF-8)
  return true;
}

}  // namespace

Image decode_image(const uint8_t* data, size_t size, const std::string& label) {
  static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  if (size >= 8 && std::memcmp(data, png_sig, 8) == 0) return decode_png(data, size, label, nullptr);
  if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) return decode_jpeg(data, size, label);
  if (size >= 12 && std::memcmp(data, "RIFF", 4) == 0 && std::memcmp(data + 8, "WEBP", 4) == 0)
    return decode_webp(data, size, label);
  fail(label, ": not a PNG, JPEG or WebP image");
}

Image read_image(const std::string& path) {
  auto d = read_file(path);
  return decode_image(d.data(), d.size(), path);
}

std::map<std::string, std::string> read_png_text(const std::string& path) {
  auto d = read_file(path);
  return png_text_chunks(d.data(), d.size(), path);
}

std::map<std::string, std::string> png_text_chunks(const uint8_t* data, size_t size, const std::string& label) {
  std::map<std::string, std::string> text;
  static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  PIG_CHECK(size >= 8 && std::memcmp(data, png_sig, 8) == 0, label, ": not a PNG file");
  decode_png(data, size, label, &text);
  return text;
}

std::vector<uint8_t> encode_png(const Image& img, const std::map<std::string, std::string>& text) {
  PIG_CHECK(img.width > 0 && img.height > 0 && (img.channels == 1 || img.channels == 3 || img.channels == 4) &&
                img.pixels.size() == size_t(img.width) * img.height * img.channels,
            "encode_png: malformed image");
  std::vector<uint8_t> out;
  PngMessage msg;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &msg, png_on_error, png_on_warning);
  png_infop info = png_create_info_struct(png);
  std::vector<png_text> chunks;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    fail("PNG encoding failed: ", msg.text);
  }
  png_set_write_fn(png, &out, png_write_vec, png_flush_noop);
  int color = img.channels == 1 ? PNG_COLOR_TYPE_GRAY : img.channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGBA;
  png_set_IHDR(png, info, img.width, img.height, 8, color, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  for (const auto& [k, v] : text) {
    png_text t{};
    t.key = const_cast<char*>(k.c_str());
    t.text = const_cast<char*>(v.c_str());
    if (is_latin1(v)) {
      t.compression = PNG_TEXT_COMPRESSION_NONE;
      t.text_length = v.size();
    } else {
      t.compression = PNG_ITXT_COMPRESSION_NONE;
      t.itxt_length = v.size();
      t.lang = const_cast<char*>("");
      t.lang_key = const_cast<char*>("");
    }
    chunks.push_back(t);
  }
  if (!chunks.empty()) png_set_text(png, info, chunks.data(), int(chunks.size()));
  png_write_info(png, info);
  for (int y = 0; y < img.height; ++y)
    png_write_row(png, const_cast<png_bytep>(img.pixels.data() + size_t(y) * img.width * img.channels));
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  return out;
}

void write_png(const std::string& path, const Image& img, const std::map<std::string, std::string>& text) {
  auto bytes = encode_png(img, text);
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  PIG_CHECK(f, path, ": cannot write: ", std::strerror(errno));
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  ok = std::fclose(f) == 0 && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail(path, ": write failed: ", std::strerror(errno));
  }
}

Image to_rgb(const Image& img) {
  if (img.channels == 3) return img;
  Image o{img.width, img.height, 3, {}};
  o.pixels.resize(size_t(img.width) * img.height * 3);
  for (size_t i = 0; i < size_t(img.width) * img.height; ++i)
    for (int c = 0; c < 3; ++c) o.pixels[i * 3 + c] = img.pixels[i * img.channels + (img.channels == 1 ? 0 : c)];
  return o;
}

Image to_gray(const Image& img) {
  if (img.channels == 1) return img;
  Image o{img.width, img.height, 1, {}};
  o.pixels.resize(size_t(img.width) * img.height);
  for (size_t i = 0; i < o.pixels.size(); ++i) {
    const uint8_t* p = &img.pixels[i * img.channels];
    // PIL: L = R * 299/1000 + G * 587/1000 + B * 114/1000, rounded.
    o.pixels[i] = uint8_t((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
  }
  return o;
}

}  // namespace pigment
