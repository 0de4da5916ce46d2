#include "imaging/resize.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace pigment {

namespace {

// Pillow's filters (libImaging/Resample.c), in double as there; hamming's constants are C floats there.
double pil_filter(ImageFilter f, double x) {
  switch (f) {
    case ImageFilter::Box:
      return x > -0.5 && x <= 0.5 ? 1.0 : 0.0;
    case ImageFilter::Bilinear:
      x = std::fabs(x);
      return x < 1.0 ? 1.0 - x : 0.0;
    case ImageFilter::Hamming:
      x = std::fabs(x);
      if (x == 0.0) return 1.0;
      if (x >= 1.0) return 0.0;
      x *= M_PI;
      return std::sin(x) / x * (double(0.54f) + double(0.46f) * std::cos(x));
    case ImageFilter::Bicubic: {
      const double a = -0.5;
      x = std::fabs(x);
      if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
      if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
      return 0.0;
    }
    case ImageFilter::Lanczos: {
      auto sinc = [](double v) {
        if (v == 0.0) return 1.0;
        v *= M_PI;
        return std::sin(v) / v;
      };
      return -3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0;
    }
    default:
      return 0.0;
  }
}

double filter_support(ImageFilter f) {
  switch (f) {
    case ImageFilter::Box: return 0.5;
    case ImageFilter::Bilinear: case ImageFilter::Hamming: return 1.0;
    case ImageFilter::Bicubic: return 2.0;
    default: return 3.0;
  }
}

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's 8-bit coefficients: 22 fractional bits

// One output position's taps: the first input index and the fixed-point weights (precompute_coeffs, then
// normalize_coeffs_8bpc). The source span [in0, in1) is Pillow's box along this axis (C floats there).
struct Taps {
  int first = 0;
  std::vector<int32_t> k;
};

std::vector<Taps> pil_taps(int in_size, float in0, float in1, int out, ImageFilter f) {
  double scale = double(in1 - in0) / out, filterscale = scale;
  if (filterscale < 1.0) filterscale = 1.0;
  const double support = filter_support(f) * filterscale;
  std::vector<Taps> taps(static_cast<size_t>(out));
  std::vector<double> w;
  for (int o = 0; o < out; ++o) {
    const double center = in0 + (o + 0.5) * scale, ss = 1.0 / filterscale;
    int xmin = int(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = int(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    w.assign(static_cast<size_t>(std::max(xmax, 0)), 0.0);
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) ww += w[size_t(x)] = pil_filter(f, (x + xmin - center + 0.5) * ss);
    Taps& t = taps[size_t(o)];
    t.first = xmin;
    for (double v : w) {
      if (ww != 0.0) v /= ww;
      t.k.push_back(v < 0 ? int32_t(-0.5 + v * (1 << kPrecisionBits)) : int32_t(0.5 + v * (1 << kPrecisionBits)));
    }
  }
  return taps;
}

// Pillow's clip8: the accumulator (with its 0.5 rounding term) shifted down, clamped to [0, 255].
uint8_t clip8(int32_t v) { return uint8_t(std::clamp(v >> kPrecisionBits, 0, 255)); }

// One separable pass along x (horizontal) or y, over the source span [in0, in1) of that axis.
Image pil_pass(const Image& img, int out, bool horizontal, ImageFilter f, float in0, float in1) {
  const int in = horizontal ? img.width : img.height, C = img.channels;
  const std::vector<Taps> taps = pil_taps(in, in0, in1, out, f);
  Image o{horizontal ? out : img.width, horizontal ? img.height : out, C, {}};
  o.pixels.resize(size_t(o.width) * o.height * C);
  for (int y = 0; y < o.height; ++y)
    for (int x = 0; x < o.width; ++x) {
      const Taps& t = taps[size_t(horizontal ? x : y)];
      for (int c = 0; c < C; ++c) {
        int32_t acc = 1 << (kPrecisionBits - 1);
        for (size_t k = 0; k < t.k.size(); ++k) {
          const int i = t.first + int(k);
          acc += int32_t(horizontal ? img.at(i, y, c) : img.at(x, i, c)) * t.k[k];
        }
        o.pixels[(size_t(y) * o.width + x) * C + c] = clip8(acc);
      }
    }
  return o;
}

// Pillow's nearest resize: an affine scale whose source positions are summed step by step in double
// (ImagingScaleAffine), so the rounding of that sum is Pillow's.
std::vector<int> nearest_index(int in, float in0, float in1, int out) {
  const double a = double(in1 - in0) / out;
  double pos = double(in0) + a * 0.5;
  std::vector<int> idx(static_cast<size_t>(out));
  for (int o = 0; o < out; ++o, pos += a) idx[size_t(o)] = std::clamp(pos < 0.0 ? -1 : int(pos), 0, in - 1);
  return idx;
}

// RGBA ⇄ premultiplied (Pillow's RGBA → RGBa and back), as Image.resize does around a filter on RGBA.
void premultiply(Image& img) {
  for (size_t i = 0; i + 3 < img.pixels.size(); i += 4) {
    const unsigned a = img.pixels[i + 3];
    for (int c = 0; c < 3; ++c) {
      const unsigned t = img.pixels[i + size_t(c)] * a + 128;
      img.pixels[i + size_t(c)] = uint8_t(((t >> 8) + t) >> 8);
    }
  }
}
void unpremultiply(Image& img) {
  for (size_t i = 0; i + 3 < img.pixels.size(); i += 4) {
    const unsigned a = img.pixels[i + 3];
    if (a == 0 || a == 255) continue;
    for (int c = 0; c < 3; ++c) img.pixels[i + size_t(c)] = uint8_t(std::min(255u, 255u * img.pixels[i + size_t(c)] / a));
  }
}

// torch's cubic convolution (A = -0.75) weights for fraction t.
void cubic_weights(float t, float w[4]) {
  const float A = -0.75f;
  auto c1 = [A](float x) { return ((A + 2) * x - (A + 3)) * x * x + 1; };
  auto c2 = [A](float x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; };
  w[0] = c2(t + 1);
  w[1] = c1(t);
  w[2] = c1(1 - t);
  w[3] = c2(2 - t);
}

// Per output index: input indices and weights along one axis (torch's upsample kernels, align_corners=False).
struct AxisTaps {
  std::vector<int64_t> idx;
  std::vector<float> w;
  int n = 0;  // taps per output
};

AxisTaps axis_taps(int64_t in, int64_t out, const std::string& mode, bool antialias) {
  AxisTaps a;
  const float scale = float(in) / float(out);
  if (mode == "nearest" || mode == "nearest-exact") {
    a.n = 1;
    for (int64_t o = 0; o < out; ++o) {
      int64_t i;
      if (in == out) i = o;
      else if (mode == "nearest" && out == 2 * in) i = o >> 1;
      else
        i = std::min(int64_t(std::floor(mode == "nearest" ? float(o) * scale : (float(o) + 0.5f) * scale)), in - 1);
      a.idx.push_back(i);
      a.w.push_back(1.f);
    }
    return a;
  }
  const bool cubic = mode == "bicubic";
  if (antialias) {  // PIL-style separable filter (torch's _upsample_*_aa)
    ImageFilter f = cubic ? ImageFilter::Bicubic : ImageFilter::Bilinear;
    const double support = (cubic ? 2.0 : 1.0) * (scale >= 1 ? scale : 1.0);
    const double invscale = scale >= 1 ? 1.0 / scale : 1.0;
    std::vector<std::vector<std::pair<int64_t, double>>> rows(static_cast<size_t>(out));
    for (int64_t o = 0; o < out; ++o) {
      const double center = double(scale) * (o + 0.5);
      int64_t xmin = std::max<int64_t>(int64_t(center - support + 0.5), 0);
      int64_t xsize = std::min<int64_t>(int64_t(center + support + 0.5), in) - xmin;
      double sum = 0;
      for (int64_t j = 0; j < xsize; ++j) {
        double w = pil_filter(f, (j + xmin - center + 0.5) * invscale);
        rows[size_t(o)].emplace_back(xmin + j, w);
        sum += w;
      }
      if (sum != 0)
        for (auto& p : rows[size_t(o)]) p.second /= sum;
      a.n = std::max<int>(a.n, int(rows[size_t(o)].size()));
    }
    for (auto& r : rows) {
      for (int k = 0; k < a.n; ++k) {
        bool have = k < int(r.size());
        a.idx.push_back(have ? r[size_t(k)].first : 0);
        a.w.push_back(have ? float(r[size_t(k)].second) : 0.f);
      }
    }
    return a;
  }
  a.n = cubic ? 4 : 2;
  for (int64_t o = 0; o < out; ++o) {
    float src = scale * (float(o) + 0.5f) - 0.5f;
    if (!cubic) {
      if (src < 0) src = 0;
      int64_t i0 = int64_t(src);
      float l = src - float(i0);
      int64_t i1 = i0 + (i0 < in - 1 ? 1 : 0);
      a.idx.insert(a.idx.end(), {i0, i1});
      a.w.insert(a.w.end(), {1 - l, l});
    } else {
      int64_t i0 = int64_t(std::floor(src));
      float w[4];
      cubic_weights(src - float(i0), w);
      for (int k = 0; k < 4; ++k) {
        a.idx.push_back(std::clamp<int64_t>(i0 - 1 + k, 0, in - 1));
        a.w.push_back(w[k]);
      }
    }
  }
  return a;
}

}  // namespace

Image resize_image(const Image& img, int width, int height, ImageFilter filter) {
  return resize_image(img, width, height, filter, {0.f, 0.f, float(img.width), float(img.height)});
}

Image resize_image(const Image& img, int width, int height, ImageFilter filter, const std::array<float, 4>& box) {
  PIG_CHECK(width > 0 && height > 0, "resize: invalid size ", width, "x", height);
  PIG_CHECK(img.width > 0 && img.height > 0 && (img.channels == 1 || img.channels == 3 || img.channels == 4) &&
                img.pixels.size() == size_t(img.width) * img.height * img.channels,
            "resize: not a valid image (", img.width, "x", img.height, "x", img.channels, ")");
  PIG_CHECK(box[0] >= 0 && box[1] >= 0 && box[2] <= img.width && box[3] <= img.height && box[2] >= box[0] &&
                box[3] >= box[1],
            "resize: the box (", box[0], ", ", box[1], ", ", box[2], ", ", box[3], ") is outside the ", img.width,
            "x", img.height, " image");
  const bool whole = box[0] == 0 && box[1] == 0 && box[2] == img.width && box[3] == img.height;
  if (width == img.width && height == img.height && whole) return img;
  if (filter == ImageFilter::Nearest) {
    const std::vector<int> ix = nearest_index(img.width, box[0], box[2], width),
                           iy = nearest_index(img.height, box[1], box[3], height);
    Image o{width, height, img.channels, std::vector<uint8_t>(size_t(width) * height * img.channels)};
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x)
        for (int c = 0; c < img.channels; ++c)
          o.pixels[(size_t(y) * width + x) * img.channels + c] = img.at(ix[size_t(x)], iy[size_t(y)], c);
    return o;
  }
  Image out = img;
  if (img.channels == 4) premultiply(out);
  // Pillow's ImagingResampleInner: a pass runs when the size or the box changes that axis; horizontal first.
  if (width != img.width || box[0] != 0 || box[2] != width) out = pil_pass(out, width, true, filter, box[0], box[2]);
  if (height != img.height || box[1] != 0 || box[3] != height)
    out = pil_pass(out, height, false, filter, box[1], box[3]);
  if (img.channels == 4) unpremultiply(out);
  return out;
}

