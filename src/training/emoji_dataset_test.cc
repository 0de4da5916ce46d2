#include "training/emoji_dataset.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <unistd.h>

#include "core/error.h"
#include "io/file_hash.h"
#include "io/image.h"
#include "training/dataset.h"

namespace pigment::training {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("pigment_emoji_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The data set needs Debian's font and Unicode files; without them these tests fail (never skip) and say why.
void require_sources() {
  ASSERT_TRUE(fs::exists(kNotoColorEmojiPath))
      << kNotoColorEmojiPath << " is missing: run scripts/setup (Debian package fonts-noto-color-emoji)";
  ASSERT_TRUE(fs::exists(kEmojiTestPath)) << kEmojiTestPath << " is missing: run scripts/setup (unicode-data)";
  ASSERT_TRUE(fs::exists(std::string(kCldrCommonDir) + "/annotationsDerived/zh.xml"))
      << kCldrCommonDir << " is missing: run scripts/setup (unicode-cldr-core)";
}

TEST(EmojiRenderer, ShapesSequencesIntoOneGlyph) {
  require_sources();
  EmojiRenderer r;
  EXPECT_EQ(r.strike_width(), 136);
  EXPECT_EQ(r.strike_height(), 128);
  EXPECT_EQ(r.canvas_side(), 136);
  const unsigned apple = r.glyph_for(U"\U0001F34E");
  EXPECT_NE(apple, 0u);
  // Ligatures: a ZWJ family, a skin tone, a flag from two regional indicators, a subdivision flag from tag
  // characters, a keycap; each is one glyph, different from its first code point's.
  const unsigned man = r.glyph_for(U"\U0001F468");
  for (const char* seq : {"1F468 200D 1F469 200D 1F466", "1F468 1F3FD", "1F1EF 1F1F5",
                          "1F3F4 E0067 E0062 E0065 E006E E0067 E007F", "0023 FE0F 20E3"}) {
    std::u32string cps = parse_code_points(seq, "test");
    unsigned g = r.glyph_for(cps);
    EXPECT_NE(g, 0u) << seq;
    EXPECT_NE(g, r.glyph_for(cps.substr(0, 1))) << seq;
  }
  EXPECT_NE(r.glyph_for(U"\U0001F468\u200D\U0001F469\u200D\U0001F466"), man);
  // The emoji presentation selector is dropped: ☺️ and ☺ are the same glyph.
  EXPECT_EQ(r.glyph_for(U"\u263A\uFE0F"), r.glyph_for(U"\u263A"));
  // Not one glyph: a ZWJ sequence the font has no ligature for, two emoji, a letter the font lacks.
  EXPECT_EQ(r.glyph_for(U"\U0001F34E\u200D\U0001F34E"), 0u);
  EXPECT_EQ(r.glyph_for(U"\U0001F34E\U0001F34E"), 0u);
  EXPECT_EQ(r.glyph_for(U"A"), 0u);
  EXPECT_FALSE(r.render(U"A", 64).has_value());
  EXPECT_THROW(r.render(U"\U0001F34E", 137), Error);
}

TEST(EmojiRenderer, RedAppleOnWhite) {
  require_sources();
  EmojiRenderer r;
  std::optional<Image> img = r.render(U"\U0001F34E", 64);
  ASSERT_TRUE(img.has_value());
  ASSERT_EQ(img->width, 64);
  ASSERT_EQ(img->height, 64);
  ASSERT_EQ(img->channels, 3);
  // Corners are white background; the centre is mostly red.
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(img->at(0, 0, c), 255);
    EXPECT_EQ(img->at(63, 63, c), 255);
  }
  int red = 0, white = 0;
  for (int y = 16; y < 48; ++y)
    for (int x = 16; x < 48; ++x) {
      int R = img->at(x, y, 0), G = img->at(x, y, 1), B = img->at(x, y, 2);
      red += R > 150 && G < 100 && B < 100;
    }
  for (size_t i = 0; i < img->pixels.size(); i += 3)
    white += img->pixels[i] == 255 && img->pixels[i + 1] == 255 && img->pixels[i + 2] == 255;
  EXPECT_GT(red, 32 * 32 * 6 / 10);       // most of the centre is red
  EXPECT_LT(white, 64 * 64 * 6 / 10);     // the picture fills a good part of the square
  EXPECT_GT(white, 64 * 64 / 10);         // with white around it
}

TEST(EmojiDataset, CaptionsOfOneEmoji) {
  EmojiEntry e;
  e.code_points = U"\U0001F34E";
  e.name = "red apple";
  e.group = "Food & Drink";
  e.subgroup = "food-fruit";
  Annotation en{"red apple", {"apple", "fruit", "red"}}, zh{"红苹果", {"水果", "红", "红苹果", "苹果"}};
  KeywordCounts counts{{"apple", 2}, {"fruit", 20}, {"red", 30}, {"水果", 20}, {"红", 3}, {"红苹果", 1}, {"苹果", 2}};
  EXPECT_EQ(emoji_captions(e, &en, &zh, counts),
            (std::vector<std::string>{"red apple", "红苹果", "apple, fruit, red", "水果，红，红苹果，苹果",
                                      "red apple, food fruit, food & drink", "apple", "红", "苹果"}));
  // Without CLDR (an emoji newer than the CLDR release): the name and the group line.
  EXPECT_EQ(emoji_captions(e, nullptr, nullptr, counts),
            (std::vector<std::string>{"red apple", "red apple, food fruit, food & drink"}));
}

TEST(EmojiDataset, HeldOutSplitIsStableAndAboutFivePercent) {
  require_sources();
  auto entries = read_emoji_test();
  int held = 0, held_seed1 = 0, moved = 0;
  for (const auto& e : entries) {
    bool h = emoji_is_heldout(e.code_points, 0.05, 0);
    held += h;
    held_seed1 += emoji_is_heldout(e.code_points, 0.05, 1);
    moved += h != emoji_is_heldout(e.code_points, 0.05, 1);
    EXPECT_EQ(h, emoji_is_heldout(e.code_points, 0.05, 0));
    EXPECT_FALSE(emoji_is_heldout(e.code_points, 0.0, 0));
  }
  const int n = int(entries.size());
  EXPECT_GT(held, n * 3 / 100);
  EXPECT_LT(held, n * 7 / 100);
  EXPECT_GT(held_seed1, n * 3 / 100);
  EXPECT_LT(held_seed1, n * 7 / 100);
  EXPECT_GT(moved, 0);  // another seed holds out other emoji
}

// The CI case: a handful of emoji written end to end. The SHA-256 values pin the renderer's exact output (FreeType's
// decoding of the font's PNG strikes, compositing on white, centring, area averaging, PNG encoding) as recorded from
// a real run with Debian 12's fonts-noto-color-emoji 2.042, FreeType 2.12.1, HarfBuzz 6.0.0 and libpng/zlib; a
// change to any of these steps (or to the font) changes them.
TEST(EmojiDataset, WritesAHandfulExactly) {
  require_sources();
  TempDir dir;
  EmojiDatasetOptions o;
  for (const char* seq : {"1F34E", "1F468 200D 1F469 200D 1F466", "1F1EF 1F1F5", "1F469 1F3FD 200D 1F4BB",
                          "1F3F4 E0067 E0062 E0065 E006E E0067 E007F"})
    o.only.push_back(parse_code_points(seq, "test"));
  EmojiDatasetReport r = write_emoji_dataset(dir.path.string(), o);
  EXPECT_EQ(r.candidates, 5);
  EXPECT_EQ(r.written, 5);
  EXPECT_EQ(r.heldout, 1);
  EXPECT_TRUE(r.skipped.empty());

  struct Expected {
    std::string stem, png_sha256, captions;
  };
  const std::vector<Expected> expected = {
      {"train/1f34e",
       "e25c32737f16c3fb389d936f9b53d8e8438d23fba07fb7d05d724744144fbb29",
       "red apple\n红苹果\napple, fruit, red\n水果，红，红苹果，苹果\nred apple, food fruit, food & drink\napple\n红\n苹果\n"},
      {"train/1f468-200d-1f469-200d-1f466",
       "daef5cd05ceababaa819f8484b51ea00f148a8faeff13083c78990d061f8ac42",
       "family: man, woman, boy\n家庭: 男人女人男孩\nboy, family, man, woman\n女人，家庭，男人，男孩\n"
       "family: man, woman, boy, family, people & body\n"},
      {"train/1f1ef-1f1f5",
       "d21b19506f5ffb74e9c8ece9e91d7c915a008d39aee76d4499188253477b9444",
       "flag: Japan\n旗: 日本\nflag: Japan, country flag, flags\n"},
      {"train/1f469-1f3fd-200d-1f4bb",
       "a631bb89d1205a38f70aaaac4c5b4d77175c0e347a45d6790c2842db3bb88c1a",
       "woman technologist: medium skin tone\n女程序员: 中等肤色\n"
       "coder, developer, inventor, medium skin tone, software, technologist, woman\n"
       "中等肤色，发明家，女，女程序员，开发人员，码农，程序员，软件\n"
       "woman technologist: medium skin tone, person role, people & body\n"
       "coder\ndeveloper\ninventor\nsoftware\ntechnologist\n发明家\n女程序员\n开发人员\n码农\n程序员\n软件\n"},
      {"heldout/1f3f4-e0067-e0062-e0065-e006e-e0067-e007f",
       "5e6a66864d4423487f1b77c8446910775127fb0a0887c2f203e887fc00c66d9c",
       "flag: England\n旗: 英格兰\nflag: England, subdivision flag, flags\n"},
  };
  for (const auto& e : expected) {
    const fs::path png = dir.path / (e.stem + ".png"), txt = dir.path / (e.stem + ".txt");
    ASSERT_TRUE(fs::exists(png)) << png;
    ASSERT_TRUE(fs::exists(txt)) << txt;
    EXPECT_EQ(slurp(txt), e.captions) << txt;
    EXPECT_EQ(sha256_file(png.string()), e.png_sha256) << png;
    Image img = read_image(png.string());
    EXPECT_EQ(img.width, 64);
    EXPECT_EQ(img.height, 64);
    EXPECT_EQ(img.channels, 3);
    int non_white = 0;
    for (uint8_t v : img.pixels) non_white += v != 255;
    EXPECT_GT(non_white, 1000) << png;  // a picture, not a blank square
  }
  // Nothing else in the folders.
  int files = 0;
  for (const auto& f : fs::recursive_directory_iterator(dir.path)) files += f.is_regular_file();
  EXPECT_EQ(files, 11);

  // metadata.jsonl: one object per emoji in the order given.
  std::istringstream meta(slurp(dir.path / "metadata.jsonl"));
  std::string line;
  std::vector<nlohmann::json> rows;
  while (std::getline(meta, line)) rows.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[0]["file"], "train/1f34e.png");
  EXPECT_EQ(rows[0]["emoji"], "🍎");
  EXPECT_EQ(rows[0]["code_points"], nlohmann::json::array({"1F34E"}));
  EXPECT_EQ(rows[0]["name"], "red apple");
  EXPECT_EQ(rows[0]["group"], "Food & Drink");
  EXPECT_EQ(rows[0]["subgroup"], "food-fruit");
  EXPECT_EQ(rows[0]["en_keywords"], nlohmann::json::array({"apple", "fruit", "red"}));
  EXPECT_EQ(rows[0]["zh_name"], "红苹果");
  EXPECT_EQ(rows[0]["zh_keywords"], nlohmann::json::array({"水果", "红", "红苹果", "苹果"}));
  EXPECT_EQ(rows[0]["split"], "train");
  EXPECT_EQ(rows[1]["code_points"], nlohmann::json::array({"1F468", "200D", "1F469", "200D", "1F466"}));
  EXPECT_EQ(rows[4]["split"], "heldout");
  EXPECT_EQ(rows[4]["file"], "heldout/1f3f4-e0067-e0062-e0065-e006e-e0067-e007f.png");

