#include "training/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "imaging/control_preprocess.h"
#include "io/image.h"

namespace pigment::training {
namespace {

namespace fs = std::filesystem;

// splitmix64: a small, fully specified generator (std::shuffle and the std distributions differ between standard
// libraries, which would make the data order depend on the compiler).
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return next() % n; }  // n is small: the bias is negligible and deterministic
};

uint64_t mix(std::initializer_list<uint64_t> parts) {
  Rng r{0x5851F42D4C957F2Dull};
  uint64_t h = 0;
  for (uint64_t p : parts) {
    r.s ^= p + h;
    h = r.next();
  }
  return h;
}

template <typename T>
void shuffle(std::vector<T>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

bool is_image(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".webp";
}

std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// kohya reads the first line of a caption file.
std::string read_caption(const fs::path& p) {
  std::ifstream in(p);
  std::string line;
  std::getline(in, line);
  if (line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // UTF-8 byte-order mark
  return trim(line);
}

// Every non-empty line of a caption file.
std::vector<std::string> read_caption_lines(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) {
    if (out.empty() && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);
    line = trim(line);
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

// The nearest `N_name` folder between root and the image: (repeats, name); (1, "") when there is none.
std::pair<int, std::string> repeats_and_name(const fs::path& rel_dir) {
  static const std::regex re(R"(^(\d+)_(.+)$)");
  std::vector<std::string> parts;
  for (const auto& part : rel_dir) parts.push_back(part.string());
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    std::smatch m;
    if (std::regex_match(*it, m, re)) return {std::stoi(m[1].str()), trim(m[2].str())};
  }
  return {1, ""};
}

}  // namespace

void warn_to_stderr(const std::string& line) { std::fprintf(stderr, "warning: %s\n", line.c_str()); }

std::vector<BucketSize> make_bucket_resolutions(int resolution, int min_size, int max_size, int step) {
  PIG_CHECK(resolution > 0 && step > 0 && min_size > 0 && min_size <= max_size,
            "buckets: need resolution > 0, step > 0 and 0 < min size <= max size");
  const int64_t max_area = int64_t(resolution) * resolution;
  std::vector<BucketSize> out;
  auto add = [&](int w, int h) {
    if (std::find(out.begin(), out.end(), BucketSize{w, h}) == out.end()) out.push_back({w, h});
  };
  const int square = int(std::sqrt(double(max_area)) / step) * step;
  add(square, square);
  for (int w = min_size; w <= max_size; w += step) {
    const int h = int(std::min<int64_t>(max_size, (max_area / w) / step * step));
    if (h >= min_size) {
      add(w, h);
      add(h, w);
    }
  }
  std::sort(out.begin(), out.end(),
            [](const BucketSize& a, const BucketSize& b) { return std::pair(a.width, a.height) < std::pair(b.width, b.height); });
  return out;
}

namespace {
double line_weight(const std::vector<double>& w, size_t k) { return w[std::min(k, w.size() - 1)]; }
double weight_sum(size_t n, const std::vector<double>& w) {
  double total = 0;
  for (size_t k = 0; k < n; ++k) total += line_weight(w, k);
  return total;
}
}  // namespace

size_t pick_caption_line(size_t n, const std::vector<double>& weights, uint64_t h) {
  PIG_CHECK(n > 0, "pick_caption_line: no lines");
  if (weights.empty()) return size_t(h % n);
  const double total = weight_sum(n, weights);
  PIG_CHECK(total > 0 && std::isfinite(total), "caption line weights: no line of ", n, " has a positive weight");
  double u = double(h >> 11) * 0x1p-53 * total;
  for (size_t k = 0; k + 1 < n; ++k) {
    u -= line_weight(weights, k);
    if (u < 0) return k;
  }
  return n - 1;
}

BucketChoice select_bucket(const std::vector<BucketSize>& buckets, int width, int height) {
  PIG_CHECK(!buckets.empty() && width > 0 && height > 0, "select_bucket: no buckets or an empty image");
  const double aspect = double(width) / height;
  BucketChoice c;
  auto own = std::find(buckets.begin(), buckets.end(), BucketSize{width, height});
  if (own != buckets.end()) {
    c.bucket = int(own - buckets.begin());
  } else {
    double best = INFINITY;
    for (size_t i = 0; i < buckets.size(); ++i) {
      const double err = std::abs(double(buckets[i].width) / buckets[i].height - aspect);
      if (err < best) best = err, c.bucket = int(i);
    }
  }
  const BucketSize& b = buckets[c.bucket];
  // Cover the bucket: match the height when the image is relatively wider, else the width.
  const double scale = aspect > double(b.width) / b.height ? double(b.height) / height : double(b.width) / width;
  c.resized_width = int(width * scale + 0.5);
  c.resized_height = int(height * scale + 0.5);
  return c;
}

Dataset Dataset::scan(const std::string& folder, DatasetOptions options) {
  PIG_CHECK(fs::is_directory(folder), "training data folder '", folder, "' does not exist or is not a folder");
  if (!options.warn) options.warn = [](const std::string&) {};
  std::string cap_ext = options.caption_extension;
  if (!cap_ext.empty() && cap_ext[0] != '.') cap_ext = "." + cap_ext;

  PIG_CHECK(options.control_preprocess == "none" || options.control_preprocess == "canny",
            "--control-preprocess: unknown preprocessor '", options.control_preprocess, "' (known: none, canny)");
  PIG_CHECK(options.canny_low >= 0 && options.canny_low <= options.canny_high,
            "--canny-low/--canny-high: need 0 <= low <= high (got ", options.canny_low, ", ", options.canny_high, ")");
  PIG_CHECK(options.caption_line_weights.empty() || options.caption_per_line,
            "--caption-line-weights: needs --caption-per-line (without it only the first line is used)");
  for (double w : options.caption_line_weights)
    PIG_CHECK(std::isfinite(w) && w >= 0, "--caption-line-weights: every weight must be a number >= 0 (got ", w, ")");
  const bool maps = !options.conditioning_dir.empty() && options.control_preprocess == "none";
  fs::path cond_dir;
  if (maps) {
    PIG_CHECK(fs::is_directory(options.conditioning_dir), "control maps: the folder '", options.conditioning_dir,
              "' does not exist (put each image's control map, same name, there; or use --control-preprocess canny)");
    cond_dir = fs::weakly_canonical(options.conditioning_dir);
  }
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(folder, fs::directory_options::skip_permission_denied);
       it != fs::recursive_directory_iterator(); ++it) {
    if (maps && it->is_directory() && fs::weakly_canonical(it->path()) == cond_dir) {
      it.disable_recursion_pending();  // the control maps are not training images
      continue;
    }
    if (it->is_regular_file() && is_image(it->path())) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());  // the directory order is the file system's, not ours

  Dataset d;
  d.options_ = options;
  d.buckets_ = options.buckets ? make_bucket_resolutions(options.resolution, options.min_bucket_size,
                                                         options.max_bucket_size, options.bucket_step)
                               : std::vector<BucketSize>{{options.resolution, options.resolution}};
  for (const fs::path& f : files) {
    auto [repeats, name] = repeats_and_name(fs::relative(f.parent_path(), folder));
    if (repeats < 1) {
      options.warn("skipping " + f.string() + ": its folder asks for 0 repeats");
      continue;
    }
    DataItem item;
    item.path = f.string();
    item.repeats = repeats;
    try {
      Image img = read_image(item.path);
      item.width = img.width;
      item.height = img.height;
    } catch (const std::exception& e) {
      options.warn("skipping unreadable image " + item.path + ": " + one_line(e.what()));
      continue;
    }
    fs::path cap = fs::path(f).replace_extension(cap_ext);
    if (fs::is_regular_file(cap)) {
      item.caption = read_caption(cap);
      if (options.caption_per_line) item.alternatives = read_caption_lines(cap);
      PIG_CHECK(item.alternatives.size() < 2 || options.caption_line_weights.empty() ||
                    weight_sum(item.alternatives.size(), options.caption_line_weights) > 0,
                "--caption-line-weights: every line of ", cap.string(), " has weight 0");
    }
    if (item.caption.empty()) item.caption = name;
    if (item.caption.empty())
      options.warn("no caption for " + item.path + " (no " + cap.filename().string() +
                   ", no N_name folder): training it with an empty caption");
    if (maps) {
      const fs::path rel = fs::relative(f, folder);
      const fs::path stem = cond_dir / rel.parent_path() / rel.stem();
      for (const char* ext : {".png", ".jpg", ".jpeg", ".webp", ".PNG", ".JPG", ".JPEG", ".WEBP"}) {
        fs::path c = stem;
        c += ext;
        if (fs::is_regular_file(c)) {
          item.conditioning_path = c.string();
          break;
        }
      }
      PIG_CHECK(!item.conditioning_path.empty(), "no control map for ", item.path, ": expected ", stem.string(),
                ".png (or .jpg, .jpeg, .webp), the same name under ", options.conditioning_dir,
                " (or use --control-preprocess canny)");
      try {
        (void)read_image(item.conditioning_path);
      } catch (const std::exception& e) {
        fail("the control map ", item.conditioning_path, " of ", item.path, " cannot be read: ", one_line(e.what()));
      }
    }
    item.bucket = select_bucket(d.buckets_, item.width, item.height);
    const BucketSize& b = d.buckets_[item.bucket.bucket];
    if (item.bucket.resized_width > item.width || item.bucket.resized_height > item.height)
      options.warn(item.path + " (" + std::to_string(item.width) + "x" + std::to_string(item.height) +
                   ") is smaller than its bucket " + std::to_string(b.width) + "x" + std::to_string(b.height) +
                   ": upscaled");
    d.items_.push_back(std::move(item));
  }
  PIG_CHECK(!d.items_.empty(), "training data folder '", folder, "' has no usable images (png, jpg, jpeg, webp)");
  return d;
}

