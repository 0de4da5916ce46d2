// pigment's resizer, blurs, A1111 resize modes and "fill" against Pillow's own outputs, bit for bit. The references
// are committed PNGs written by tests/data/pil_resize/make.py (Debian's python3-pil); cases.txt lists them.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "imaging/a1111_geometry.h"
#include "imaging/blur.h"
#include "imaging/resize.h"
#include "io/image.h"

namespace pigment {
namespace {

std::filesystem::path data_dir() {
  const char* src = std::getenv("PIGMENT_SOURCE_DIR");
  return std::filesystem::path(src ? src : ".") / "tests/data/pil_resize";
}

ImageFilter filter_named(const std::string& n) {
  if (n == "nearest") return ImageFilter::Nearest;
  if (n == "box") return ImageFilter::Box;
  if (n == "bilinear") return ImageFilter::Bilinear;
  if (n == "hamming") return ImageFilter::Hamming;
  if (n == "bicubic") return ImageFilter::Bicubic;
  if (n == "lanczos") return ImageFilter::Lanczos;
  ADD_FAILURE() << "unknown filter " << n;
  return ImageFilter::Nearest;
}

// The number of differing bytes (and the first one) between two images of one shape.
::testing::AssertionResult same_image(const Image& got, const Image& want) {
  if (got.width != want.width || got.height != want.height || got.channels != want.channels)
    return ::testing::AssertionFailure() << "shape " << got.width << "x" << got.height << "x" << got.channels
                                         << " vs " << want.width << "x" << want.height << "x" << want.channels;
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < got.pixels.size(); ++i)
    if (got.pixels[i] != want.pixels[i] && bad++ == 0) first = i;
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << got.pixels.size() << " bytes differ; first at byte "
                                       << first << ": " << int(got.pixels[first]) << " vs Pillow's "
                                       << int(want.pixels[first]);
}

struct Counts {
  int resize = 0, blur = 0, a1111 = 0, fill = 0;
};

Counts run_cases(const std::string& only) {
  Counts n;
  const auto dir = data_dir();
  std::ifstream in(dir / "cases.txt");
  EXPECT_TRUE(in.good()) << "missing " << (dir / "cases.txt");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream s(line);
    std::string kind, input;
    s >> kind >> input;
    if (kind != only) continue;
    const Image src = read_image((dir / input).string());
    std::string out;
    Image got;
    if (kind == "resize") {
      std::string f;
      int w = 0, h = 0;
      float x0, y0, x1, y1;
      s >> f >> w >> h >> x0 >> y0 >> x1 >> y1 >> out;
      got = resize_image(src, w, h, filter_named(f), {x0, y0, x1, y1});
      ++n.resize;
    } else if (kind == "blur") {
      float radius = 0;
      s >> radius >> out;
      got = pil_gaussian_blur(src, radius);
      ++n.blur;
    } else if (kind == "a1111") {
      int mode = 0, w = 0, h = 0;
      s >> mode >> w >> h >> out;
      got = resize_a1111(src, ResizeMode(mode), w, h);
      ++n.a1111;
    } else if (kind == "fill") {
      std::string mask;
      s >> mask >> out;
      got = fill_masked_area(src, read_image((dir / mask).string()));
      ++n.fill;
    }
    EXPECT_TRUE(same_image(got, read_image((dir / out).string()))) << line;
  }
  return n;
}

TEST(PilReference, ResizeMatchesPillowBitForBit) {
  // 6 filters × 11 sizes over RGB, gray and RGBA (premultiplied) inputs, plus 8 boxes.
  EXPECT_EQ(run_cases("resize").resize, 74);
}

TEST(PilReference, GaussianBlurMatchesPillowBitForBit) { EXPECT_EQ(run_cases("blur").blur, 15); }

TEST(PilReference, A1111ResizeModesMatchItsPillowCalls) { EXPECT_EQ(run_cases("a1111").a1111, 18); }

TEST(PilReference, FillMaskedContentMatchesA1111) { EXPECT_EQ(run_cases("fill").fill, 1); }

}  // namespace
}  // namespace pigment
