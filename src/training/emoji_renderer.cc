#include "training/emoji_renderer.h"

#include <ft2build.h>
#include FT_FREETYPE_H
#include <hb-ft.h>
#include <hb.h>

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "imaging/resize.h"

namespace pigment::training {

struct EmojiRenderer::Impl {
  std::string path;
  FT_Library library = nullptr;
  FT_Face face = nullptr;
  hb_font_t* font = nullptr;
  int strike_w = 0, strike_h = 0, side = 0;
};

EmojiRenderer::EmojiRenderer(const std::string& font_path) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.path = font_path;
  PIG_CHECK(std::filesystem::exists(font_path), font_path,
            ": no such font file (Debian package fonts-noto-color-emoji; scripts/setup installs it)");
  PIG_CHECK(FT_Init_FreeType(&m.library) == 0, "FreeType: cannot initialise the library");
  if (FT_New_Face(m.library, font_path.c_str(), 0, &m.face) != 0) {
    FT_Done_FreeType(m.library);
    fail(font_path, ": FreeType cannot open it as a font");
  }
  auto cleanup_fail = [&](const std::string& why) {
    FT_Done_Face(m.face);
    FT_Done_FreeType(m.library);
    fail(font_path, ": ", why);
  };
  if (!FT_HAS_COLOR(m.face) || m.face->num_fixed_sizes < 1)
    cleanup_fail("expected a colour bitmap font with fixed strikes (such as Noto Color Emoji)");
  int best = 0;
  for (int i = 1; i < m.face->num_fixed_sizes; ++i)
    if (m.face->available_sizes[i].y_ppem > m.face->available_sizes[best].y_ppem) best = i;
  if (FT_Select_Size(m.face, best) != 0) cleanup_fail("cannot select its bitmap strike");
  m.strike_w = m.face->available_sizes[best].width;
  m.strike_h = m.face->available_sizes[best].height;
  m.side = std::max(m.strike_w, m.strike_h);
  m.font = hb_ft_font_create_referenced(m.face);
}

EmojiRenderer::~EmojiRenderer() {
  hb_font_destroy(impl_->font);  // releases its reference to the face
  FT_Done_Face(impl_->face);
  FT_Done_FreeType(impl_->library);
}

int EmojiRenderer::strike_width() const { return impl_->strike_w; }
int EmojiRenderer::strike_height() const { return impl_->strike_h; }
int EmojiRenderer::canvas_side() const { return impl_->side; }

unsigned EmojiRenderer::glyph_for(const std::u32string& code_points) const {
  hb_buffer_t* buf = hb_buffer_create();
  for (char32_t c : code_points) hb_buffer_add(buf, hb_codepoint_t(c), 0);  // one cluster: the whole sequence
  hb_buffer_set_content_type(buf, HB_BUFFER_CONTENT_TYPE_UNICODE);
  hb_buffer_set_direction(buf, HB_DIRECTION_LTR);
  hb_buffer_set_script(buf, HB_SCRIPT_COMMON);
  hb_buffer_set_language(buf, hb_language_from_string("en", -1));
  hb_buffer_set_flags(buf, hb_buffer_flags_t(HB_BUFFER_FLAG_BOT | HB_BUFFER_FLAG_EOT |
                                             HB_BUFFER_FLAG_REMOVE_DEFAULT_IGNORABLES));
  hb_shape(impl_->font, buf, nullptr, 0);
  unsigned n = 0;
  hb_glyph_info_t* info = hb_buffer_get_glyph_infos(buf, &n);
  unsigned glyph = n == 1 ? info[0].codepoint : 0;
  hb_buffer_destroy(buf);
  return glyph;
}

std::optional<Image> EmojiRenderer::render(const std::u32string& code_points, int size,
                                          const EmojiPlacement& at) const {
  PIG_CHECK(size > 0 && size <= impl_->side, "emoji size ", size, ": expected 1 to ", impl_->side,
            " (the font's strike; pictures are only scaled down)");
  unsigned glyph = glyph_for(code_points);
  if (glyph == 0) return std::nullopt;
  FT_Face face = impl_->face;
  PIG_CHECK(FT_Load_Glyph(face, glyph, FT_LOAD_COLOR) == 0, impl_->path, ": FreeType cannot load glyph ", glyph);
  const FT_Bitmap& bm = face->glyph->bitmap;
  PIG_CHECK(face->glyph->format == FT_GLYPH_FORMAT_BITMAP && bm.pixel_mode == FT_PIXEL_MODE_BGRA, impl_->path,
            ": glyph ", glyph, " is not a colour (BGRA) bitmap");
  const int w = int(bm.width), h = int(bm.rows);
  PIG_CHECK(at.margin >= 0 && at.margin <= 4 * impl_->side, "emoji margin ", at.margin, ": expected 0 to ",
            4 * impl_->side, " strike pixels");
  const int side = std::max({impl_->side, w, h}) + at.margin;
  Image canvas{side, side, 3, std::vector<uint8_t>(size_t(side) * side * 3, 255)};
  const int x0 = std::clamp((side - w) / 2 + at.dx, 0, side - w), y0 = std::clamp((side - h) / 2 + at.dy, 0, side - h);
  for (int y = 0; y < h; ++y) {
    const uint8_t* row = bm.buffer + ptrdiff_t(y) * bm.pitch;
    for (int x = 0; x < w; ++x) {
      const uint8_t* p = row + size_t(x) * 4;  // B, G, R, A, premultiplied
      const int white = 255 - p[3];
      uint8_t* o = &canvas.pixels[(size_t(y0 + y) * side + (x0 + x)) * 3];
      o[0] = uint8_t(std::min(255, p[2] + white));
      o[1] = uint8_t(std::min(255, p[1] + white));
      o[2] = uint8_t(std::min(255, p[0] + white));
    }
  }
  return resize_area(canvas, size, size);
}

}  // namespace pigment::training
