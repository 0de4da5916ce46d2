#include "training/emoji_dataset.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "io/image.h"
#include "text/unicode_text.h"

namespace pigment::training {
namespace {

namespace fs = std::filesystem;

std::string lower_ascii(std::string s) {
  for (char& c : s) c = char(std::tolower((unsigned char)c));
  return s;
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

// Written whole to a temporary file and renamed into place.
void write_file(const fs::path& path, const std::string& text) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    PIG_CHECK(out, tmp.string(), ": cannot create the file");
    out << text;
    out.close();
    PIG_CHECK(out, tmp.string(), ": write failed");
  }
  fs::rename(tmp, path);
}

}  // namespace

KeywordCounts count_keywords(const std::vector<EmojiEntry>& entries, const Annotations& en, const Annotations& zh) {
  std::map<std::string, std::set<std::u32string>> carriers;
  for (const EmojiEntry& e : entries) {
    const std::u32string key = annotation_key(e.code_points);
    std::u32string base;
    for (char32_t c : key)
      if (c < 0x1F3FB || c > 0x1F3FF) base.push_back(c);
    for (const Annotations* a : {&en, &zh}) {
      auto it = a->find(key);
      if (it != a->end())
        for (const auto& k : it->second.keywords) carriers[k].insert(base);
    }
  }
  KeywordCounts out;
  for (const auto& [k, set] : carriers) out[k] = int(set.size());
  return out;
}

std::vector<std::string> emoji_captions(const EmojiEntry& e, const Annotation* en, const Annotation* zh,
                                        const KeywordCounts& counts) {
  std::vector<std::string> lines;
  std::set<std::string> seen;
  auto add = [&](const std::string& s) {
    if (!s.empty() && seen.insert(s).second) lines.push_back(s);
  };
  add(e.name);
  if (en) add(en->name);
  if (zh) add(zh->name);
  if (en && en->keywords.size() > 1) add(join(en->keywords, ", "));
  if (zh && zh->keywords.size() > 1) add(join(zh->keywords, "，"));
  // "red apple, food fruit, food & drink": the name with its subgroup and group.
  std::string subgroup = e.subgroup;
  std::replace(subgroup.begin(), subgroup.end(), '-', ' ');
  add(e.name + ", " + subgroup + ", " + lower_ascii(e.group));
  auto specific = [&](const std::string& k) {
    auto it = counts.find(k);
    return it != counts.end() && it->second <= kMaxEmojiPerKeywordCaption;
  };
  for (const Annotation* a : {en, zh})
    if (a)
      for (const auto& k : a->keywords)
        if (specific(k)) add(k);
  return lines;
}

bool emoji_is_heldout(const std::u32string& code_points, double fraction, uint64_t seed) {
  // FNV-1a over the code points (4 bytes each, little-endian) and the seed, then splitmix64's finaliser.
  uint64_t h = 0xCBF29CE484222325ull;
  auto eat = [&](uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) h = (h ^ ((v >> (8 * i)) & 0xFF)) * 0x100000001B3ull;
  };
  eat(seed, 8);
  for (char32_t c : code_points) eat(uint64_t(c), 4);
  h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
  h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
  h ^= h >> 31;
  return double(h >> 11) * 0x1.0p-53 < fraction;
}

std::string emoji_file_stem(const std::u32string& code_points) {
  std::string out;
  char buf[16];
  for (char32_t c : code_points) {
    std::snprintf(buf, sizeof buf, "%s%04x", out.empty() ? "" : "-", unsigned(c));
    out += buf;
  }
  return out;
}

