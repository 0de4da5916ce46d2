// The text clean-up that transformers' CLIPTokenizer applies before splitting words, when the `ftfy` package is
// installed (the usual case for Stable Diffusion installs): ftfy.fix_text with its 6.1 defaults, then
// whitespace_clean (runs of Unicode white space become one space, ends stripped). Lower-casing is separate.
//
// Everything fix_text does to well-formed text is reproduced: HTML references (only while no '<' has been seen,
// ftfy's "auto" rule), C1 controls read as Windows-1252, Latin ligatures, full-width forms, curly quotes, line
// breaks, terminal escapes, control characters, NFC, repeated until nothing changes. Not reproduced: ftfy's
// mojibake repair (re-decoding text that was mis-decoded as Latin-1/Windows-125x), which only fires on text its
// "badness" heuristic flags; such text is kept as it is.
#pragma once
#include <string>
#include <string_view>

namespace pigment {

std::u32string ftfy_fix_text(std::u32string_view text);
// CLIP's whitespace_clean: `\s+` -> " " (Unicode White_Space), then strip.
std::u32string clip_whitespace_clean(std::u32string_view text);

// What CLIPTokenizer does instead when ftfy is not installed: BERT's BasicTokenizer(strip_accents=False,
// do_split_on_punc=False) words joined by spaces. Drops NUL, U+FFFD and control/format characters, turns white space
// into spaces, sets CJK ideographs apart, NFC, lower-cases.
std::u32string bert_basic_clean(std::u32string_view text);

// UTF-8 conveniences.
std::string ftfy_fix_text(std::string_view utf8);

}  // namespace pigment
