#include "pipelines/control_preprocess.h"

#include <algorithm>
#include <cmath>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "core/error.h"

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

cv::Mat resized(const cv::Mat& m, int w, int h) {
  if (m.cols == w && m.rows == h) return m.clone();
  int interp = (w < m.cols || h < m.rows) ? cv::INTER_AREA : cv::INTER_CUBIC;
  cv::Mat out;
  cv::resize(m, out, cv::Size(w, h), 0, 0, interp);
  return out;
}

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
  cv::Mat src = as_mat(img);
  if (mode == ControlResize::JustResize) return from_mat(resized(src, width, height));
  double kw = double(width) / img.width, kh = double(height) / img.height;
  double k = mode == ControlResize::CropAndResize ? std::max(kw, kh) : std::min(kw, kh);
  // The scaled size, never below the target on the covering side (crop) nor above it on the fitting side (fill).
  int sw = int(std::lround(img.width * k)), sh = int(std::lround(img.height * k));
  if (mode == ControlResize::CropAndResize) {
    sw = std::max(sw, width);
    sh = std::max(sh, height);
    cv::Mat s = resized(src, sw, sh);
    int x = (sw - width) / 2, y = (sh - height) / 2;
    return from_mat(s(cv::Rect(x, y, width, height)));
  }
  sw = std::clamp(sw, 1, width);
  sh = std::clamp(sh, 1, height);
  cv::Mat s = resized(src, sw, sh);
  cv::Mat out(height, width, src.type(), cv::Scalar::all(0));
  s.copyTo(out(cv::Rect((width - sw) / 2, (height - sh) / 2, sw, sh)));
  return from_mat(out);
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
