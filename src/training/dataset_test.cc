#include "training/dataset.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>

#include "io/image.h"

namespace pigment::training {
namespace {

namespace fs = std::filesystem;

// A temporary folder, removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("pigment_dataset_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
                                        "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

// 32×32 squares without buckets, warnings dropped: the loader tests' options.
DatasetOptions small_square_options() {
  DatasetOptions o;
  o.resolution = 32;
  o.buckets = false;
  o.warn = nullptr;
  return o;
}

// A w×h RGB image whose pixel (x, y) has red = x, green = y, blue = `blue`.
void write_image(const fs::path& p, int w, int h, uint8_t blue = 7) {
  fs::create_directories(p.parent_path());
  Image img{w, h, 3, std::vector<uint8_t>(size_t(w) * h * 3)};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* px = &img.pixels[(size_t(y) * w + x) * 3];
      px[0] = uint8_t(x), px[1] = uint8_t(y), px[2] = blue;
    }
  write_png(p.string(), img);
}

void write_text(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

struct Warnings {
  std::vector<std::string> lines;
  WarningSink sink() {
    return [this](const std::string& s) { lines.push_back(s); };
  }
  bool any_contains(const std::string& needle) const {
    for (const auto& l : lines)
      if (l.find(needle) != std::string::npos) return true;
    return false;
  }
};

TEST(Buckets, KohyaResolutions) {
  auto buckets = make_bucket_resolutions(512, 256, 1024, 64);
  std::set<std::pair<int, int>> seen;
  for (const auto& b : buckets) {
    EXPECT_LE(int64_t(b.width) * b.height, 512 * 512);
    EXPECT_EQ(b.width % 64, 0);
    EXPECT_EQ(b.height % 64, 0);
    EXPECT_GE(std::min(b.width, b.height), 256);
    EXPECT_LE(std::max(b.width, b.height), 1024);
    EXPECT_TRUE(seen.insert({b.width, b.height}).second) << "duplicate bucket";
    EXPECT_TRUE(std::find(buckets.begin(), buckets.end(), BucketSize{b.height, b.width}) != buckets.end());
  }
  EXPECT_TRUE(std::is_sorted(buckets.begin(), buckets.end(), [](const BucketSize& x, const BucketSize& y) {
    return std::pair(x.width, x.height) < std::pair(y.width, y.height);
  }));
  // floor(512²/w / 64)·64 for a few widths.
  for (auto [w, h] : {std::pair{512, 512}, {256, 1024}, {320, 768}, {448, 576}, {704, 320}, {832, 256}})
    EXPECT_TRUE(seen.count({w, h})) << w << "x" << h;
  EXPECT_FALSE(seen.count({640, 448}));  // over the area
}

TEST(Buckets, NearestAspectRatioAndCover) {
  auto buckets = make_bucket_resolutions(512, 256, 1024, 64);
  // Aspect 2: the nearest ratio is 704x320 (2.2); the image is narrower, so its width is matched and the height cropped.
  BucketChoice c = select_bucket(buckets, 1000, 500);
  EXPECT_EQ(buckets[c.bucket], (BucketSize{704, 320}));
  EXPECT_EQ(c.resized_width, 704);
  EXPECT_EQ(c.resized_height, 352);
  // An image of a bucket's own size stays as it is.
  c = select_bucket(buckets, 448, 576);
  EXPECT_EQ(buckets[c.bucket], (BucketSize{448, 576}));
  EXPECT_EQ(c.resized_width, 448);
  EXPECT_EQ(c.resized_height, 576);
  // A small square is upscaled to cover the square bucket.
  c = select_bucket(buckets, 100, 100);
  EXPECT_EQ(buckets[c.bucket], (BucketSize{512, 512}));
  EXPECT_EQ(c.resized_width, 512);
}

TEST(Dataset, KohyaFolderConvention) {
  TempDir dir;
  write_image(dir.path / "10_sks dog" / "a.png", 72, 48);
  write_image(dir.path / "10_sks dog" / "b.png", 48, 72);
  write_text(dir.path / "10_sks dog" / "b.txt", "\xEF\xBB\xBF  a photo of sks dog \nsecond line\n");
  write_image(dir.path / "10_sks dog" / "more" / "d.png", 64, 64);
  write_image(dir.path / "C.PNG", 64, 64);
  write_text(dir.path / "broken.png", "not an image");
  write_text(dir.path / "notes.md", "ignored");
  Warnings w;
  DatasetOptions o;
  o.resolution = 64;
  o.min_bucket_size = 32;
  o.max_bucket_size = 128;
  o.bucket_step = 16;
  o.warn = w.sink();
  Dataset d = Dataset::scan(dir.path.string(), o);
  ASSERT_EQ(d.items().size(), 4u);
  std::map<std::string, const DataItem*> by_name;
  for (const auto& it : d.items()) by_name[fs::path(it.path).filename().string()] = &it;
  EXPECT_EQ(by_name.at("a.png")->caption, "sks dog");
  EXPECT_EQ(by_name.at("a.png")->repeats, 10);
  EXPECT_EQ(by_name.at("b.png")->caption, "a photo of sks dog");
  EXPECT_EQ(by_name.at("d.png")->repeats, 10);  // the nearest N_name folder above
  EXPECT_EQ(by_name.at("d.png")->caption, "sks dog");
  EXPECT_EQ(by_name.at("C.PNG")->repeats, 1);
  EXPECT_EQ(by_name.at("C.PNG")->caption, "");
  EXPECT_EQ(by_name.at("b.png")->width, 48);
  EXPECT_EQ(by_name.at("b.png")->height, 72);
  EXPECT_EQ(d.epoch_size(), 31);
  EXPECT_TRUE(w.any_contains("broken.png"));
  EXPECT_TRUE(w.any_contains("C.PNG"));
  for (const auto& l : w.lines) EXPECT_EQ(l.find('\n'), std::string::npos) << l;
  // Landscape and portrait images land in transposed buckets.
  const BucketSize ba = d.buckets()[by_name.at("a.png")->bucket.bucket];
  const BucketSize bb = d.buckets()[by_name.at("b.png")->bucket.bucket];
  EXPECT_GT(ba.width, ba.height);
  EXPECT_EQ(ba.width, bb.height);
  EXPECT_EQ(ba.height, bb.width);
}

TEST(Dataset, CaptionExtensionAndErrors) {
  TempDir dir;
  write_image(dir.path / "x.png", 32, 32);
  write_text(dir.path / "x.caption", "from the caption file");
  write_text(dir.path / "x.txt", "not this one");
  DatasetOptions o;
  o.caption_extension = "caption";
  o.warn = nullptr;
  EXPECT_EQ(Dataset::scan(dir.path.string(), o).items().at(0).caption, "from the caption file");

  TempDir empty;
  write_text(empty.path / "readme.txt", "no images here");
  try {
    Dataset::scan(empty.path.string(), o);
    FAIL() << "no error for a folder without images";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(empty.path.string()), std::string::npos);
    EXPECT_EQ(msg.find('\n'), std::string::npos);
  }
  EXPECT_THROW(Dataset::scan((empty.path / "missing").string(), o), Error);
}

TEST(Dataset, SmallImageIsUpscaledWithAWarning) {
  TempDir dir;
  write_image(dir.path / "small.png", 20, 30);
  Warnings w;
  DatasetOptions o;
  o.resolution = 32;
  o.buckets = false;
  o.warn = w.sink();
  Dataset d = Dataset::scan(dir.path.string(), o);
  EXPECT_TRUE(w.any_contains("small.png"));
  EXPECT_TRUE(w.any_contains("upscaled"));
  DataLoader loader(d, LoaderOptions{});
  Batch b = loader.next();
  EXPECT_EQ(b.images.shape(), (Shape{1, 3, 32, 32}));
}

// Square training without buckets: resized so the short side is the resolution, centre-cropped, scaled to [-1, 1].
TEST(DataLoader, SquareCropAndPixelValues) {
  TempDir dir;
  write_image(dir.path / "wide.png", 48, 32, 200);
  DatasetOptions o = small_square_options();
  Dataset d = Dataset::scan(dir.path.string(), o);
  DataLoader loader(d, LoaderOptions{});
  Batch b = loader.next();
  ASSERT_EQ(b.images.shape(), (Shape{1, 3, 32, 32}));
  const float* px = b.images.f32();
  auto at = [&](int c, int y, int x) { return px[(c * 32 + y) * 32 + x]; };
  // No resize (32 is already the short side); the centre crop starts at x = 8.
  EXPECT_FLOAT_EQ(at(0, 5, 0), (8 / 255.0f - 0.5f) / 0.5f);
  EXPECT_FLOAT_EQ(at(0, 5, 31), (39 / 255.0f - 0.5f) / 0.5f);
  EXPECT_FLOAT_EQ(at(1, 17, 3), (17 / 255.0f - 0.5f) / 0.5f);
  EXPECT_FLOAT_EQ(at(2, 0, 0), (200 / 255.0f - 0.5f) / 0.5f);
  for (int64_t i = 0; i < b.images.numel(); ++i) {
    ASSERT_GE(px[i], -1.0f);
    ASSERT_LE(px[i], 1.0f);
  }
}

// SDXL's micro-conditioning: the file's size, the crop's top-left in the resized image (counted in the flipped
// image when flipped, as diffusers flips before cropping) and the target size.
TEST(DataLoader, SdxlTimeIdsGiveSizesAndCrop) {
  TempDir dir;
  write_image(dir.path / "wide.png", 49, 32);
  DatasetOptions o = small_square_options();
  Dataset d = Dataset::scan(dir.path.string(), o);
  DataLoader plain(d, LoaderOptions{});
  EXPECT_EQ(plain.next().time_ids.at(0), (std::array<int64_t, 6>{32, 49, 0, 8, 32, 32}));
  DataLoader flips(d, LoaderOptions{.batch_size = 1, .seed = 3, .random_flip = true});
  std::set<int64_t> lefts;
  for (int k = 0; k < 30; ++k) lefts.insert(flips.next().time_ids.at(0)[3]);
  EXPECT_EQ(lefts, (std::set<int64_t>{8, 9}));  // trim 17: left 8, or 17 - 8 in the flipped image
}

TEST(DataLoader, OneCaptionLineAtRandomPerUse) {
  TempDir dir;
  write_image(dir.path / "apple.png", 32, 32);
  write_text(dir.path / "apple.txt", "red apple\n红苹果\n\napple, fruit, red\n");
  DatasetOptions o = small_square_options();
  // Off (kohya): the first line only.
  Dataset first = Dataset::scan(dir.path.string(), o);
  DataLoader l1(first, LoaderOptions{});
  for (int i = 0; i < 5; ++i) EXPECT_EQ(l1.next().captions.at(0), "red apple");
  // On: every non-empty line turns up, nothing else, and the choice follows the seed.
  o.caption_per_line = true;
  Dataset all = Dataset::scan(dir.path.string(), o);
  std::map<std::string, int> seen;
  std::vector<std::string> order1, order2;
  DataLoader a(all, LoaderOptions{1, 9}), b(all, LoaderOptions{1, 9});
  for (int i = 0; i < 60; ++i) {
    order1.push_back(a.next().captions.at(0));
    order2.push_back(b.next().captions.at(0));
    ++seen[order1.back()];
  }
  EXPECT_EQ(order1, order2);
  EXPECT_EQ(seen.size(), 3u);
  for (const char* c : {"red apple", "红苹果", "apple, fruit, red"}) EXPECT_GT(seen[c], 5) << c;
}

TEST(DataLoader, CaptionLineWeightsShiftTheChoice) {
  // Unweighted: the plain hash modulo the line count (runs from before the option repeat their captions).
  for (uint64_t h : {0ull, 7ull, 123456789ull, ~0ull}) EXPECT_EQ(pick_caption_line(5, {}, h), h % 5);
  // "0,1": the first line never; "1,0": only the first.
  for (uint64_t h = 0; h < 200; ++h) {
    EXPECT_NE(pick_caption_line(3, {0, 1}, h * 0x9E3779B97F4A7C15ull), 0u);
    EXPECT_EQ(pick_caption_line(3, {1, 0}, h * 0x9E3779B97F4A7C15ull), 0u);
  }
  EXPECT_THROW(pick_caption_line(2, {0}, 1), Error);

  TempDir dir;
  write_image(dir.path / "apple.png", 32, 32);
  write_text(dir.path / "apple.txt", "red apple\n红苹果\napple, fruit, red\nfruit\n");
  DatasetOptions o = small_square_options();
  o.caption_per_line = true;
  o.caption_line_weights = {4, 4, 1};  // 4 : 4 : 1 : 1 over the four lines
  Dataset d = Dataset::scan(dir.path.string(), o);
  DataLoader loader(d, LoaderOptions{1, 5});
  std::map<std::string, int> seen;
  const int n = 2000;
  for (int i = 0; i < n; ++i) ++seen[loader.next().captions.at(0)];
  EXPECT_NEAR(seen["red apple"], n * 0.4, n * 0.05);
  EXPECT_NEAR(seen["红苹果"], n * 0.4, n * 0.05);
  EXPECT_NEAR(seen["apple, fruit, red"], n * 0.1, n * 0.03);
  EXPECT_NEAR(seen["fruit"], n * 0.1, n * 0.03);

  // Bad weights are refused when the data is scanned, before any step.
  o.caption_line_weights = {1, -1};
  EXPECT_THROW(Dataset::scan(dir.path.string(), o), Error);
  o.caption_line_weights = {0};
  EXPECT_THROW(Dataset::scan(dir.path.string(), o), Error);
  o.caption_line_weights = {2, 1};
  o.caption_per_line = false;
  EXPECT_THROW(Dataset::scan(dir.path.string(), o), Error);
}

TEST(DataLoader, RandomFlipMirrors) {
  TempDir dir;
  write_image(dir.path / "g.png", 32, 32);
  DatasetOptions o = small_square_options();
  Dataset d = Dataset::scan(dir.path.string(), o);
  DataLoader loader(d, LoaderOptions{.batch_size = 1, .seed = 3, .random_flip = true});
  int flipped = 0, plain = 0;
  for (int k = 0; k < 40; ++k) {
    Batch b = loader.next();
    const float first_red = b.images.f32()[0];
    if (first_red == (0 / 255.0f - 0.5f) / 0.5f) ++plain;
    else if (first_red == (31 / 255.0f - 0.5f) / 0.5f) ++flipped;
  }
  EXPECT_EQ(flipped + plain, 40);
  EXPECT_GT(flipped, 5);
  EXPECT_GT(plain, 5);
}

// The data order is a function of the seed and the batch counter: a loader restored from a saved state continues
// with the same batches, crops and flips as one that never stopped.
TEST(DataLoader, OrderIsReproducibleAndResumable) {
  TempDir dir;
  for (int i = 0; i < 7; ++i) write_image(dir.path / "3_thing" / ("w" + std::to_string(i) + ".png"), 40 + i, 24);
  for (int i = 0; i < 5; ++i) write_image(dir.path / "2_other" / ("t" + std::to_string(i) + ".png"), 24, 40 + i);
  DatasetOptions o;
  o.resolution = 32;
  o.min_bucket_size = 16;
  o.max_bucket_size = 64;
  o.bucket_step = 8;
  o.warn = nullptr;
  Dataset d = Dataset::scan(dir.path.string(), o);
  EXPECT_EQ(d.epoch_size(), 31);
  LoaderOptions lo{.batch_size = 4, .seed = 1234, .random_crop = true, .random_flip = true};
  DataLoader a(d, lo);
  const int64_t per_epoch = a.batches_per_epoch();

  // Every item appears `repeats` times per epoch; a batch never mixes buckets.
  std::map<int, int> count;
  for (int64_t k = 0; k < per_epoch; ++k) {
    auto ids = a.batch_items(0, k);
    EXPECT_LE(ids.size(), 4u);
    for (int id : ids) {
      ++count[id];
      EXPECT_EQ(d.items()[id].bucket.bucket, d.items()[ids[0]].bucket.bucket);
    }
  }
  for (size_t i = 0; i < d.items().size(); ++i) EXPECT_EQ(count[int(i)], d.items()[i].repeats);
  // Epochs differ, seeds differ, the same seed agrees.
  std::vector<std::vector<int>> e0, e1, other;
  DataLoader c(d, LoaderOptions{.batch_size = 4, .seed = 99});
  for (int64_t k = 0; k < per_epoch; ++k) {
    e0.push_back(a.batch_items(0, k));
    e1.push_back(a.batch_items(1, k));
    other.push_back(c.batch_items(0, k));
  }
  EXPECT_NE(e0, e1);
  EXPECT_NE(e0, other);
  DataLoader a2(d, lo);
  for (int64_t k = 0; k < per_epoch; ++k) EXPECT_EQ(a2.batch_items(0, k), e0[k]);

  // Resume across an epoch boundary.
  for (int64_t k = 0; k < per_epoch - 2; ++k) a.next();
  const std::string saved = a.state().to_json();
  DataLoader b(d, LoaderOptions{.batch_size = 4, .seed = 0, .random_crop = true, .random_flip = true});
  b.restore(LoaderState::from_json(saved));
  for (int k = 0; k < 5; ++k) {
    Batch x = a.next(), y = b.next();
    EXPECT_EQ(x.epoch, y.epoch);
    EXPECT_EQ(x.index, y.index);
    EXPECT_EQ(x.paths, y.paths);
    EXPECT_EQ(x.captions, y.captions);
    ASSERT_EQ(x.images.shape(), y.images.shape());
    EXPECT_EQ(x.images.to_vector(), y.images.to_vector());
  }
  EXPECT_EQ(a.state().epoch, 1);
  EXPECT_THROW(LoaderState::from_json("{\"epoch\": 1}"), Error);
}

// --distributed: each rank's loader loads its slice of the global batch; the slices together are the batch one
// loader loads (the same images, crops, flips and captions, at the same positions), also for a bucket's smaller last
// batch, where the last ranks get less or nothing, and every rank stays at the same batch.
TEST(DataLoader, ShardsTogetherAreTheWholeBatch) {
  TempDir dir;
  for (int i = 0; i < 7; ++i) write_image(dir.path / "3_thing" / ("w" + std::to_string(i) + ".png"), 40 + i, 24);
  for (int i = 0; i < 5; ++i) write_image(dir.path / "2_other" / ("t" + std::to_string(i) + ".png"), 24, 40 + i);
  for (int i = 0; i < 7; ++i) write_text(dir.path / "3_thing" / ("w" + std::to_string(i) + ".txt"), "a\nb\nc\nd");
  DatasetOptions o;
  o.resolution = 32;
  o.min_bucket_size = 16;
  o.max_bucket_size = 64;
  o.bucket_step = 8;
  o.caption_per_line = true;
  o.warn = nullptr;
  Dataset d = Dataset::scan(dir.path.string(), o);
  LoaderOptions whole{.batch_size = 3, .seed = 5, .random_crop = true, .random_flip = true};
  DataLoader one(d, whole);
  std::vector<std::unique_ptr<DataLoader>> ranks;
  for (int r = 0; r < 3; ++r) {
    LoaderOptions lo = whole;
    lo.shard_rank = r;
    lo.shard_count = 3;
    ranks.push_back(std::make_unique<DataLoader>(d, lo));
  }
  bool uneven = false, empty = false;
  for (int64_t k = 0; k < 2 * one.batches_per_epoch(); ++k) {
    const Batch all = one.next();
    EXPECT_EQ(all.global_size, all.images.dim(0));
    std::vector<int> positions;
    std::vector<std::string> paths, captions;
    std::vector<float> pixels;
    std::vector<int64_t> sizes;
    for (auto& l : ranks) {
      const Batch b = l->next();
      EXPECT_EQ(b.epoch, all.epoch);
      EXPECT_EQ(b.index, all.index);
      EXPECT_EQ(b.global_size, all.global_size);
      sizes.push_back(b.images.defined() ? b.images.dim(0) : 0);
      positions.insert(positions.end(), b.positions.begin(), b.positions.end());
      paths.insert(paths.end(), b.paths.begin(), b.paths.end());
      captions.insert(captions.end(), b.captions.begin(), b.captions.end());
      if (b.images.defined()) {
        const auto v = b.images.to_vector();
        pixels.insert(pixels.end(), v.begin(), v.end());
      }
    }
    EXPECT_EQ(positions, all.positions);
    EXPECT_EQ(paths, all.paths);
    EXPECT_EQ(captions, all.captions);
    EXPECT_EQ(pixels, all.images.to_vector());
    if (all.global_size < 3) uneven = true;
    if (sizes.back() == 0) empty = true;
    for (size_t r = 0; r < sizes.size(); ++r) EXPECT_LE(sizes[r], 1);
  }
  EXPECT_TRUE(uneven) << "the data set should have batches smaller than 3";
  EXPECT_TRUE(empty) << "some rank should have had no image of a batch";
}

TEST(DataLoader, ImageThatBreaksLaterIsLeftOut) {
  TempDir dir;
  write_image(dir.path / "good.png", 32, 32);
  write_image(dir.path / "bad.png", 32, 32);
  Warnings w;
  DatasetOptions o;
  o.resolution = 32;
  o.buckets = false;
  o.warn = w.sink();
  Dataset d = Dataset::scan(dir.path.string(), o);
  write_text(dir.path / "bad.png", "truncated");
  DataLoader loader(d, LoaderOptions{.batch_size = 2});
  Batch b = loader.next();
  EXPECT_EQ(b.images.dim(0), 1);
  ASSERT_EQ(b.paths.size(), 1u);
  EXPECT_NE(b.paths[0].find("good.png"), std::string::npos);
  EXPECT_TRUE(w.any_contains("bad.png"));
}

}  // namespace
}  // namespace pigment::training
