// The data set of pigment's own model: every fully-qualified emoji of Unicode's emoji-test.txt that Noto Color Emoji
// draws as one glyph, as a size×size RGB picture on white, with captions in English and Chinese from emoji-test.txt
// and CLDR. Written in the folder format `pigment train` reads:
//
//   DIR/train/<code points>.png + .txt     e.g. train/1f34e.png, train/1f468-200d-1f469-200d-1f466.png
//   DIR/heldout/<code points>.png + .txt   about 5 % of the emoji, never trained on (for measuring)
//   DIR/metadata.jsonl                      one JSON object per written emoji, in emoji-test.txt order
//
// A caption file holds several captions, one per line; the first line is the emoji-test.txt name ("red apple"),
// the others the Chinese name, the keyword lists, the name with its group, and single keywords — a trainer picks one
// line per step (today's reader takes the first line only).
// Everything is deterministic: the same sources, options and seed give the same bytes.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "training/emoji_data.h"
#include "training/emoji_renderer.h"

namespace pigment::training {

struct EmojiDatasetOptions {
  std::string font = kNotoColorEmojiPath;
  std::string emoji_test = kEmojiTestPath;
  std::string cldr_dir = kCldrCommonDir;
  int size = 64;
  int limit = 0;                   // write at most this many emoji (the first in file order); 0: all
  std::vector<std::u32string> only;  // if not empty: just these sequences (each must be a fully-qualified emoji)
  double heldout_fraction = 0.05;
  uint64_t seed = 0;               // changes which emoji are held out
  // Pictures per emoji: the first is the centred rendering; each further one (STEM-rK.png with the same captions)
  // is drawn slightly smaller and off-centre (emoji_rendering_placement), for fine-tuning on a few renderings.
  int renderings = 1;
};

// Where rendering k (≥ 1) of an emoji puts the glyph: up to 16 strike pixels of margin (scale ≥ 0.89) and up to 6
// pixels off-centre each way (≤ 3 output pixels at 64×64), from a hash of the code points and k: the same on every
// machine. Rendering 0 is the centred default.
EmojiPlacement emoji_rendering_placement(const std::u32string& code_points, int k);

struct EmojiDatasetReport {
  int candidates = 0;              // fully-qualified emoji considered
  int written = 0, heldout = 0;    // heldout is part of written
  std::vector<std::string> skipped;  // "1F9D1 200D 1F91D 200D 1F9D1 people holding hands": not one glyph
  int without_cldr_en = 0, without_cldr_zh = 0;  // written emoji that CLDR has no annotation for
};

// For every CLDR keyword (English and Chinese), how many distinct emoji carry it, counting skin-tone variants of one
// emoji once (the sequence without U+1F3FB..U+1F3FF); over all of `entries`, so it does not depend on --limit.
using KeywordCounts = std::map<std::string, int>;
KeywordCounts count_keywords(const std::vector<EmojiEntry>& entries, const Annotations& en, const Annotations& zh);

// A keyword becomes a caption of its own ("apple") only when at most this many emoji carry it: "flag" or "woman"
// alone would name hundreds of pictures and crowd out the specific captions of each.
inline constexpr int kMaxEmojiPerKeywordCaption = 5;

// The captions of one emoji, one per line of its caption file, duplicates removed, in this order: the emoji-test.txt
// name ("red apple"), CLDR's English name if different, the Chinese name ("红苹果"), the English keywords
// ("apple, fruit, red"), the Chinese keywords ("水果，红，红苹果，苹果"), the name with subgroup and group
// ("red apple, food fruit, food & drink"), then each specific keyword alone (see kMaxEmojiPerKeywordCaption).
std::vector<std::string> emoji_captions(const EmojiEntry& e, const Annotation* en, const Annotation* zh,
                                        const KeywordCounts& counts);

// Whether a sequence is held out: a hash of its code points and the seed, below fraction·2⁶⁴. Independent of the
// other emoji, so --limit and new Unicode versions never move an emoji between the splits.
bool emoji_is_heldout(const std::u32string& code_points, double fraction, uint64_t seed);

// File stem: lower-case hex code points joined by '-' ("1f468-200d-1f469-200d-1f466").
std::string emoji_file_stem(const std::u32string& code_points);

// Writes the data set into out_dir (created; existing files of the same names are replaced).
EmojiDatasetReport write_emoji_dataset(const std::string& out_dir, const EmojiDatasetOptions& options);

}  // namespace pigment::training
