#include "pipelines/a1111_geometry.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace pigment {

HiresGeometry hires_geometry(int width, int height, double scale, int resize_x, int resize_y, int f) {
  PIG_CHECK(width > 0 && height > 0 && f > 0, "hires fix: invalid first-pass size ", width, "x", height);
  PIG_CHECK(resize_x >= 0 && resize_y >= 0, "hires fix: resize width/height must be 0 (unset) or positive");
  HiresGeometry g;
  if (resize_x == 0 && resize_y == 0) {
    g.upscale_to_x = int(width * scale);
    g.upscale_to_y = int(height * scale);
  } else if (resize_y == 0) {
    g.upscale_to_x = resize_x;
    g.upscale_to_y = int(int64_t(resize_x) * height / width);
  } else if (resize_x == 0) {
    g.upscale_to_x = int(int64_t(resize_y) * width / height);
    g.upscale_to_y = resize_y;
  } else {
    const double src_ratio = double(width) / height, dst_ratio = double(resize_x) / resize_y;
    if (src_ratio < dst_ratio) {
      g.upscale_to_x = resize_x;
      g.upscale_to_y = int(int64_t(resize_x) * height / width);
    } else {
      g.upscale_to_x = int(int64_t(resize_y) * width / height);
      g.upscale_to_y = resize_y;
    }
    g.truncate_x = (g.upscale_to_x - resize_x) / f;
    g.truncate_y = (g.upscale_to_y - resize_y) / f;
  }
  g.latent_w = g.upscale_to_x / f;
  g.latent_h = g.upscale_to_y / f;
  g.width = (g.latent_w - g.truncate_x) * f;
  g.height = (g.latent_h - g.truncate_y) * f;
  return g;
}

