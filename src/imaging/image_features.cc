#include "imaging/image_features.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "imaging/resize.h"

namespace pigment {
namespace {

constexpr int kN = kFeatureImageSize;
constexpr int kColourBins = 4;       // per channel
constexpr int kGrid = 8;             // thumbnail and mask: 8×8 blocks of 8×8 pixels
constexpr int kDirections = 8;       // gradient directions over 360°
constexpr double kWhite = 240.0 / 255.0;
constexpr double kPi = 3.14159265358979323846;

enum Block { kColour, kThumbnail, kMask, kGradients, kGlobal };

}  // namespace

const std::vector<FeatureBlock>& image_feature_blocks() {
  static const std::vector<FeatureBlock> blocks = [] {
    std::vector<FeatureBlock> b = {{"colour", 0, kColourBins * kColourBins * kColourBins},
                                   {"thumbnail", 0, kGrid * kGrid * 3},
                                   {"mask", 0, kGrid * kGrid},
                                   {"gradients", 0, 4 * kDirections},
                                   {"global", 0, 10}};
    int offset = 0;
    for (auto& x : b) {
      x.offset = offset;
      offset += x.size;
    }
    return b;
  }();
  return blocks;
}

int image_feature_dims() {
  const auto& b = image_feature_blocks();
  return b.back().offset + b.back().size;
}

FeatureVector image_features(const Image& image) {
  PIG_CHECK(image.width > 0 && image.height > 0 && !image.pixels.empty(), "image features: empty image");
  Image rgb = image.channels == 3 ? image : to_rgb(image);
  if (rgb.width != kN || rgb.height != kN) rgb = resize_image(rgb, kN, kN, ImageFilter::Bilinear);

  std::vector<double> v(size_t(kN) * kN * 3), lum(size_t(kN) * kN);
  std::vector<char> fg(size_t(kN) * kN);
  for (int i = 0; i < kN * kN; ++i) {
    double r = rgb.pixels[size_t(i) * 3] / 255.0, g = rgb.pixels[size_t(i) * 3 + 1] / 255.0,
           b = rgb.pixels[size_t(i) * 3 + 2] / 255.0;
    v[size_t(i) * 3] = r, v[size_t(i) * 3 + 1] = g, v[size_t(i) * 3 + 2] = b;
    lum[size_t(i)] = 0.299 * r + 0.587 * g + 0.114 * b;
    fg[size_t(i)] = std::min({r, g, b}) < kWhite;
  }

  const auto& blocks = image_feature_blocks();
  FeatureVector f(size_t(image_feature_dims()), 0.0);
  double* colour = f.data() + blocks[kColour].offset;
  double* thumb = f.data() + blocks[kThumbnail].offset;
  double* mask = f.data() + blocks[kMask].offset;
  double* grad = f.data() + blocks[kGradients].offset;
  double* global = f.data() + blocks[kGlobal].offset;

  // Colour histogram, foreground statistics.
  double n_fg = 0, sum_rgb[3] = {0, 0, 0}, sum_l = 0, sum_l2 = 0, sx = 0, sy = 0, sxx = 0, syy = 0;
  for (int y = 0; y < kN; ++y)
    for (int x = 0; x < kN; ++x) {
      const size_t i = size_t(y) * kN + x;
      if (!fg[i]) continue;
      int bin = 0;
      for (int c = 0; c < 3; ++c) {
        const double val = v[i * 3 + c];
        bin = bin * kColourBins + std::min(kColourBins - 1, int(val * kColourBins));
        sum_rgb[c] += val;
      }
      colour[bin] += 1;
      n_fg += 1;
      sum_l += lum[i], sum_l2 += lum[i] * lum[i];
      const double px = (x + 0.5) / kN, py = (y + 0.5) / kN;
      sx += px, sy += py, sxx += px * px, syy += py * py;
    }
  if (n_fg > 0)
    for (int k = 0; k < blocks[kColour].size; ++k) colour[k] /= n_fg;

  // Thumbnail and mask: 8×8 block averages.
  const int cell = kN / kGrid;
  for (int by = 0; by < kGrid; ++by)
    for (int bx = 0; bx < kGrid; ++bx) {
      double s[3] = {0, 0, 0}, m = 0;
      for (int y = by * cell; y < (by + 1) * cell; ++y)
        for (int x = bx * cell; x < (bx + 1) * cell; ++x) {
          const size_t i = size_t(y) * kN + x;
          for (int c = 0; c < 3; ++c) s[c] += v[i * 3 + c];
          m += fg[i];
        }
      const double area = double(cell) * cell;
      for (int c = 0; c < 3; ++c) thumb[(by * kGrid + bx) * 3 + c] = s[c] / area;
      mask[by * kGrid + bx] = m / area;
    }

  // Gradient orientations (Sobel on the luminance, borders replicated).
  auto L = [&](int x, int y) {
    x = std::clamp(x, 0, kN - 1), y = std::clamp(y, 0, kN - 1);
    return lum[size_t(y) * kN + x];
  };
  double total_mag = 0;
  for (int y = 0; y < kN; ++y)
    for (int x = 0; x < kN; ++x) {
      const double gx = (L(x + 1, y - 1) + 2 * L(x + 1, y) + L(x + 1, y + 1)) -
                        (L(x - 1, y - 1) + 2 * L(x - 1, y) + L(x - 1, y + 1));
      const double gy = (L(x - 1, y + 1) + 2 * L(x, y + 1) + L(x + 1, y + 1)) -
                        (L(x - 1, y - 1) + 2 * L(x, y - 1) + L(x + 1, y - 1));
      const double mag = std::sqrt(gx * gx + gy * gy);
      if (mag <= 0) continue;
      total_mag += mag;
      double a = std::atan2(gy, gx);
      if (a < 0) a += 2 * kPi;
      const double pos = a / (2 * kPi) * kDirections;  // in [0, 8]
      const int d0 = int(std::floor(pos)) % kDirections, d1 = (d0 + 1) % kDirections;
      const double w1 = pos - std::floor(pos);
      const int quadrant = (y >= kN / 2) * 2 + (x >= kN / 2);
      grad[quadrant * kDirections + d0] += mag * (1 - w1);
      grad[quadrant * kDirections + d1] += mag * w1;
    }
  if (total_mag > 0)
    for (int k = 0; k < blocks[kGradients].size; ++k) grad[k] /= total_mag;

  global[0] = n_fg / (double(kN) * kN);
  if (n_fg > 0) {
    for (int c = 0; c < 3; ++c) global[1 + c] = sum_rgb[c] / n_fg;
    const double ml = sum_l / n_fg;
    global[4] = std::sqrt(std::max(0.0, sum_l2 / n_fg - ml * ml));
    const double mx = sx / n_fg, my = sy / n_fg;
    global[5] = mx, global[6] = my;
    global[7] = std::sqrt(std::max(0.0, sxx / n_fg - mx * mx));
    global[8] = std::sqrt(std::max(0.0, syy / n_fg - my * my));
  } else {  // nothing drawn: white, centred, no spread
    global[1] = global[2] = global[3] = 1.0;
    global[5] = global[6] = 0.5;
  }
  global[9] = total_mag / (double(kN) * kN);
  return f;
}

FeatureStandardizer FeatureStandardizer::fit(const std::vector<FeatureVector>& reference,
                                             const std::vector<FeatureBlock>& blocks) {
  PIG_CHECK(reference.size() >= 2, "feature standardisation needs at least two reference vectors, got ",
            reference.size());
  const size_t d = reference[0].size();
  for (const auto& r : reference)
    PIG_CHECK(r.size() == d, "feature standardisation: vectors of ", r.size(), " and ", d, " numbers");
  FeatureStandardizer s;
  s.mean_.assign(d, 0.0);
  s.scale_.assign(d, 0.0);
  for (const auto& r : reference)
    for (size_t k = 0; k < d; ++k) s.mean_[k] += r[k];
  for (size_t k = 0; k < d; ++k) s.mean_[k] /= double(reference.size());
  std::vector<double> var(d, 0.0);
  for (const auto& r : reference)
    for (size_t k = 0; k < d; ++k) var[k] += (r[k] - s.mean_[k]) * (r[k] - s.mean_[k]);
  std::vector<double> block_weight(d, 1.0);
  if (!blocks.empty()) {
    size_t covered = 0;
    for (const auto& b : blocks) {
      PIG_CHECK(b.offset == int(covered) && b.size > 0, "feature standardisation: block '", b.name,
                "' does not follow the previous one");
      covered += size_t(b.size);
    }
    PIG_CHECK(covered == d, "feature standardisation: the blocks cover ", covered, " numbers, the vectors have ", d);
    for (const auto& b : blocks)
      for (int k = b.offset; k < b.offset + b.size; ++k) block_weight[size_t(k)] = 1.0 / std::sqrt(double(b.size));
  }
  for (size_t k = 0; k < d; ++k) {
    const double sd = std::sqrt(var[k] / double(reference.size()));
    s.scale_[k] = sd > 1e-9 ? block_weight[k] / sd : 0.0;
  }
  return s;
}

FeatureVector FeatureStandardizer::apply(const FeatureVector& raw) const {
  PIG_CHECK(raw.size() == mean_.size(), "feature standardisation: a vector of ", raw.size(), " numbers, expected ",
            mean_.size());
  FeatureVector out(raw.size());
  for (size_t k = 0; k < raw.size(); ++k) out[k] = (raw[k] - mean_[k]) * scale_[k];
  return out;
}

std::vector<FeatureVector> FeatureStandardizer::apply(const std::vector<FeatureVector>& raw) const {
  std::vector<FeatureVector> out;
  out.reserve(raw.size());
  for (const auto& r : raw) out.push_back(apply(r));
  return out;
}

double squared_distance(const FeatureVector& a, const FeatureVector& b) {
  PIG_CHECK(a.size() == b.size(), "feature distance: vectors of ", a.size(), " and ", b.size(), " numbers");
  double s = 0;
  for (size_t k = 0; k < a.size(); ++k) s += (a[k] - b[k]) * (a[k] - b[k]);
  return s;
}

Retrieval retrieve(const FeatureVector& query, const std::vector<FeatureVector>& gallery, size_t target) {
  PIG_CHECK(target < gallery.size(), "retrieval: target ", target, " outside a gallery of ", gallery.size());
  std::vector<double> d(gallery.size());
  for (size_t j = 0; j < gallery.size(); ++j) d[j] = squared_distance(query, gallery[j]);
  Retrieval r;
  for (size_t j = 0; j < gallery.size(); ++j) {
    if (j != target && d[j] <= d[target]) ++r.rank;
    if (d[j] < d[r.nearest]) r.nearest = j;
  }
  return r;
}

}  // namespace pigment
