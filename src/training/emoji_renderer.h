// Draws one emoji of a colour bitmap font (Google's Noto Color Emoji: CBDT strikes of 136×128 pixels at 109 ppem)
// as a small RGB image on white. The sequence is shaped with HarfBuzz, so ZWJ sequences, skin tones, keycaps and
// flags become the font's ligature glyphs exactly as a text renderer would draw them; a sequence the font does not
// draw as one glyph is refused rather than drawn as pieces.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "io/image.h"

namespace pigment::training {

// Where Debian's fonts-noto-color-emoji puts the font.
inline constexpr const char* kNotoColorEmojiPath = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf";

// Where the glyph sits on the canvas, in strike pixels: `margin` widens the square canvas (so the emoji comes out
// smaller: scale side / (side + margin)) and dx, dy move the glyph from the centre (clamped so it stays whole).
// The default is the data set's picture: centred, no margin.
struct EmojiPlacement {
  int margin = 0, dx = 0, dy = 0;
};

class EmojiRenderer {
 public:
  // Opens the font and selects its largest bitmap strike. Throws naming the file if it cannot be read or has no
  // colour bitmap strike.
  explicit EmojiRenderer(const std::string& font_path = kNotoColorEmojiPath);
  ~EmojiRenderer();
  EmojiRenderer(const EmojiRenderer&) = delete;
  EmojiRenderer& operator=(const EmojiRenderer&) = delete;

  // The glyph the font draws for the whole sequence, or 0 when shaping gives anything but exactly one glyph (or
  // .notdef). Default-ignorable code points left over after the ligatures (U+FE0F) are removed, as renderers do.
  unsigned glyph_for(const std::u32string& code_points) const;

  // The sequence's glyph composited on white (the bitmaps are premultiplied BGRA: out = colour + 255 - alpha),
  // centred in a square canvas whose side is the strike's larger dimension (so every emoji has the same scale),
  // then area-averaged down to size×size RGB. Exact integer arithmetic: the same bytes on every machine.
  // nullopt when glyph_for gives 0.
  std::optional<Image> render(const std::u32string& code_points, int size, const EmojiPlacement& at = {}) const;

  // The strike's pixel size as FreeType reports it (Noto Color Emoji: 136×128) and the canvas side.
  int strike_width() const;
  int strike_height() const;
  int canvas_side() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pigment::training