  // The trainer's folder reader takes train/ as it is: four pictures, captioned by their first line.
  DatasetOptions dopt;
  dopt.resolution = 64, dopt.buckets = false;
  Dataset ds = Dataset::scan((dir.path / "train").string(), dopt);
  ASSERT_EQ(ds.items().size(), 4u);
  std::set<std::string> first_lines;
  for (const auto& item : ds.items()) first_lines.insert(item.caption);
  EXPECT_EQ(first_lines, (std::set<std::string>{"red apple", "family: man, woman, boy", "flag: Japan",
                                                "woman technologist: medium skin tone"}));

  // Writing again into the same folder gives the same bytes and removes pictures a smaller run no longer writes.
  const std::string apple_hash = sha256_file((dir.path / "train/1f34e.png").string());
  o.only.resize(1);
  r = write_emoji_dataset(dir.path.string(), o);
  EXPECT_EQ(r.written, 1);
  EXPECT_EQ(sha256_file((dir.path / "train/1f34e.png").string()), apple_hash);
  EXPECT_FALSE(fs::exists(dir.path / "train/1f1ef-1f1f5.png"));
  EXPECT_FALSE(fs::exists(dir.path / "heldout/1f3f4-e0067-e0062-e0065-e006e-e0067-e007f.png"));
}

