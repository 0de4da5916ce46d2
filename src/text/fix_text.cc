#include "text/fix_text.h"

#include "text/html_entities.h"
#include "text/unicode_text.h"

namespace pigment {
namespace {

bool is_ascii_alnum(char32_t c) {
  return (c >= U'0' && c <= U'9') || (c >= U'a' && c <= U'z') || (c >= U'A' && c <= U'Z');
}

// ftfy's HTML_ENTITY_RE: `&#?[0-9A-Za-z]{1,24};`, each match replaced by decode_html_reference.
std::u32string unescape_html(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == U'&') {
      size_t j = i + 1;
      if (j < s.size() && s[j] == U'#') ++j;
      size_t k = j;
      while (k < s.size() && k - j < 24 && is_ascii_alnum(s[k])) ++k;
      if (k > j && k < s.size() && s[k] == U';') {
        out += decode_html_reference(std::u32string_view(s).substr(i, k + 1 - i));
        i = k + 1;
        continue;
      }
    }
    out.push_back(s[i++]);
  }
  return out;
}

const char32_t* latin_ligature(char32_t c) {
  switch (c) {
    case 0x132: return U"IJ";
    case 0x133: return U"ij";
    case 0x149: return U"\u02BCn";
    case 0x1F1: return U"DZ";
    case 0x1F2: return U"Dz";
    case 0x1F3: return U"dz";
    case 0x1C4: return U"D\u017D";
    case 0x1C5: return U"D\u017E";
    case 0x1C6: return U"d\u017E";
    case 0x1C7: return U"LJ";
    case 0x1C8: return U"Lj";
    case 0x1C9: return U"lj";
    case 0x1CA: return U"NJ";
    case 0x1CB: return U"Nj";
    case 0x1CC: return U"nj";
    case 0xFB00: return U"ff";
    case 0xFB01: return U"fi";
    case 0xFB02: return U"fl";
    case 0xFB03: return U"ffi";
    case 0xFB04: return U"ffl";
    case 0xFB05: return U"\u017Ft";
    case 0xFB06: return U"st";
    default: return nullptr;
  }
}

// One pass of ftfy's per-character fixers, in its order: fix_c1_controls, fix_latin_ligatures,
// fix_character_width, uncurl_quotes. Each is a character map, so applying them in sequence per character is the
// same as applying them to the whole text in sequence.
std::u32string map_characters(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  auto after_ligatures = [&](char32_t c) {
    // fix_character_width: U+3000 and the NFKC form of U+FF01..U+FFEF; then uncurl_quotes.
    std::u32string w;
    if (c == 0x3000) w = U" ";
    else if (c >= 0xFF01 && c <= 0xFFEF) w = normalize_nfkc(std::u32string(1, c));
    else w = std::u32string(1, c);
    for (char32_t x : w) {
      if (x == 0x2BC || (x >= 0x2018 && x <= 0x201B)) x = U'\'';
      else if (x >= 0x201C && x <= 0x201F) x = U'"';
      out.push_back(x);
    }
  };
  for (char32_t c : s) {
    if (c >= 0x80 && c <= 0x9F) c = windows1252_c1(unsigned(c));
    if (const char32_t* lig = latin_ligature(c)) {
      for (const char32_t* p = lig; *p; ++p) after_ligatures(*p);
    } else {
      after_ligatures(c);
    }
  }
  return out;
}

std::u32string fix_line_breaks(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char32_t c = s[i];
    if (c == U'\r' && i + 1 < s.size() && s[i + 1] == U'\n') continue;  // "\r\n" -> "\n"
    if (c == U'\r' || c == 0x2028 || c == 0x2029 || c == 0x85) c = U'\n';
    out.push_back(c);
  }
  return out;
}

// `\x1b\[((?:\d|;)*)([a-zA-Z])`
std::u32string remove_terminal_escapes(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == 0x1B && i + 1 < s.size() && s[i + 1] == U'[') {
      size_t j = i + 2;
      while (j < s.size() && (is_ascii_digit(s[j]) || s[j] == U';')) ++j;
      if (j < s.size() && ((s[j] >= U'a' && s[j] <= U'z') || (s[j] >= U'A' && s[j] <= U'Z'))) {
        i = j + 1;
        continue;
      }
    }
    out.push_back(s[i++]);
  }
  return out;
}

bool is_removed_control(char32_t c) {
  return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
         c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

std::u32string fix_segment(std::u32string text, bool unescape) {
  for (;;) {
    std::u32string original = text;
    if (unescape) text = unescape_html(text);
    text = map_characters(text);
    text = fix_line_breaks(text);
    text = remove_terminal_escapes(text);
    std::erase_if(text, is_removed_control);
    text = normalize_nfc(text);
    if (text == original) return text;
  }
}

}  // namespace

std::u32string ftfy_fix_text(std::u32string_view text) {
  std::u32string out;
  bool unescape = true;  // "auto": off for this and every later line once a '<' is seen
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find(U'\n', pos);
    size_t end = nl == std::u32string_view::npos ? text.size() : nl + 1;
    std::u32string segment(text.substr(pos, end - pos));
    if (segment.find(U'<') != std::u32string::npos) unescape = false;
    out += fix_segment(std::move(segment), unescape);
    pos = end;
  }
  return out;
}

std::string ftfy_fix_text(std::string_view utf8) { return u32_to_utf8(ftfy_fix_text(utf8_to_u32(utf8))); }

std::u32string bert_basic_clean(std::u32string_view text) {
  auto is_cjk = [](char32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
  };
  std::u32string cleaned;
  cleaned.reserve(text.size());
  for (char32_t c : text) {
    if (c == 0 || c == 0xFFFD) continue;
    if (c == U' ' || c == U'\t' || c == U'\n' || c == U'\r' || is_space_separator(c)) {
      cleaned.push_back(U' ');
    } else if (is_other_category(c)) {
      continue;  // control, format, unassigned, private use
    } else if (is_cjk(c)) {
      cleaned += U' ';
      cleaned.push_back(c);
      cleaned += U' ';
    } else {
      cleaned.push_back(c);
    }
  }
  // NFC, split on white space, lower-case each word, join with single spaces.
  std::u32string nfc = normalize_nfc(cleaned), out, word;
  auto flush = [&] {
    if (word.empty()) return;
    if (!out.empty()) out.push_back(U' ');
    out += python_lower(word);
    word.clear();
  };
  for (char32_t c : nfc) {
    if (is_python_space(c)) flush();
    else word.push_back(c);
  }
  flush();
  return out;
}

std::u32string clip_whitespace_clean(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  bool pending_space = false;
  for (char32_t c : text) {
    if (is_unicode_space(c)) {
      pending_space = true;
      continue;
    }
    if (pending_space && !out.empty()) out.push_back(U' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

}  // namespace pigment
