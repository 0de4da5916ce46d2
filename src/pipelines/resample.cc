#include "pipelines/resample.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace pigment {

namespace {

double pil_filter(ImageFilter f, double x) {
  x = std::fabs(x);
  switch (f) {
    case ImageFilter::Bilinear:
      return x < 1 ? 1 - x : 0;
    case ImageFilter::Bicubic: {
      const double a = -0.5;
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    }
    case ImageFilter::Lanczos: {
      if (x >= 3) return 0;
      auto sinc = [](double v) { return v == 0 ? 1.0 : std::sin(v * M_PI) / (v * M_PI); };
      return sinc(x) * sinc(x / 3);
    }
    default:
      return 0;
  }
}

double filter_support(ImageFilter f) {
  return f == ImageFilter::Bilinear ? 1 : f == ImageFilter::Bicubic ? 2 : 3;
}

// One output position's taps: first input index and normalized weights (PIL's precompute_coeffs).
struct Taps {
  int first = 0;
  std::vector<double> w;
};

std::vector<Taps> pil_taps(int in, int out, ImageFilter f) {
  const double scale = double(in) / out, filterscale = std::max(1.0, scale);
  const double support = filter_support(f) * filterscale, ss = 1.0 / filterscale;
  std::vector<Taps> taps(static_cast<size_t>(out));
  for (int o = 0; o < out; ++o) {
    const double center = (o + 0.5) * scale;
    int xmin = std::max(0, int(center - support + 0.5));
    int xmax = std::min(in, int(center + support + 0.5)) - xmin;
    Taps& t = taps[size_t(o)];
    t.first = xmin;
    double sum = 0;
    for (int x = 0; x < xmax; ++x) sum += t.w.emplace_back(pil_filter(f, (x + xmin - center + 0.5) * ss));
    if (sum != 0)
      for (double& w : t.w) w /= sum;
  }
  return taps;
}

uint8_t clip8(double v) { return uint8_t(std::clamp(std::floor(v + 0.5), 0.0, 255.0)); }

// One separable pass along x (horizontal) or y.
Image pil_pass(const Image& img, int out, bool horizontal, ImageFilter f) {
  const int in = horizontal ? img.width : img.height, C = img.channels;
  std::vector<Taps> taps = pil_taps(in, out, f);
  Image o{horizontal ? out : img.width, horizontal ? img.height : out, C, {}};
  o.pixels.resize(size_t(o.width) * o.height * C);
  for (int y = 0; y < o.height; ++y)
    for (int x = 0; x < o.width; ++x) {
      const Taps& t = taps[size_t(horizontal ? x : y)];
      for (int c = 0; c < C; ++c) {
        double acc = 0;
        for (size_t k = 0; k < t.w.size(); ++k) {
          int i = t.first + int(k);
          acc += t.w[k] * (horizontal ? img.at(i, y, c) : img.at(x, i, c));
        }
        o.pixels[(size_t(y) * o.width + x) * C + c] = clip8(acc);
      }
    }
  return o;
}

int reflect101(int i, int n) {
  if (n == 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * n - 2 - i;
  return i;
}

Image blur_pass(const Image& g, int sigma, bool horizontal) {
  if (sigma <= 0) return g;
  const int r = int(2.5 * sigma + 0.5);  // kernel size 2r + 1
  std::vector<double> k(static_cast<size_t>(2 * r + 1));
  double sum = 0;
  for (int i = -r; i <= r; ++i) sum += k[size_t(i + r)] = std::exp(-0.5 * i * i / (double(sigma) * sigma));
  for (double& v : k) v /= sum;
  Image o = g;
  for (int y = 0; y < g.height; ++y)
    for (int x = 0; x < g.width; ++x) {
      double acc = 0;
      for (int i = -r; i <= r; ++i)
        acc += k[size_t(i + r)] * (horizontal ? g.at(reflect101(x + i, g.width), y, 0)
                                              : g.at(x, reflect101(y + i, g.height), 0));
      o.pixels[size_t(y) * g.width + x] = clip8(acc);
    }
  return o;
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
  PIG_CHECK(width > 0 && height > 0, "resize: invalid size ", width, "x", height);
  PIG_CHECK(img.width > 0 && img.height > 0, "resize: empty image");
  if (width == img.width && height == img.height) return img;
  if (filter == ImageFilter::Nearest) {
    Image o{width, height, img.channels, std::vector<uint8_t>(size_t(width) * height * img.channels)};
    const double sx = double(img.width) / width, sy = double(img.height) / height;
    for (int y = 0; y < height; ++y) {
      int iy = std::min(img.height - 1, int(std::floor((y + 0.5) * sy)));
      for (int x = 0; x < width; ++x) {
        int ix = std::min(img.width - 1, int(std::floor((x + 0.5) * sx)));
        for (int c = 0; c < img.channels; ++c) o.pixels[(size_t(y) * width + x) * img.channels + c] = img.at(ix, iy, c);
      }
    }
    return o;
  }
  Image out = img;
  if (width != img.width) out = pil_pass(out, width, true, filter);
  if (height != img.height) out = pil_pass(out, height, false, filter);
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

Image gaussian_blur_a1111(const Image& gray, int sigma_x, int sigma_y) {
  PIG_CHECK(gray.channels == 1, "gaussian_blur_a1111: expected a one-channel image");
  return blur_pass(blur_pass(gray, sigma_x, true), sigma_y, false);
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