namespace {
const std::vector<HiresUpscaler>& upscalers() {
  static const std::vector<HiresUpscaler> u = {
      {"Latent", true, "bilinear", false},
      {"Latent (antialiased)", true, "bilinear", true},
      {"Latent (bicubic)", true, "bicubic", false},
      {"Latent (bicubic antialiased)", true, "bicubic", true},
      {"Latent (nearest)", true, "nearest", false},
      {"Latent (nearest-exact)", true, "nearest-exact", false},
      {"None", false, "", false},
      {"Lanczos", false, "", false},
      {"Nearest", false, "", false},
  };
  return u;
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
}  // namespace

std::string hires_upscaler_names() {
  std::string s;
  for (const auto& u : upscalers()) s += (s.empty() ? "" : ", ") + u.name;
  return s;
}

HiresUpscaler find_hires_upscaler(const std::string& name) {
  for (const auto& u : upscalers())
    if (lower(u.name) == lower(name)) return u;
  fail("unknown hires upscaler '", name, "' (valid: ", hires_upscaler_names(), "; model upscalers such as ESRGAN "
       "are not supported)");
}

Image upscale_image(const Image& img, int width, int height, const HiresUpscaler& up) {
  PIG_CHECK(!up.latent, "upscale_image: ", up.name, " is a latent upscaler");
  if (up.name != "None") {
    // Upscaler.upscale: the upscaler's own resize by the scale, then Lanczos to the size rounded down to 8.
    const double scale = std::max(double(width) / img.width, double(height) / img.height);
    if (scale > 1.0) {
      const ImageFilter f = up.name == "Nearest" ? ImageFilter::Nearest : ImageFilter::Lanczos;
      const int dest_w = int(std::floor(img.width * scale / 8) * 8), dest_h = int(std::floor(img.height * scale / 8) * 8);
      Image cur = img;
      for (int i = 0; i < 3; ++i) {
        if (cur.width >= dest_w && cur.height >= dest_h && (i > 0 || scale != 1)) break;
        int w0 = cur.width, h0 = cur.height;
        cur = resize_image(cur, int(cur.width * scale), int(cur.height * scale), f);
        if (cur.width == w0 && cur.height == h0) break;
      }
      if (cur.width != dest_w || cur.height != dest_h) cur = resize_image(cur, dest_w, dest_h, ImageFilter::Lanczos);
      return resize_image(cur, width, height, ImageFilter::Lanczos);
    }
  }
  return resize_image(img, width, height, ImageFilter::Lanczos);
}

std::optional<CropRegion> mask_crop_region(const Image& m, int padding) {
  PIG_CHECK(m.channels == 1, "mask_crop_region: expected a one-channel mask");
  PIG_CHECK(padding >= 0, "inpaint padding must be 0 or more pixels, got ", padding);
  int x1 = m.width, y1 = m.height, x2 = 0, y2 = 0;
  for (int y = 0; y < m.height; ++y)
    for (int x = 0; x < m.width; ++x)
      if (m.at(x, y, 0)) {
        x1 = std::min(x1, x);
        y1 = std::min(y1, y);
        x2 = std::max(x2, x + 1);
        y2 = std::max(y2, y + 1);
      }
  if (x2 == 0) return std::nullopt;
  return CropRegion{std::max(x1 - padding, 0), std::max(y1 - padding, 0), std::min(x2 + padding, m.width),
                    std::min(y2 + padding, m.height)};
}

CropRegion expand_crop_region(CropRegion r, int pw, int ph, int iw, int ih) {
  const double ratio_crop = double(r.width()) / r.height(), ratio_proc = double(pw) / ph;
  // Grows [a1, a2) to `desired` along one axis of extent n, as masking.expand_crop_region does.
  auto grow = [](int& a1, int& a2, double desired, int n) {
    int diff = int(desired - (a2 - a1));
    a1 -= diff / 2;
    a2 += diff - diff / 2;
    if (a2 >= n) {
      int d = a2 - n;
      a2 -= d;
      a1 -= d;
    }
    if (a1 < 0) {
      a2 -= a1;
      a1 = 0;
    }
    if (a2 >= n) a2 = n;
  };
  if (ratio_crop > ratio_proc) grow(r.y1, r.y2, r.width() / ratio_proc, ih);
  else grow(r.x1, r.x2, r.height() * ratio_proc, iw);
  return r;
}

namespace {
// `src` laid on a black canvas of width × height at (ox, oy) (negative offsets crop it).
Image place(const Image& src, int width, int height, int ox, int oy) {
  Image o{width, height, src.channels, std::vector<uint8_t>(size_t(width) * height * src.channels, 0)};
  for (int y = 0; y < src.height; ++y)
    for (int x = 0; x < src.width; ++x) {
      int tx = x + ox, ty = y + oy;
      if (tx < 0 || ty < 0 || tx >= width || ty >= height) continue;
      for (int c = 0; c < src.channels; ++c) o.pixels[(size_t(ty) * width + tx) * src.channels + c] = src.at(x, y, c);
    }
  return o;
}
}  // namespace

Image resize_crop(const Image& img, int width, int height) {
  const double ratio = double(width) / height, src_ratio = double(img.width) / img.height;
  int src_w = ratio > src_ratio ? width : int(int64_t(img.width) * height / img.height);
  int src_h = ratio <= src_ratio ? height : int(int64_t(img.height) * width / img.width);
  Image resized = resize_image(img, std::max(1, src_w), std::max(1, src_h), ImageFilter::Lanczos);
  return place(resized, width, height, width / 2 - resized.width / 2, height / 2 - resized.height / 2);
}

Image resize_fill(const Image& img, int width, int height) {
  const double ratio = double(width) / height, src_ratio = double(img.width) / img.height;
  int src_w = ratio < src_ratio ? width : int(int64_t(img.width) * height / img.height);
  int src_h = ratio >= src_ratio ? height : int(int64_t(img.height) * width / img.width);
  Image resized = resize_image(img, std::max(1, src_w), std::max(1, src_h), ImageFilter::Lanczos);
  const int ox = width / 2 - resized.width / 2, oy = height / 2 - resized.height / 2;
  Image o = place(resized, width, height, ox, oy);
  // The borders repeat the nearest edge row/column of the resized image.
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      int sx = x - ox, sy = y - oy;
      if (sx >= 0 && sy >= 0 && sx < resized.width && sy < resized.height) continue;
      sx = std::clamp(sx, 0, resized.width - 1);
      sy = std::clamp(sy, 0, resized.height - 1);
      for (int c = 0; c < o.channels; ++c) o.pixels[(size_t(y) * width + x) * o.channels + c] = resized.at(sx, sy, c);
    }
  return o;
}

Image crop_image(const Image& img, const CropRegion& r) {
  PIG_CHECK(r.x1 >= 0 && r.y1 >= 0 && r.x2 <= img.width && r.y2 <= img.height && r.width() > 0 && r.height() > 0,
            "crop region outside the image");
  Image o{r.width(), r.height(), img.channels, {}};
  o.pixels.reserve(size_t(r.width()) * r.height() * img.channels);
  for (int y = r.y1; y < r.y2; ++y)
    for (int x = r.x1; x < r.x2; ++x)
      for (int c = 0; c < img.channels; ++c) o.pixels.push_back(img.at(x, y, c));
  return o;
}

