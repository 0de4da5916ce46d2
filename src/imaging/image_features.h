// Hand-made colour and shape features of small pictures on a white background (pigment's emoji data set), for
// measuring a text-to-image model without any downloaded network (bench/emoji_quality.cc, docs/emoji_quality.md).
//
// A picture is first brought to 64×64 RGB (bilinear if it has another size; alpha dropped), values v in [0, 1].
// A pixel is foreground when its darkest channel is below 240/255 (not near-white). Five blocks, 362 numbers:
//   colour     64  histogram of the foreground pixels' colours in 4×4×4 RGB bins, as fractions of the foreground
//                  (all 0 when there is no foreground)
//   thumbnail 192  the picture averaged down to 8×8 (RGB of each 8×8 block): colour layout
//   mask       64  the foreground fraction of each 8×8 block: the silhouette
//   gradients  32  orientation histogram of the luminance gradient (Sobel; 8 directions over 360°, each pixel's
//                  magnitude shared linearly between its two nearest directions) in each quadrant of the picture,
//                  as fractions of the picture's total gradient magnitude: the kind of edges and where they are
//   global     10  foreground fraction; mean foreground R, G, B; standard deviation of foreground luminance;
//                  foreground centroid x, y and spread (standard deviation of x and of y), in units of the side;
//                  mean gradient magnitude
// For comparisons the features are standardised (FeatureStandardizer): each dimension minus its mean over a
// reference set (the real emoji), divided by its standard deviation there (a dimension that does not vary in the
// reference is left out: scaled by 0), and each block then scaled by 1/sqrt(its size), so that every block carries
// the same total variance and the 192 thumbnail numbers do not outvote the 10 global ones.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "io/image.h"

namespace pigment {

using FeatureVector = std::vector<double>;

inline constexpr int kFeatureImageSize = 64;

struct FeatureBlock {
  std::string name;
  int offset = 0, size = 0;
};
// The blocks above, in order; their sizes add up to image_feature_dims().
const std::vector<FeatureBlock>& image_feature_blocks();
int image_feature_dims();

// Raw (unstandardised) features of one picture. Throws for an empty image.
FeatureVector image_features(const Image& image);

class FeatureStandardizer {
 public:
  // Means and standard deviations (population, 1/n) of each dimension over `reference` (at least two vectors);
  // each block of `blocks` weighted by 1/sqrt(its size) (they must cover the vectors; none: every dimension alike).
  static FeatureStandardizer fit(const std::vector<FeatureVector>& reference,
                                 const std::vector<FeatureBlock>& blocks = image_feature_blocks());
  FeatureVector apply(const FeatureVector& raw) const;
  std::vector<FeatureVector> apply(const std::vector<FeatureVector>& raw) const;
  const std::vector<double>& mean() const { return mean_; }
  const std::vector<double>& scale() const { return scale_; }  // 1/(std·sqrt(block size)), or 0

 private:
  std::vector<double> mean_, scale_;
};

double squared_distance(const FeatureVector& a, const FeatureVector& b);

// Where the prompted picture stands among `gallery` (every real emoji) by Euclidean distance from `query`: the
// number of other gallery entries at least as close as gallery[target] (0: the target is the strict nearest, top-1;
// below 5: top-5). Ties count against the target, so identical real pictures (flags drawn alike) share no top-1.
// `nearest`, if given, receives the index of the closest entry (the lowest index among equals).
struct Retrieval {
  int rank = 0;
  size_t nearest = 0;
};
Retrieval retrieve(const FeatureVector& query, const std::vector<FeatureVector>& gallery, size_t target);

}  // namespace pigment