EmojiPlacement emoji_rendering_placement(const std::u32string& code_points, int k) {
  uint64_t h = 0x9E3779B97F4A7C15ull * uint64_t(k + 1);  // splitmix64 over the code points and k
  auto mix = [&h](uint64_t v) {
    h += v + 0x9E3779B97F4A7C15ull;
    uint64_t z = h;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  for (char32_t c : code_points) mix(uint64_t(c));
  EmojiPlacement p;
  p.margin = int(mix(1) % 17);
  p.dx = int(mix(2) % 13) - 6;
  p.dy = int(mix(3) % 13) - 6;
  return p;
}

EmojiDatasetReport write_emoji_dataset(const std::string& out_dir, const EmojiDatasetOptions& o) {
  PIG_CHECK(o.heldout_fraction >= 0 && o.heldout_fraction < 1, "--heldout-fraction ", o.heldout_fraction,
            ": expected a number in [0, 1)");
  PIG_CHECK(o.limit >= 0, "--limit ", o.limit, ": expected 0 (all) or more");
  PIG_CHECK(o.renderings >= 1 && o.renderings <= 100, "--renderings ", o.renderings, ": expected 1 to 100");
  // Open every source first, so that a missing package fails before anything is written.
  EmojiRenderer renderer(o.font);
  PIG_CHECK(o.size > 0 && o.size <= renderer.canvas_side(), "--size ", o.size, ": expected 1 to ",
            renderer.canvas_side(), " (the font's strike; pictures are only scaled down)");
  std::vector<EmojiEntry> entries = read_emoji_test(o.emoji_test);
  const Annotations en = read_cldr_annotations("en", o.cldr_dir), zh = read_cldr_annotations("zh", o.cldr_dir);
  const KeywordCounts keyword_counts = count_keywords(entries, en, zh);
  if (!o.only.empty()) {
    std::vector<EmojiEntry> picked;
    for (const auto& cps : o.only) {
      auto it = std::find_if(entries.begin(), entries.end(), [&](const EmojiEntry& e) { return e.code_points == cps; });
      PIG_CHECK(it != entries.end(), "emoji ", join(code_point_hex(cps), " "), " (", u32_to_utf8(cps),
                "): not a fully-qualified emoji of ", o.emoji_test);
      picked.push_back(*it);
    }
    entries = std::move(picked);
  }

  // The output folder: new, empty, or an earlier emoji data set (whose train/, heldout/ and metadata are replaced,
  // so that no stale picture of another split or seed survives).
  const fs::path root(out_dir);
  if (fs::exists(root)) {
    PIG_CHECK(fs::is_directory(root), out_dir, ": exists and is not a folder");
    PIG_CHECK(fs::is_empty(root) || fs::exists(root / "metadata.jsonl"), out_dir,
              ": not empty and not an emoji data set (no metadata.jsonl); give a new or empty folder");
    fs::remove_all(root / "train");
    fs::remove_all(root / "heldout");
    fs::remove(root / "metadata.jsonl");
  }
  fs::create_directories(root / "train");
  fs::create_directories(root / "heldout");

  EmojiDatasetReport report;
  std::string metadata;
  for (const EmojiEntry& e : entries) {
    if (o.limit > 0 && report.written >= o.limit) break;
    ++report.candidates;
    std::optional<Image> img = renderer.render(e.code_points, o.size);
    if (!img) {
      report.skipped.push_back(join(code_point_hex(e.code_points), " ") + " " + e.name);
      continue;
    }
    const std::u32string key = annotation_key(e.code_points);
    auto fen = en.find(key), fzh = zh.find(key);
    const Annotation* a_en = fen == en.end() ? nullptr : &fen->second;
    const Annotation* a_zh = fzh == zh.end() ? nullptr : &fzh->second;
    report.without_cldr_en += !a_en;
    report.without_cldr_zh += !a_zh;
    const bool heldout = emoji_is_heldout(e.code_points, o.heldout_fraction, o.seed);
    const std::string split = heldout ? "heldout" : "train";
    const std::string stem = split + "/" + emoji_file_stem(e.code_points);
    write_png((root / (stem + ".png")).string(), *img);
    const std::vector<std::string> captions = emoji_captions(e, a_en, a_zh, keyword_counts);
    write_file(root / (stem + ".txt"), join(captions, "\n") + "\n");
    std::vector<std::string> renderings;
    for (int k = 1; k < o.renderings; ++k) {
      const std::string stem_k = stem + "-r" + std::to_string(k);
      write_png((root / (stem_k + ".png")).string(),
                *renderer.render(e.code_points, o.size, emoji_rendering_placement(e.code_points, k)));
      write_file(root / (stem_k + ".txt"), join(captions, "\n") + "\n");
      renderings.push_back(stem_k + ".png");
    }

    nlohmann::ordered_json j;
    j["file"] = stem + ".png";
    j["emoji"] = u32_to_utf8(e.code_points);
    j["code_points"] = code_point_hex(e.code_points);
    j["name"] = e.name;
    j["version"] = e.version;
    j["group"] = e.group;
    j["subgroup"] = e.subgroup;
    j["en_name"] = a_en ? a_en->name : "";
    j["en_keywords"] = a_en ? a_en->keywords : std::vector<std::string>{};
    j["zh_name"] = a_zh ? a_zh->name : "";
    j["zh_keywords"] = a_zh ? a_zh->keywords : std::vector<std::string>{};
    j["captions"] = captions;
    j["split"] = split;
    if (!renderings.empty()) j["renderings"] = renderings;
    metadata += j.dump(-1, ' ', false) + "\n";
    ++report.written;
    report.heldout += heldout;
  }
  write_file(root / "metadata.jsonl", metadata);
  return report;
}

}  // namespace pigment::training
