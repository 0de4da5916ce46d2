// UTF-8 <-> code points and the handful of Unicode properties that the tokenizer and the prompt parser need, with
// the exact meaning each reference regex engine gives them (Python's `re`, the `regex` module, str.lower()).
// Backed by utf8proc; no tables of our own except a few short property lists noted below.
#pragma once
#include <string>
#include <string_view>

namespace pigment {

// Invalid UTF-8 bytes decode to U+FFFD (one per byte), as Python's errors="replace" does.
std::u32string utf8_to_u32(std::string_view s);
std::string u32_to_utf8(std::u32string_view s);
void append_utf8(std::string& out, char32_t c);

bool is_letter(char32_t c);  // \p{L}
bool is_number(char32_t c);  // \p{N}
// The Unicode White_Space property: `\s` of the `regex` module (CLIP's split pattern and whitespace clean-up).
bool is_unicode_space(char32_t c);
// Python str.isspace(): `\s` of the `re` module (A1111's patterns). White_Space plus U+001C..U+001F.
bool is_python_space(char32_t c);
// `\w` of Python's `re` on str patterns: letters, numbers and '_'.
bool is_python_word(char32_t c);
bool is_ascii_digit(char32_t c);
bool is_space_separator(char32_t c);  // category Zs
bool is_other_category(char32_t c);   // categories Cc, Cf, Cn, Co, Cs

// Python str.lower(): full lower-case mapping (U+0130 becomes "i" + U+0307) and the final-sigma rule.
std::u32string python_lower(std::u32string_view s);
// Python str.upper() of a single character (full mapping: U+00DF becomes "SS").
std::u32string python_upper(char32_t c);

std::u32string normalize_nfc(std::u32string_view s);
std::u32string normalize_nfkc(std::u32string_view s);

}  // namespace pigment
