// pigment dataset emoji --out DIR [--size 64] [--limit N] [--only HEX ...] [--heldout-fraction 0.05] [--seed S]:
// writes the data set of pigment's own model (Noto Color Emoji pictures with English and Chinese captions) in the
// folder format `pigment train` reads; train on DIR/train, measure on DIR/heldout.
#include <chrono>
#include <cstdio>

#include "command.h"
#include "core/error.h"
#include "training/emoji_dataset.h"

namespace pigment::cli {
namespace {

struct Args {
  std::string kind, out;
  std::vector<std::string> only;
  bool list_skipped = false;
  training::EmojiDatasetOptions o;
} g;

int run_dataset() {
  PIG_CHECK(g.kind == "emoji", "dataset: unknown data set '", g.kind, "' (known: emoji)");
  training::EmojiDatasetOptions o = g.o;
  for (const auto& s : g.only) o.only.push_back(training::parse_code_points(s, "--only"));
  auto t0 = std::chrono::steady_clock::now();
  training::EmojiDatasetReport r = training::write_emoji_dataset(g.out, o);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("wrote %s: %d emoji at %dx%d (%d train, %d held out) in %.1f s\n", g.out.c_str(), r.written, o.size,
              o.size, r.written - r.heldout, r.heldout, s);
  std::printf("skipped %d of %d (not one glyph in %s)\n", int(r.skipped.size()), r.candidates, o.font.c_str());
  std::printf("without CLDR annotations: %d (en), %d (zh)\n", r.without_cldr_en, r.without_cldr_zh);
  if (g.list_skipped)
    for (const auto& k : r.skipped) std::printf("skipped: %s\n", k.c_str());
  return 0;
}

RegisterCommand reg(
    "dataset", "write a training data set (emoji: pigment's own model's pictures and captions)",
    [](CLI::App& c) {
      auto& o = g.o;
      c.add_option("kind", g.kind, "which data set: emoji")->required();
      c.add_option("--out", g.out, "output folder (new, empty, or an earlier data set of this kind)")->required();
      c.add_option("--size", o.size, "picture side in pixels (default 64)");
      c.add_option("--limit", o.limit, "write at most N emoji, the first in emoji-test.txt order (default: all)");
      c.add_option("--only", g.only, "just these emoji, as hex code points ('1F34E', '1F1EF-1F1F5'); repeatable");
      c.add_option("--renderings", o.renderings,
                   "pictures per emoji: the centred one, then N-1 slightly smaller, off-centre ones (STEM-rK.png, same "
                   "captions), e.g. for a textual inversion on a few renderings (default 1)");
      c.add_option("--heldout-fraction", o.heldout_fraction, "share of emoji held out, never trained on (0.05)");
      c.add_option("--seed", o.seed, "changes which emoji are held out (default 0)");
      c.add_option("--font", o.font, "colour emoji font (default: Debian's Noto Color Emoji)");
      c.add_option("--emoji-test", o.emoji_test, "Unicode's emoji-test.txt");
      c.add_option("--cldr", o.cldr_dir, "CLDR's common/ folder (annotations/ and annotationsDerived/)");
      c.add_flag("--list-skipped", g.list_skipped, "print every emoji the font does not draw as one glyph");
    },
    run_dataset);

}  // namespace
}  // namespace pigment::cli
