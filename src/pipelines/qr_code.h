// QR codes for QR-code ControlNets ("pigment qr"): encode text with libqrencode, render the modules as a control
// image with a quiet zone, and read codes back from an image with libzbar.
#pragma once
#include <string>
#include <vector>

#include "io/image.h"

namespace pigment {

enum class QrLevel { L, M, Q, H };  // error correction: ~7%, 15%, 25%, 30% of the code words recoverable
QrLevel parse_qr_level(const std::string& name);  // "L", "M", "Q", "H" (either case)

struct QrCode {
  int version = 0, size = 0;   // size x size modules
  std::vector<uint8_t> dark;   // row-major, 1 = dark module
  bool at(int x, int y) const { return dark[size_t(y) * size + x] != 0; }
};

// The smallest QR code holding `text` (bytes as given, UTF-8 kept as is). One-line errors for empty text and for
// text longer than a version-40 code holds at `level`.
QrCode encode_qr(const std::string& text, QrLevel level = QrLevel::H);

// The code drawn black on white, centred in a width x height RGB image, each module a square of whole pixels, with
// at least `quiet_zone` modules of white around it (the standard asks for 4). Fails when the image is too small
// for one pixel per module.
Image render_qr(const QrCode& code, int width, int height, int quiet_zone = 4);

// The texts of every QR code zbar finds in the image (exact bytes); empty when none scans.
std::vector<std::string> scan_qr(const Image& img);

}  // namespace pigment