Image resize_area(const Image& img, int width, int height) {
  PIG_CHECK(width > 0 && height > 0, "resize_area: invalid size ", width, "x", height);
  PIG_CHECK(img.width > 0 && img.height > 0, "resize_area: empty image");
  PIG_CHECK(width <= img.width && height <= img.height, "resize_area: only downscales (", img.width, "x", img.height,
            " to ", width, "x", height, ")");
  // The integer overlap of source pixel j with output pixel i along an axis of `in` pixels resized to `out`.
  struct Tap {
    int src;
    int64_t weight;
  };
  auto taps = [](int in, int out) {
    std::vector<std::vector<Tap>> t(static_cast<size_t>(out));
    for (int i = 0; i < out; ++i) {
      const int64_t lo = int64_t(i) * in, hi = int64_t(i + 1) * in;  // in units where a source pixel is `out` long
      for (int j = int(lo / out); j < in && int64_t(j) * out < hi; ++j) {
        int64_t w = std::min(hi, int64_t(j + 1) * out) - std::max(lo, int64_t(j) * out);
        if (w > 0) t[size_t(i)].push_back({j, w});
      }
    }
    return t;
  };
  const auto tx = taps(img.width, width), ty = taps(img.height, height);
  const int C = img.channels;
  // Horizontal sums (each out of 255·img.width), then vertical sums (out of 255·img.width·img.height).
  std::vector<int64_t> rows(size_t(img.height) * width * C);
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < C; ++c) {
        int64_t acc = 0;
        for (const Tap& t : tx[size_t(x)]) acc += t.weight * img.at(t.src, y, c);
        rows[(size_t(y) * width + x) * C + c] = acc;
      }
  const int64_t total = int64_t(img.width) * img.height;
  Image o{width, height, C, std::vector<uint8_t>(size_t(width) * height * C)};
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < C; ++c) {
        int64_t acc = 0;
        for (const Tap& t : ty[size_t(y)]) acc += t.weight * rows[(size_t(t.src) * width + x) * C + c];
        o.pixels[(size_t(y) * width + x) * C + c] = uint8_t((acc + total / 2) / total);
      }
  return o;
}