int64_t Dataset::epoch_size() const {
  int64_t n = 0;
  for (const auto& it : items_) n += it.repeats;
  return n;
}

std::string LoaderState::to_json() const {
  return nlohmann::json{{"seed", std::to_string(seed)}, {"epoch", epoch}, {"batch", batch}}.dump();
}

LoaderState LoaderState::from_json(const std::string& text) {
  try {
    auto j = nlohmann::json::parse(text);
    LoaderState s;
    s.seed = std::stoull(j.at("seed").get<std::string>());  // a string: JSON numbers lose 64-bit seeds
    s.epoch = j.at("epoch").get<int64_t>();
    s.batch = j.at("batch").get<int64_t>();
    PIG_CHECK(s.epoch >= 0 && s.batch >= 0, "negative epoch or batch");
    return s;
  } catch (const std::exception& e) {
    fail("data loader state: expected {\"seed\": \"…\", \"epoch\": n, \"batch\": n}: ", one_line(e.what()));
  }
}

DataLoader::DataLoader(const Dataset& dataset, LoaderOptions options) : dataset_(dataset), options_(options) {
  PIG_CHECK(options.batch_size >= 1, "data loader: batch size must be at least 1");
  state_.seed = options.seed;
}

const std::vector<std::vector<int>>& DataLoader::epoch_order(int64_t epoch) {
  if (epoch == cached_epoch_) return order_;
  std::vector<std::vector<int>> per_bucket(dataset_.buckets().size());
  const auto& items = dataset_.items();
  for (size_t i = 0; i < items.size(); ++i)
    for (int r = 0; r < items[i].repeats; ++r) per_bucket[items[i].bucket.bucket].push_back(int(i));
  Rng rng{mix({state_.seed, uint64_t(epoch)})};
  order_.clear();
  for (auto& list : per_bucket) {
    shuffle(list, rng);
    for (size_t b = 0; b < list.size(); b += options_.batch_size)
      order_.emplace_back(list.begin() + b, list.begin() + std::min(list.size(), b + options_.batch_size));
  }
  shuffle(order_, rng);
  cached_epoch_ = epoch;
  return order_;
}

