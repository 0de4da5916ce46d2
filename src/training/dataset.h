// A training-image folder in the kohya / A1111 convention, aspect-ratio buckets as kohya's sd-scripts make them,
// and a loader whose whole data order follows from a seed and a batch counter (so a resumed run sees the same
// batches as an uninterrupted one).
//
// Folder layout: images (png, jpg, jpeg, webp) with same-named caption files (`a.png` + `a.txt`), searched
// recursively. A folder named `N_name` (e.g. `10_sks dog`) repeats its images N times per epoch, and `name` is the
// caption of an image that has no caption file; the nearest such folder above an image applies (none: 1 repeat).
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "imaging/resize.h"

namespace pigment::training {

// Where warnings go (a bad image, a missing caption, an upscaled image): one line each, naming the file.
using WarningSink = std::function<void(const std::string&)>;
// Writes "warning: <line>" to stderr.
void warn_to_stderr(const std::string& line);

struct BucketSize {
  int width = 0, height = 0;
  bool operator==(const BucketSize&) const = default;
};

// kohya's make_bucket_resolutions: the square of side floor(resolution/step)*step, and for every width from
// min_size to max_size in `step`s, the height min(max_size, floor(resolution²/width/step)*step) when it is at least
// min_size, with its transpose; sorted by (width, height). Every bucket's area is at most resolution².
std::vector<BucketSize> make_bucket_resolutions(int resolution, int min_size = 256, int max_size = 1024,
                                                int step = 64);

// kohya's BucketManager.select_bucket (with upscaling allowed): the bucket of the image's own size if there is one,
// else the bucket whose aspect ratio is nearest (the first such in sorted order); the image is scaled to cover it
// (the side that fits exactly is the height when the image is wider than the bucket) and the rest cropped.
struct BucketChoice {
  int bucket = 0;                       // index into the bucket list
  int resized_width = 0, resized_height = 0;
};
BucketChoice select_bucket(const std::vector<BucketSize>& buckets, int width, int height);

// The caption line a loader uses: line k of n with chance weights[min(k, last)] / Σ (uniform when weights is empty),
// decided by the 64-bit hash h. Weights must be finite and >= 0 with a positive sum over the n lines.
size_t pick_caption_line(size_t n, const std::vector<double>& weights, uint64_t h);

struct DatasetOptions {
  std::string caption_extension = ".txt";  // with or without the dot
  // Each non-empty line of a caption file is one caption, and the loader picks one at random for every use of the
  // image (pigment's emoji data: "red apple", "红苹果", "apple, fruit, red", ...). Off: the first line, as kohya.
  bool caption_per_line = false;
  // With caption_per_line: the relative chance of line 1, 2, …; the last weight holds for every later line (empty:
  // all lines alike). "4,4,1" makes each of the first two lines four times as likely as any other line.
  std::vector<double> caption_line_weights;
  int resolution = 512;                    // the training size: buckets have area <= resolution²
  bool buckets = true;                     // off: every image resized and cropped to resolution²
  int min_bucket_size = 256, max_bucket_size = 1024, bucket_step = 64;
  WarningSink warn = warn_to_stderr;
  // Control maps (ControlNet training). conditioning_dir: the map of DATA/rel/a.png is the image file
  // conditioning_dir/rel/a.<png|jpg|jpeg|webp> (same relative path and stem, any image extension); a folder inside
  // the data folder is left out of the image scan; an image without its map is an error naming both files.
  // control_preprocess "canny": the map is the Canny edges of the training image itself, made after its crop and
  // flip (no folder then). Both empty / "none": no control maps.
  std::string conditioning_dir;
  std::string control_preprocess = "none";
  double canny_low = 100, canny_high = 200;
};

struct DataItem {
  std::string path;
  std::string caption;                 // the first (or only) caption
  std::vector<std::string> alternatives;  // with caption_per_line: every caption line (caption is the first)
  int repeats = 1;
  int width = 0, height = 0;  // of the image file
  BucketChoice bucket;
  std::string conditioning_path;  // the control map file (DatasetOptions::conditioning_dir), else ""
};

class Dataset {
 public:
  // Scans `folder` (every image is decoded once, so a broken file is reported now, not in the middle of training).
  // Unreadable images are skipped with a warning; a folder without a usable image is an error.
  static Dataset scan(const std::string& folder, DatasetOptions options = {});
  const std::vector<DataItem>& items() const { return items_; }
  // The buckets (one square when bucketing is off); items refer to them by index.
  const std::vector<BucketSize>& buckets() const { return buckets_; }
  const DatasetOptions& options() const { return options_; }
  // Images per epoch: the sum of the repeats.
  int64_t epoch_size() const;