Tensor interpolate(const Tensor& x, int64_t height, int64_t width, const std::string& mode, bool antialias) {
  PIG_CHECK(x.ndim() == 4, "interpolate: expected [N, C, H, W], got ", shape_str(x.shape()));
  PIG_CHECK(height > 0 && width > 0, "interpolate: invalid size ", width, "x", height);
  PIG_CHECK(mode == "nearest" || mode == "nearest-exact" || mode == "bilinear" || mode == "bicubic",
            "interpolate: unknown mode '", mode, "'");
  PIG_CHECK(!antialias || mode == "bilinear" || mode == "bicubic", "interpolate: antialias needs bilinear or bicubic");
  const int64_t NC = x.dim(0) * x.dim(1), H = x.dim(2), W = x.dim(3);
  AxisTaps ty = axis_taps(H, height, mode, antialias), tx = axis_taps(W, width, mode, antialias);
  // Width first, then height (one pass each; accumulation in float as torch's CPU kernels).
  std::vector<float> tmp(size_t(NC * H * width));
  const float* s = x.f32();
  for (int64_t p = 0; p < NC * H; ++p)
    for (int64_t o = 0; o < width; ++o) {
      float acc = 0;
      for (int k = 0; k < tx.n; ++k) acc += tx.w[size_t(o * tx.n + k)] * s[p * W + tx.idx[size_t(o * tx.n + k)]];
      tmp[size_t(p * width + o)] = acc;
    }
  Tensor y = Tensor::empty({x.dim(0), x.dim(1), height, width});
  float* d = y.f32();
  for (int64_t p = 0; p < NC; ++p)
    for (int64_t o = 0; o < height; ++o)
      for (int64_t j = 0; j < width; ++j) {
        float acc = 0;
        for (int k = 0; k < ty.n; ++k)
          acc += ty.w[size_t(o * ty.n + k)] * tmp[size_t((p * H + ty.idx[size_t(o * ty.n + k)]) * width + j)];
        d[(p * height + o) * width + j] = acc;
      }
  return y;
}

}  // namespace pigment
