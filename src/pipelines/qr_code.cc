#include "pipelines/qr_code.h"

#include <qrencode.h>
#include <zbar.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <memory>

#include "core/error.h"

namespace pigment {

QrLevel parse_qr_level(const std::string& name) {
  if (name.size() == 1) {
    switch (std::toupper(static_cast<unsigned char>(name[0]))) {
      case 'L': return QrLevel::L;
      case 'M': return QrLevel::M;
      case 'Q': return QrLevel::Q;
      case 'H': return QrLevel::H;
    }
  }
  fail("QR error correction level '", name, "': expected L, M, Q or H");
}

QrCode encode_qr(const std::string& text, QrLevel level) {
  PIG_CHECK(!text.empty(), "QR code: the text is empty");
  PIG_CHECK(text.find('\0') == std::string::npos, "QR code: the text contains a NUL byte");
  static const QRecLevel levels[] = {QR_ECLEVEL_L, QR_ECLEVEL_M, QR_ECLEVEL_Q, QR_ECLEVEL_H};
  static const char* names = "LMQH";
  errno = 0;
  std::unique_ptr<QRcode, void (*)(QRcode*)> q(
      QRcode_encodeString(text.c_str(), 0, levels[int(level)], QR_MODE_8, 1), QRcode_free);
  if (!q) {
    PIG_CHECK(errno != ERANGE, "QR code: the text (", text.size(), " bytes) is too long for a QR code at error "
              "correction level ", names[int(level)], " (try a lower --qr-level)");
    fail("QR code: libqrencode could not encode the text (errno ", errno, ")");
  }
  QrCode c;
  c.version = q->version;
  c.size = q->width;
  c.dark.resize(size_t(c.size) * c.size);
  for (size_t i = 0; i < c.dark.size(); ++i) c.dark[i] = q->data[i] & 1;  // bit 0: dark module
  return c;
}

Image render_qr(const QrCode& code, int width, int height, int quiet_zone) {
  PIG_CHECK(code.size > 0 && code.dark.size() == size_t(code.size) * code.size, "QR code: empty code");
  PIG_CHECK(quiet_zone >= 0, "QR code: the quiet zone cannot be negative");
  const int modules = code.size + 2 * quiet_zone;
  const int px = std::min(width, height) / modules;  // whole pixels per module
  PIG_CHECK(px >= 1, "QR code: ", width, "x", height, " is too small for a ", code.size, "x", code.size,
            " code with a ", quiet_zone, "-module quiet zone (", modules, " pixels needed)");
  Image img{width, height, 3, std::vector<uint8_t>(size_t(width) * height * 3, 255)};
  const int x0 = (width - code.size * px) / 2, y0 = (height - code.size * px) / 2;
  for (int my = 0; my < code.size; ++my)
    for (int mx = 0; mx < code.size; ++mx) {
      if (!code.at(mx, my)) continue;
      for (int y = y0 + my * px; y < y0 + (my + 1) * px; ++y)
        std::fill_n(img.pixels.begin() + (size_t(y) * width + x0 + mx * px) * 3, size_t(px) * 3, uint8_t(0));
    }
  return img;
}

std::vector<std::string> scan_qr(const Image& img) {
  PIG_CHECK(img.width > 0 && img.height > 0 && img.pixels.size() == size_t(img.width) * img.height * img.channels,
            "QR scan: not a valid image");
  Image gray = img.channels == 1 ? img : to_gray(img);
  std::unique_ptr<zbar::zbar_image_scanner_t, void (*)(zbar::zbar_image_scanner_t*)> scanner(
      zbar::zbar_image_scanner_create(), zbar::zbar_image_scanner_destroy);
  PIG_CHECK(scanner, "QR scan: zbar could not start");
  zbar::zbar_image_scanner_set_config(scanner.get(), zbar::ZBAR_NONE, zbar::ZBAR_CFG_ENABLE, 0);
  zbar::zbar_image_scanner_set_config(scanner.get(), zbar::ZBAR_QRCODE, zbar::ZBAR_CFG_ENABLE, 1);
  zbar::zbar_image_scanner_set_config(scanner.get(), zbar::ZBAR_QRCODE, zbar::ZBAR_CFG_BINARY, 1);
  std::unique_ptr<zbar::zbar_image_t, void (*)(zbar::zbar_image_t*)> zimg(zbar::zbar_image_create(),
                                                                        zbar::zbar_image_destroy);
  zbar::zbar_image_set_format(zimg.get(), zbar_fourcc('Y', '8', '0', '0'));
  zbar::zbar_image_set_size(zimg.get(), unsigned(gray.width), unsigned(gray.height));
  zbar::zbar_image_set_data(zimg.get(), gray.pixels.data(), gray.pixels.size(), nullptr);
  std::vector<std::string> found;
  if (zbar::zbar_scan_image(scanner.get(), zimg.get()) > 0)
    for (const zbar::zbar_symbol_t* s = zbar::zbar_image_first_symbol(zimg.get()); s; s = zbar::zbar_symbol_next(s))
      if (zbar::zbar_symbol_get_type(s) == zbar::ZBAR_QRCODE)
        found.emplace_back(zbar::zbar_symbol_get_data(s), zbar::zbar_symbol_get_data_length(s));
  return found;
}

}  // namespace pigment