int64_t DataLoader::batches_per_epoch() const {
  std::vector<int64_t> count(dataset_.buckets().size());
  for (const auto& it : dataset_.items()) count[it.bucket.bucket] += it.repeats;
  int64_t n = 0;
  for (int64_t c : count) n += (c + options_.batch_size - 1) / options_.batch_size;
  return n;
}

std::vector<int> DataLoader::batch_items(int64_t epoch, int64_t batch) {
  const auto& order = epoch_order(epoch);
  PIG_CHECK(batch >= 0 && batch < int64_t(order.size()), "data loader: batch ", batch, " out of range (epoch has ",
            order.size(), ")");
  return order[batch];
}

void DataLoader::restore(const LoaderState& state) {
  PIG_CHECK(state.batch <= batches_per_epoch(), "data loader state: batch ", state.batch, " but an epoch has ",
            batches_per_epoch(), " batches (a different dataset or batch size?)");
  if (state.seed != state_.seed) cached_epoch_ = -1;
  state_ = state;
}

Tensor DataLoader::load(const DataItem& item, uint64_t rng_seed, bool& ok, Tensor* conditioning,
                        std::array<int64_t, 6>* time_ids) {
  ok = false;
  Image img, map;
  try {
    img = to_rgb(read_image(item.path));
  } catch (const std::exception& e) {
    dataset_.options().warn("leaving out unreadable image " + item.path + ": " + one_line(e.what()));
    return {};
  }
  if (!item.conditioning_path.empty()) {
    try {
      map = to_rgb(read_image(item.conditioning_path));
    } catch (const std::exception& e) {
      dataset_.options().warn("leaving out " + item.path + ": its control map " + item.conditioning_path +
                              " cannot be read: " + one_line(e.what()));
      return {};
    }
  }
  const BucketSize& b = dataset_.buckets()[item.bucket.bucket];
  // Resize to cover the bucket as chosen at scan time (for the file's size now, should it have changed).
  BucketChoice c = select_bucket(dataset_.buckets(), img.width, img.height);
  if (c.bucket != item.bucket.bucket || img.width != item.width || img.height != item.height) {
    dataset_.options().warn("leaving out " + item.path + ": the file changed since the data folder was scanned");
    return {};
  }
  if (c.resized_width != img.width || c.resized_height != img.height)
    img = resize_image(img, c.resized_width, c.resized_height, options_.filter);
  // The control map is brought to the image's covering size (stretched if its aspect differs), then cut and
  // flipped exactly as the image.
  if (!map.pixels.empty() && (map.width != img.width || map.height != img.height))
    map = resize_image(map, img.width, img.height, options_.filter);
  Rng rng{rng_seed};
  const int trim_x = img.width - b.width, trim_y = img.height - b.height;
  const int x0 = options_.random_crop ? int(rng.below(uint64_t(trim_x) + 1)) : trim_x / 2;
  const int y0 = options_.random_crop ? int(rng.below(uint64_t(trim_y) + 1)) : trim_y / 2;
  const bool flip = options_.random_flip && (rng.next() >> 63);
  // diffusers flips before cropping, so its crop's left edge is counted in the flipped image.
  if (time_ids) *time_ids = {item.height, item.width, y0, flip ? trim_x - x0 : x0, b.height, b.width};
  auto cut = [&](const Image& src) {
    Image out{b.width, b.height, 3, std::vector<uint8_t>(size_t(b.width) * b.height * 3)};
    for (int y = 0; y < b.height; ++y)
      for (int x = 0; x < b.width; ++x) {
        const int sx = x0 + (flip ? b.width - 1 - x : x);
        for (int c3 = 0; c3 < 3; ++c3) out.pixels[(size_t(y) * b.width + x) * 3 + c3] = src.at(sx, y0 + y, c3);
      }
    return out;
  };
  const Image crop = cut(img);
  Tensor t = Tensor::empty({3, b.height, b.width});
  float* out = t.f32();
  for (int c3 = 0; c3 < 3; ++c3)
    for (int y = 0; y < b.height; ++y)
      for (int x = 0; x < b.width; ++x)
        // ToTensor then Normalize(0.5, 0.5), as diffusers' scripts: (v/255 - 0.5) / 0.5.
        out[(size_t(c3) * b.height + y) * b.width + x] = (float(crop.at(x, y, c3)) / 255.0f - 0.5f) / 0.5f;
  const DatasetOptions& dopt = dataset_.options();
  if (conditioning && (!map.pixels.empty() || dopt.control_preprocess == "canny")) {
    const Image m = map.pixels.empty() ? canny_edges(crop, dopt.canny_low, dopt.canny_high) : cut(map);
    *conditioning = Tensor::empty({3, b.height, b.width});
    float* o = conditioning->f32();
    for (int c3 = 0; c3 < 3; ++c3)
      for (int y = 0; y < b.height; ++y)
        for (int x = 0; x < b.width; ++x) o[(size_t(c3) * b.height + y) * b.width + x] = float(m.at(x, y, c3)) / 255.0f;
  }
  ok = true;
  return t;
}

