#include "imaging/blur.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <vector>

#include "core/error.h"

namespace pigment {

namespace {

// Pillow's integer helpers (libImaging/ImPlatform.h, Paste.c): a·b/255 and a/255, rounded.
inline uint32_t div255(uint32_t v) {
  const uint32_t t = v + 128;
  return ((t >> 8) + t) >> 8;
}

void check_valid(const Image& img, const char* what) {
  PIG_CHECK(img.width > 0 && img.height > 0 && (img.channels == 1 || img.channels == 3 || img.channels == 4) &&
                img.pixels.size() == size_t(img.width) * img.height * img.channels,
            what, ": not a valid image (", img.width, "x", img.height, "x", img.channels, ")");
}

// One box-blur pass of Pillow's ImagingHorizontalBoxBlur along `n` values with stride `step` (channel by channel):
// each output is the sum over the window [x − r, x + r] times ww plus the two pixels at distance r + 1 times fw, in
// 24-bit fixed point, indices clamped to the line (edges repeated). The running sum is exact, so it equals Pillow's.
void box_line(uint8_t* line, int n, size_t step, int C, int r, uint32_t ww, uint32_t fw, std::vector<uint8_t>& tmp) {
  tmp.resize(size_t(n) * C);
  const int last = n - 1;
  auto px = [&](int i, int c) -> uint32_t { return line[size_t(std::clamp(i, 0, last)) * step + size_t(c)]; };
  for (int c = 0; c < C; ++c) {
    uint32_t acc = 0;
    for (int i = -r; i <= r; ++i) acc += px(i, c);
    for (int x = 0; x < n; ++x) {
      if (x > 0) acc += px(x + r, c) - px(x - r - 1, c);
      const uint32_t bulk = acc * ww + (px(x - r - 1, c) + px(x + r + 1, c)) * fw;
      tmp[size_t(x) * C + size_t(c)] = uint8_t((bulk + (1u << 23)) >> 24);
    }
  }
  for (int x = 0; x < n; ++x)
    for (int c = 0; c < C; ++c) line[size_t(x) * step + size_t(c)] = tmp[size_t(x) * C + size_t(c)];
}

// Pillow's ImagingBoxBlur(radius, passes): `passes` horizontal passes, then `passes` vertical ones.
void pil_box_blur(Image& img, float radius, int passes) {
  const int r = int(radius);
  const uint32_t ww = uint32_t(float(1 << 24) / (radius * 2 + 1));
  const uint32_t fw = (uint32_t(1 << 24) - uint32_t(r * 2 + 1) * ww) / 2;
  const int W = img.width, H = img.height, C = img.channels;
  std::vector<uint8_t> tmp;
  for (int p = 0; p < passes; ++p)
    for (int y = 0; y < H; ++y) box_line(&img.pixels[size_t(y) * W * C], W, size_t(C), C, r, ww, fw, tmp);
  for (int p = 0; p < passes; ++p)
    for (int x = 0; x < W; ++x) box_line(&img.pixels[size_t(x) * C], H, size_t(W) * C, C, r, ww, fw, tmp);
}

// Pillow's _gaussian_blur_radius: the fractional box radius whose `passes` boxes have the Gaussian's variance
// (Gwosdek et al.), in C float arithmetic with the double constants where Pillow has them.
float gaussian_box_radius(float radius, int passes) {
  const float sigma2 = radius * radius / float(passes);
  const float L = float(std::sqrt(12.0 * sigma2 + 1.0));
  const float l = float(std::floor((L - 1.0) / 2.0));
  float a = (2 * l + 1) * (l * (l + 1) - 3 * sigma2);
  a /= 6 * (sigma2 - (l + 1) * (l + 1));
  return l + a;
}

}  // namespace

Image binary_mask_a1111(const Image& mask) {
  check_valid(mask, "mask");
  if (mask.channels == 4) {
    bool opaque = true;
    for (size_t i = 3; i < mask.pixels.size() && opaque; i += 4) opaque = mask.pixels[i] == 255;
    if (!opaque) {
      Image a{mask.width, mask.height, 1, std::vector<uint8_t>(size_t(mask.width) * mask.height)};
      for (size_t i = 0; i < a.pixels.size(); ++i) a.pixels[i] = mask.pixels[i * 4 + 3] > 128 ? 255 : 0;
      return a;
    }
  }
  return mask.channels == 1 ? mask : to_gray(mask);
}

Image mask_blur_a1111(const Image& gray, int blur_x, int blur_y) {
  check_valid(gray, "mask blur");
  PIG_CHECK(gray.channels == 1, "mask blur: expected a one-channel mask");
  PIG_CHECK(blur_x >= 0 && blur_y >= 0 && blur_x <= 1000 && blur_y <= 1000,
            "mask blur must be between 0 and 1000 pixels (got ", blur_x, ", ", blur_y, ")");
  cv::Mat m(gray.height, gray.width, CV_8UC1, const_cast<uint8_t*>(gray.pixels.data()));
  cv::Mat cur = m.clone();
  if (blur_x > 0) {
    const int k = 2 * int(2.5 * blur_x + 0.5) + 1;
    cv::Mat out;
    cv::GaussianBlur(cur, out, cv::Size(k, 1), blur_x);
    cur = out;
  }
  if (blur_y > 0) {
    const int k = 2 * int(2.5 * blur_y + 0.5) + 1;
    cv::Mat out;
    cv::GaussianBlur(cur, out, cv::Size(1, k), blur_y);
    cur = out;
  }
  if (!cur.isContinuous()) cur = cur.clone();
  Image o{gray.width, gray.height, 1, {}};
  o.pixels.assign(cur.data, cur.data + size_t(gray.width) * gray.height);
  return o;
}

Image pil_gaussian_blur(const Image& img, float radius) {
  check_valid(img, "gaussian blur");
  PIG_CHECK(std::isfinite(radius) && radius >= 0 && radius <= 10000, "gaussian blur: invalid radius ", radius);
  Image o = img;
  pil_box_blur(o, gaussian_box_radius(radius, 3), 3);
  return o;
}

Image fill_masked_area(const Image& rgb_in, const Image& mask_in) {
  const Image rgb = to_rgb(rgb_in);
  const Image mask = mask_in.channels == 1 ? mask_in : to_gray(mask_in);
  PIG_CHECK(mask.width == rgb.width && mask.height == rgb.height, "fill: the mask (", mask.width, "x", mask.height,
            ") does not match the image (", rgb.width, "x", rgb.height, ")");
  const size_t n = size_t(rgb.width) * rgb.height;
  // image_masked (RGBa): the opaque image pasted through the inverted mask onto transparent black, so every byte
  // (colour and alpha) is v·(255 − m)/255, rounded as Pillow's paste.
  Image masked{rgb.width, rgb.height, 4, std::vector<uint8_t>(n * 4)};
  for (size_t i = 0; i < n; ++i) {
    const uint32_t a = 255u - mask.pixels[i];
    for (int c = 0; c < 3; ++c) masked.pixels[i * 4 + size_t(c)] = uint8_t(div255(rgb.pixels[i * 3 + size_t(c)] * a));
    masked.pixels[i * 4 + 3] = uint8_t(div255(255u * a));
  }
  std::vector<uint8_t> out(n * 4, 0);  // image_mod: transparent RGBA
  const std::pair<float, int> rounds[] = {{256.f, 1}, {64.f, 1}, {16.f, 2}, {4.f, 4}, {2.f, 2}, {0.f, 1}};
  for (auto [radius, repeats] : rounds) {
    Image b = pil_gaussian_blur(masked, radius);
    // RGBa → RGBA: divided by alpha (except at 0 and 255), clipped.
    for (size_t i = 0; i < n; ++i) {
      const uint32_t a = b.pixels[i * 4 + 3];
      if (a == 0 || a == 255) continue;
      for (int c = 0; c < 3; ++c) b.pixels[i * 4 + size_t(c)] = uint8_t(std::min(255u, 255u * b.pixels[i * 4 + size_t(c)] / a));
    }
    // Pillow's alpha_composite (AlphaComposite.c, 7 extra bits of precision), `repeats` times.
    for (int rep = 0; rep < repeats; ++rep)
      for (size_t i = 0; i < n; ++i) {
        const uint8_t* s = &b.pixels[i * 4];
        uint8_t* d = &out[i * 4];
        if (s[3] == 0) continue;
        const uint32_t blend = uint32_t(d[3]) * (255u - s[3]);
        const uint32_t outa255 = uint32_t(s[3]) * 255u + blend;
        const uint32_t coef1 = uint32_t(s[3]) * 255u * 255u * (1u << 7) / outa255;
        const uint32_t coef2 = 255u * (1u << 7) - coef1;
        for (int c = 0; c < 3; ++c) {
          const uint32_t t = s[c] * coef1 + d[c] * coef2 + (0x80u << 7);
          d[c] = uint8_t((((t >> 8) + t) >> 8) >> 7);
        }
        const uint32_t ta = outa255 + 0x80u;
        d[3] = uint8_t(((ta >> 8) + ta) >> 8);
      }
  }
  Image o{rgb.width, rgb.height, 3, std::vector<uint8_t>(n * 3)};
  for (size_t i = 0; i < n; ++i)
    for (int c = 0; c < 3; ++c) o.pixels[i * 3 + size_t(c)] = out[i * 4 + size_t(c)];
  return o;
}

Image blurred_mask_a1111(const Image& mask, int blur) {
  Image m = binary_mask_a1111(mask);
  return blur > 0 ? mask_blur_a1111(m, blur, blur) : m;
}

}  // namespace pigment
