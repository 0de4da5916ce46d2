#include "imaging/control_preprocess.h"

#include <algorithm>
#include <cmath>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "core/error.h"
#include "imaging/a1111_geometry.h"
#include "imaging/resize.h"

namespace pigment {

namespace {

int cv_type(int channels) { return CV_8UC(channels); }

// A cv::Mat header over the image's pixels (no copy) and back.
cv::Mat as_mat(const Image& img) {
  return cv::Mat(img.height, img.width, cv_type(img.channels), const_cast<uint8_t*>(img.pixels.data()));
}
Image from_mat(const cv::Mat& m) {
  Image out{m.cols, m.rows, m.channels(), {}};
  cv::Mat c = m.isContinuous() ? m : m.clone();
  out.pixels.assign(c.data, c.data + size_t(c.rows) * c.cols * c.channels());
  return out;
}

void check_image(const Image& img, const char* what) {
  PIG_CHECK(img.width > 0 && img.height > 0 && (img.channels == 1 || img.channels == 3 || img.channels == 4) &&
                img.pixels.size() == size_t(img.width) * img.height * img.channels,
            what, ": not a valid image (", img.width, "x", img.height, "x", img.channels, ")");
}

Image lanczos(const Image& img, int w, int h) { return resize_image(img, w, h, ImageFilter::Lanczos); }

}  // namespace

ControlResize parse_control_resize(const std::string& name) {
  std::string n;
  for (char c : name) n += c == ' ' || c == '_' ? '-' : char(std::tolower(static_cast<unsigned char>(c)));
  if (n == "just-resize" || n == "just" || n == "stretch") return ControlResize::JustResize;
  if (n == "crop-and-resize" || n == "crop") return ControlResize::CropAndResize;
  if (n == "resize-and-fill" || n == "fill") return ControlResize::ResizeAndFill;
  fail("control resize mode '", name, "': expected just-resize, crop or fill (A1111: Just Resize, Crop and Resize, "
       "Resize and Fill)");
}

Image fit_control_image(const Image& img, int width, int height, ControlResize mode) {
  check_image(img, "control image");
  PIG_CHECK(width > 0 && height > 0, "control image: invalid target size ", width, "x", height);
  if (mode == ControlResize::JustResize) return lanczos(img, width, height);
  double kw = double(width) / img.width, kh = double(height) / img.height;
  double k = mode == ControlResize::CropAndResize ? std::max(kw, kh) : std::min(kw, kh);
  // The scaled size, never below the target on the covering side (crop) nor above it on the fitting side (fill).
  int sw = int(std::lround(img.width * k)), sh = int(std::lround(img.height * k));
  if (mode == ControlResize::CropAndResize) {
    sw = std::max(sw, width);
    sh = std::max(sh, height);
    const Image s = lanczos(img, sw, sh);
    return crop_image(s, CropRegion{(sw - width) / 2, (sh - height) / 2, (sw - width) / 2 + width,
                                    (sh - height) / 2 + height});
  }
  sw = std::clamp(sw, 1, width);
  sh = std::clamp(sh, 1, height);
  const Image s = lanczos(img, sw, sh);
  Image out{width, height, img.channels, std::vector<uint8_t>(size_t(width) * height * img.channels, 0)};
  const int ox = (width - sw) / 2, oy = (height - sh) / 2;
  for (int y = 0; y < sh; ++y)
    for (int x = 0; x < sw; ++x)
      for (int c = 0; c < img.channels; ++c)
        out.pixels[(size_t(y + oy) * width + x + ox) * img.channels + c] = s.at(x, y, c);
  return out;
}

Image canny_edges(const Image& img, double low, double high) {
  check_image(img, "canny");
  PIG_CHECK(std::isfinite(low) && std::isfinite(high) && low >= 0 && high >= 0 && low <= high,
            "canny thresholds must satisfy 0 <= low <= high (got ", low, ", ", high, ")");
  Image src = img.channels == 4 ? to_rgb(img) : img;
  cv::Mat edges;
  cv::Canny(as_mat(src), edges, low, high);  // aperture 3, L1 gradient: A1111's call
  cv::Mat rgb;
  cv::cvtColor(edges, rgb, cv::COLOR_GRAY2RGB);
  return from_mat(rgb);
}

const std::vector<std::string>& control_preprocessor_names() {
  static const std::vector<std::string> names{"none", "canny"};
  return names;
}

Image prepare_control_image(const Image& img, int width, int height, const ControlPreprocess& pre,
                            ControlResize mode) {
  PIG_CHECK(pre.name == "none" || pre.name == "canny", "unknown control preprocessor '", pre.name,
            "' (known: none, canny)");
  Image fitted = fit_control_image(img, width, height, mode);
  if (pre.name == "canny") return canny_edges(fitted, pre.low, pre.high);
  return to_rgb(fitted);
}

}  // namespace pigment