Image paste_with_alpha(const Image& base, const Image& patch, const CropRegion& r, const Image& alpha) {
  PIG_CHECK(patch.width == r.width() && patch.height == r.height() && patch.channels == base.channels,
            "paste: the patch does not match the region");
  PIG_CHECK(alpha.channels == 1 && alpha.width == base.width && alpha.height == base.height,
            "paste: the alpha mask does not match the image");
  Image o = base;
  for (int y = r.y1; y < r.y2; ++y)
    for (int x = r.x1; x < r.x2; ++x) {
      const double a = alpha.at(x, y, 0) / 255.0;
      for (int c = 0; c < base.channels; ++c) {
        double v = base.at(x, y, c) * (1 - a) + patch.at(x - r.x1, y - r.y1, c) * a;
        o.pixels[(size_t(y) * base.width + x) * base.channels + c] = uint8_t(std::clamp(std::lround(v), 0L, 255L));
      }
    }
  return o;
}

namespace {
// Box blur of radius l with edges repeated, along x or y, on a float plane (O(n) per line with prefix sums).
void box_blur(std::vector<float>& p, int w, int h, int l, bool horizontal) {
  if (l <= 0) return;
  const int n = horizontal ? w : h, lines = horizontal ? h : w;
  std::vector<double> prefix(static_cast<size_t>(n) + 1);
  std::vector<float> line(static_cast<size_t>(n));
  for (int k = 0; k < lines; ++k) {
    auto at = [&](int i) -> float& { return horizontal ? p[size_t(k) * w + i] : p[size_t(i) * w + k]; };
    for (int i = 0; i < n; ++i) prefix[size_t(i) + 1] = prefix[size_t(i)] + (line[size_t(i)] = at(i));
    for (int i = 0; i < n; ++i) {
      int a = i - l, b = i + l;  // inclusive
      double s = 0;
      if (a < 0) s += double(-a) * line[0], a = 0;
      if (b > n - 1) s += double(b - (n - 1)) * line[size_t(n - 1)], b = n - 1;
      s += prefix[size_t(b) + 1] - prefix[size_t(a)];
      at(i) = float(s / (2 * l + 1));
    }
  }
}

// PIL's GaussianBlur(radius) approximated by three box blurs of the same variance.
void gaussian_like_blur(std::vector<float>& p, int w, int h, double radius) {
  if (radius <= 0) return;
  const double sigma2 = radius * radius / 3;
  const int l = int(std::floor((std::sqrt(12 * sigma2 + 1) - 1) / 2));
  for (int pass = 0; pass < 3; ++pass) {
    box_blur(p, w, h, l, true);
    box_blur(p, w, h, l, false);
  }
}
}  // namespace

Image fill_masked_area(const Image& rgb_in, const Image& mask) {
  Image rgb = to_rgb(rgb_in);
  PIG_CHECK(mask.channels == 1 && mask.width == rgb.width && mask.height == rgb.height,
            "fill: the mask does not match the image");
  const int w = rgb.width, h = rgb.height;
  const size_t n = size_t(w) * h;
  // Premultiplied colour and alpha of the kept part (alpha = 1 - mask).
  std::vector<std::vector<float>> src(4, std::vector<float>(n));
  for (size_t i = 0; i < n; ++i) {
    float a = 1.f - mask.pixels[i] / 255.f;
    for (int c = 0; c < 3; ++c) src[size_t(c)][i] = rgb.pixels[i * 3 + size_t(c)] / 255.f * a;
    src[3][i] = a;
  }
  std::vector<std::vector<float>> out(4, std::vector<float>(n, 0.f));
  for (auto [radius, repeats] : std::vector<std::pair<double, int>>{{256, 1}, {64, 1}, {16, 2}, {4, 4}, {2, 2}, {0, 1}}) {
    std::vector<std::vector<float>> b = src;
    for (auto& plane : b) gaussian_like_blur(plane, w, h, radius);
    for (int r = 0; r < repeats; ++r)
      for (size_t i = 0; i < n; ++i) {
        const float sa = b[3][i];
        if (sa <= 0) continue;
        const float da = out[3][i], oa = sa + da * (1 - sa);
        for (int c = 0; c < 3; ++c) {
          float sc = std::min(1.f, b[size_t(c)][i] / sa);  // unpremultiplied
          out[size_t(c)][i] = (sc * sa + out[size_t(c)][i] * da * (1 - sa)) / oa;
        }
        out[3][i] = oa;
      }
  }
  Image o{w, h, 3, std::vector<uint8_t>(n * 3)};
  for (size_t i = 0; i < n; ++i)
    for (int c = 0; c < 3; ++c) o.pixels[i * 3 + size_t(c)] = uint8_t(std::lround(std::clamp(out[size_t(c)][i], 0.f, 1.f) * 255));
  return o;
}

}  // namespace pigment