Batch DataLoader::next() {
  const int64_t per_epoch = batches_per_epoch();
  for (int64_t empty = 0;; ++empty) {
    PIG_CHECK(empty < per_epoch, "data loader: no image could be read for a whole epoch");
    if (state_.batch >= per_epoch) state_ = {state_.seed, state_.epoch + 1, 0};
    const int64_t epoch = state_.epoch, index = state_.batch++;
    const std::vector<int> ids = batch_items(epoch, index);
    std::vector<Tensor> images, maps;
    Batch batch;
    batch.epoch = epoch;
    batch.index = index;
    batch.global_size = int64_t(ids.size());
    const int shards = std::max(1, options_.shard_count);
    const size_t per = size_t(std::max(1, options_.batch_size / shards));
    const size_t first = shards == 1 ? 0 : std::min(ids.size(), per * size_t(options_.shard_rank));
    const size_t end = shards == 1 ? ids.size() : std::min(ids.size(), first + per);
    for (size_t k = first; k < end; ++k) {
      const DataItem& item = dataset_.items()[ids[k]];
      bool ok = false;
      Tensor map;
      std::array<int64_t, 6> ids6{};
      Tensor img = load(item, mix({state_.seed, uint64_t(epoch), uint64_t(index), k, 1}), ok, &map, &ids6);
      if (!ok) continue;
      images.push_back(img);
      batch.time_ids.push_back(ids6);
      if (map.defined()) maps.push_back(map);
      const auto& alt = item.alternatives;
      batch.captions.push_back(
          alt.size() > 1 ? alt[pick_caption_line(alt.size(), dataset_.options().caption_line_weights,
                                                 mix({state_.seed, uint64_t(epoch), uint64_t(index), k, 2}))]
                         : item.caption);
      batch.paths.push_back(item.path);
      batch.positions.push_back(int(k));
    }
    if (images.empty() && shards > 1) return batch;
    if (images.empty()) continue;
    const Shape& s = images[0].shape();
    batch.images = Tensor::empty({int64_t(images.size()), s[0], s[1], s[2]});
    for (size_t k = 0; k < images.size(); ++k)
      std::copy(images[k].f32(), images[k].f32() + images[k].numel(), batch.images.f32() + k * images[k].numel());
    if (!maps.empty()) {
      PIG_CHECK(maps.size() == images.size(), "data loader: a batch with control maps for only some images");
      batch.conditioning = Tensor::empty(batch.images.shape());
      for (size_t k = 0; k < maps.size(); ++k)
        std::copy(maps[k].f32(), maps[k].f32() + maps[k].numel(), batch.conditioning.f32() + k * maps[k].numel());
    }
    return batch;
  }
}

}  // namespace pigment::training