 private:
  DatasetOptions options_;
  std::vector<DataItem> items_;
  std::vector<BucketSize> buckets_;
};

struct LoaderOptions {
  int batch_size = 1;
  uint64_t seed = 0;
  bool random_crop = false;  // off: centre crop
  bool random_flip = false;  // horizontal, with probability 1/2
  ImageFilter filter = ImageFilter::Bilinear;  // diffusers' training scripts resize with PIL bilinear
  // Data-parallel training (training/distributed.h): batch_size is the global batch, and this loader loads only
  // shard_rank's slice of it, positions [r·b, (r+1)·b) with b = batch_size / shard_count (a smaller last batch of a
  // bucket leaves the last ranks less, or nothing). Crops, flips and caption choices follow the global position, so
  // the union of the slices is the batch one process loads.
  int shard_rank = 0, shard_count = 1;
};

// Where the loader is: the next batch is batch `batch` of epoch `epoch`. With the seed and the dataset this
// determines every later batch, crop and flip.
struct LoaderState {
  uint64_t seed = 0;  // restore() adopts it, so a resumed run keeps its order
  int64_t epoch = 0;
  int64_t batch = 0;
  std::string to_json() const;
  static LoaderState from_json(const std::string& text);
};

struct Batch {
  Tensor images;  // [B, 3, H, W] float32 in [-1, 1]; every image of a batch comes from the same bucket
  std::vector<std::string> captions;
  std::vector<std::string> paths;
  int64_t epoch = 0, index = 0;  // which batch this is
  // With control maps: [B, 3, H, W] float32 in [0, 1] (ToTensor, no normalisation, as diffusers' ControlNet
  // script), cropped and flipped as the images; else undefined.
  Tensor conditioning;
  // SDXL's micro-conditioning of each image, as diffusers' train_text_to_image_sdxl.py: original height and width
  // (the file's), the crop's top and left in the resized (and flipped) image, the target height and width.
  std::vector<std::array<int64_t, 6>> time_ids;
  // Each image's position in the global batch (0..B-1 without sharding; an unreadable image leaves a gap), and how
  // many items the global batch has (all ranks' slices together).
  std::vector<int> positions;
  int64_t global_size = 0;
};

// Each epoch: every item `repeats` times, grouped by bucket, shuffled within its bucket, cut into batches of
// batch_size (the last batch of a bucket may be smaller), and the batches shuffled; all from (seed, epoch).
class DataLoader {
 public:
  // Keeps a reference: the dataset must outlive the loader.
  DataLoader(const Dataset& dataset, LoaderOptions options);
  int64_t batches_per_epoch() const;
  // The next batch. An image that cannot be read now is left out with a warning; a batch left empty is skipped
  // (when sharded, not: a rank's slice may be empty, images undefined, and every rank stays at the same batch).
  Batch next();
  LoaderState state() const { return state_; }
  void restore(const LoaderState& state);
  // The items of batch `batch` of epoch `epoch`, in order (indices into dataset.items()).
  std::vector<int> batch_items(int64_t epoch, int64_t batch);

 private:
  const std::vector<std::vector<int>>& epoch_order(int64_t epoch);
  Tensor load(const DataItem& item, uint64_t rng_seed, bool& ok, Tensor* conditioning,
             std::array<int64_t, 6>* time_ids);
  const Dataset& dataset_;
  LoaderOptions options_;
  LoaderState state_;
  int64_t cached_epoch_ = -1;
  std::vector<std::vector<int>> order_;  // the batches of cached_epoch_
};

}  // namespace pigment::training