TEST(EmojiDataset, ExtraRenderingsAreTheSameEmojiMovedALittle) {
  require_sources();
  TempDir dir;
  EmojiDatasetOptions o;
  o.only = {U"\U0001F34E"};
  o.renderings = 3;
  o.heldout_fraction = 0;
  EmojiDatasetReport r = write_emoji_dataset(dir.path.string(), o);
  EXPECT_EQ(r.written, 1);  // one emoji, three pictures
  const Image base = read_image((dir.path / "train/1f34e.png").string());
  EXPECT_EQ(slurp(dir.path / "train/1f34e-r2.txt"), slurp(dir.path / "train/1f34e.txt"));
  nlohmann::json meta = nlohmann::json::parse(slurp(dir.path / "metadata.jsonl"));
  EXPECT_EQ(meta["file"], "train/1f34e.png");
  EXPECT_EQ(meta["renderings"], (nlohmann::json{"train/1f34e-r1.png", "train/1f34e-r2.png"}));
  // The centred picture is the one a data set without extra renderings has.
  EmojiRenderer renderer;
  EXPECT_EQ(base.pixels, renderer.render(U"\U0001F34E", 64)->pixels);
  for (int k = 1; k < 3; ++k) {
    const Image img = read_image((dir.path / ("train/1f34e-r" + std::to_string(k) + ".png")).string());
    ASSERT_EQ(img.pixels.size(), base.pixels.size());
    EXPECT_NE(img.pixels, base.pixels) << "rendering " << k;
    const EmojiPlacement p = emoji_rendering_placement(U"\U0001F34E", k);
    EXPECT_GE(p.margin, 0);
    EXPECT_LE(p.margin, 16);
    EXPECT_LE(std::abs(p.dx), 6);
    EXPECT_LE(std::abs(p.dy), 6);
    // Still mostly the same red apple: the mean colour is within a few levels of the centred one's.
    double sum_base = 0, sum = 0;
    for (size_t i = 0; i < img.pixels.size(); ++i) sum_base += base.pixels[i], sum += img.pixels[i];
    EXPECT_LT(std::abs(sum - sum_base) / double(img.pixels.size()), 12.0) << "rendering " << k;
  }
  // Deterministic, and different renderings differ.
  EXPECT_EQ(emoji_rendering_placement(U"\U0001F34E", 1).dx, emoji_rendering_placement(U"\U0001F34E", 1).dx);
  EXPECT_NE(slurp(dir.path / "train/1f34e-r1.png"), slurp(dir.path / "train/1f34e-r2.png"));
  o.renderings = 0;
  EXPECT_THROW(write_emoji_dataset(dir.path.string(), o), Error);
}

TEST(EmojiDataset, RefusesForeignFoldersAndUnknownEmoji) {
  require_sources();
  TempDir dir;
  fs::create_directories(dir.path);
  std::ofstream(dir.path / "notes.txt") << "mine";
  EmojiDatasetOptions o;
  o.only = {U"\U0001F34E"};
  EXPECT_THROW(write_emoji_dataset(dir.path.string(), o), Error);
  EXPECT_TRUE(fs::exists(dir.path / "notes.txt"));
  fs::remove(dir.path / "notes.txt");
  o.only = {U"\U0001F34E\U0001F34E"};
  try {
    write_emoji_dataset(dir.path.string(), o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("1F34E 1F34E"), std::string::npos) << e.what();
  }
  o.only.clear();
  o.font = (dir.path / "missing.ttf").string();
  try {
    write_emoji_dataset(dir.path.string(), o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("scripts/setup"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace pigment::training
