#include "imaging/a1111_geometry.h"

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
// `src` pasted onto `dst` at (ox, oy) (Image.paste: the part outside `dst` is cut off).
void paste(Image& dst, const Image& src, int ox, int oy) {
  for (int y = 0; y < src.height; ++y)
    for (int x = 0; x < src.width; ++x) {
      const int tx = x + ox, ty = y + oy;
      if (tx < 0 || ty < 0 || tx >= dst.width || ty >= dst.height) continue;
      for (int c = 0; c < src.channels; ++c) dst.pixels[(size_t(ty) * dst.width + tx) * dst.channels + c] = src.at(x, y, c);
    }
}
Image canvas(int width, int height, int channels) {
  return Image{width, height, channels, std::vector<uint8_t>(size_t(width) * height * channels, 0)};
}
Image lanczos(const Image& img, int width, int height) {
  return resize_image(img, std::max(1, width), std::max(1, height), ImageFilter::Lanczos);
}
}  // namespace

Image resize_crop(const Image& img, int width, int height) {
  PIG_CHECK(width > 0 && height > 0 && img.width > 0 && img.height > 0, "resize: invalid size ", width, "x", height);
  const double ratio = double(width) / height, src_ratio = double(img.width) / img.height;
  const int src_w = ratio > src_ratio ? width : int(int64_t(img.width) * height / img.height);
  const int src_h = ratio <= src_ratio ? height : int(int64_t(img.height) * width / img.width);
  const Image resized = lanczos(img, src_w, src_h);
  Image o = canvas(width, height, img.channels);
  paste(o, resized, width / 2 - src_w / 2, height / 2 - src_h / 2);
  return o;
}

Image resize_fill(const Image& img, int width, int height) {
  PIG_CHECK(width > 0 && height > 0 && img.width > 0 && img.height > 0, "resize: invalid size ", width, "x", height);
  const double ratio = double(width) / height, src_ratio = double(img.width) / img.height;
  const int src_w = ratio < src_ratio ? width : int(int64_t(img.width) * height / img.height);
  const int src_h = ratio >= src_ratio ? height : int(int64_t(img.height) * width / img.width);
  const Image resized = lanczos(img, src_w, src_h);
  Image o = canvas(width, height, img.channels);
  paste(o, resized, width / 2 - src_w / 2, height / 2 - src_h / 2);
  // The borders: the resized image's first/last row (column) stretched by Image.resize with an empty box on that
  // edge and Pillow's default filter (bicubic), as A1111 does it.
  const float rw = float(resized.width), rh = float(resized.height);
  if (ratio < src_ratio) {
    const int fill_h = height / 2 - src_h / 2;
    if (fill_h > 0) {
      paste(o, resize_image(resized, width, fill_h, ImageFilter::Bicubic, {0.f, 0.f, float(width), 0.f}), 0, 0);
      paste(o, resize_image(resized, width, fill_h, ImageFilter::Bicubic, {0.f, rh, float(width), rh}), 0,
            fill_h + src_h);
    }
  } else if (ratio > src_ratio) {
    const int fill_w = width / 2 - src_w / 2;
    if (fill_w > 0) {
      paste(o, resize_image(resized, fill_w, height, ImageFilter::Bicubic, {0.f, 0.f, 0.f, float(height)}), 0, 0);
      paste(o, resize_image(resized, fill_w, height, ImageFilter::Bicubic, {rw, 0.f, rw, float(height)}),
            fill_w + src_w, 0);
    }
  }
  return o;
}

ResizeMode parse_resize_mode(const std::string& name) {
  std::string n;
  for (char c : name) n += c == ' ' || c == '_' ? '-' : char(std::tolower(static_cast<unsigned char>(c)));
  if (n == "just-resize" || n == "just" || n == "0") return ResizeMode::JustResize;
  if (n == "crop-and-resize" || n == "crop" || n == "1") return ResizeMode::CropAndResize;
  if (n == "resize-and-fill" || n == "fill" || n == "2") return ResizeMode::ResizeAndFill;
  if (n == "just-resize-(latent-upscale)" || n == "latent-upscale" || n == "latent" || n == "3")
    return ResizeMode::LatentUpscale;
  fail("resize mode '", name, "': expected just-resize, crop, fill or latent-upscale (A1111: Just resize, Crop and "
       "resize, Resize and fill, Just resize (latent upscale))");
}

const char* resize_mode_label(ResizeMode m) {
  switch (m) {
    case ResizeMode::JustResize: return "Just resize";
    case ResizeMode::CropAndResize: return "Crop and resize";
    case ResizeMode::ResizeAndFill: return "Resize and fill";
    default: return "Just resize (latent upscale)";
  }
}

Image resize_a1111(const Image& img, ResizeMode mode, int width, int height) {
  switch (mode) {
    case ResizeMode::JustResize: return lanczos(img, width, height);
    case ResizeMode::CropAndResize: return resize_crop(img, width, height);
    default: return resize_fill(img, width, height);  // images.resize_image: every other mode fills
  }
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

}  // namespace pigment
