#include "text/unicode_text.h"

#include <utf8proc.h>

#include <cstdlib>
#include <memory>

namespace pigment {

std::u32string utf8_to_u32(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  utf8proc_ssize_t n = utf8proc_ssize_t(s.size()), i = 0;
  while (i < n) {
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t len = utf8proc_iterate(p + i, n - i, &cp);
    if (len <= 0) {
      out.push_back(U'\uFFFD');
      ++i;
    } else {
      out.push_back(char32_t(cp));
      i += len;
    }
  }
  return out;
}

void append_utf8(std::string& out, char32_t c) {
  utf8proc_uint8_t buf[4];
  utf8proc_ssize_t len = utf8proc_encode_char(utf8proc_int32_t(c), buf);
  if (len <= 0) len = utf8proc_encode_char(0xFFFD, buf);
  out.append(reinterpret_cast<const char*>(buf), size_t(len));
}

std::string u32_to_utf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append_utf8(out, c);
  return out;
}

namespace {

utf8proc_category_t category(char32_t c) {
  if (c > 0x10FFFF) return UTF8PROC_CATEGORY_CN;
  return utf8proc_category(utf8proc_int32_t(c));
}

bool is_cased(char32_t c) {
  if (c > 0x10FFFF) return false;
  auto cp = utf8proc_int32_t(c);
  auto cat = category(c);
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT ||
         utf8proc_islower(cp) || utf8proc_isupper(cp) || utf8proc_tolower(cp) != cp || utf8proc_toupper(cp) != cp;
}

// Case_Ignorable: marks, format characters, modifier letters and symbols, and the Word_Break MidLetter /
// MidNumLet / Single_Quote characters (listed here: utf8proc has no Word_Break property).
bool is_case_ignorable(char32_t c) {
  switch (category(c)) {
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_SK:
      return true;
    default:
      break;
  }
  switch (c) {
    case 0x27: case 0x2E: case 0x3A: case 0xB7: case 0x387: case 0x55F: case 0x5F4: case 0x2018: case 0x2019:
    case 0x2024: case 0x2027: case 0xFE13: case 0xFE52: case 0xFE55: case 0xFF07: case 0xFF0E: case 0xFF1A:
      return true;
    default:
      return false;
  }
}

std::u32string normalize(std::u32string_view s, int options) {
  std::string in = u32_to_utf8(s);
  utf8proc_uint8_t* out = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(in.data()), utf8proc_ssize_t(in.size()),
                                    &out, utf8proc_option_t(options));
  if (n < 0) return std::u32string(s);  // only on allocation failure or invalid input, neither possible here
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> guard(out, &std::free);
  return utf8_to_u32(std::string_view(reinterpret_cast<const char*>(out), size_t(n)));
}

}  // namespace

bool is_letter(char32_t c) {
  switch (category(c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return true;
    default:
      return false;
  }
}

bool is_number(char32_t c) {
  auto cat = category(c);
  return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}

bool is_unicode_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_python_space(char32_t c) { return is_unicode_space(c) || (c >= 0x1C && c <= 0x1F); }

bool is_python_word(char32_t c) { return c == U'_' || is_letter(c) || is_number(c); }

bool is_ascii_digit(char32_t c) { return c >= U'0' && c <= U'9'; }

bool is_space_separator(char32_t c) { return category(c) == UTF8PROC_CATEGORY_ZS; }

bool is_other_category(char32_t c) {
  switch (category(c)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CS:
      return true;
    default:
      return false;
  }
}

std::u32string python_lower(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char32_t c = s[i];
    if (c == 0x130) {  // the one unconditional multi-character lower-case mapping
      out += U"i\u0307";
    } else if (c == 0x3A3) {
      // Final_Sigma: a cased letter before (skipping case-ignorables) and none after.
      size_t j = i;
      while (j > 0 && is_case_ignorable(s[j - 1])) --j;
      bool final_sigma = j > 0 && is_cased(s[j - 1]);
      if (final_sigma) {
        size_t k = i + 1;
        while (k < s.size() && is_case_ignorable(s[k])) ++k;
        final_sigma = k == s.size() || !is_cased(s[k]);
      }
      out.push_back(final_sigma ? 0x3C2 : 0x3C3);
    } else if (c <= 0x10FFFF) {
      out.push_back(char32_t(utf8proc_tolower(utf8proc_int32_t(c))));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::u32string python_upper(char32_t c) {
  if (c == 0xDF) return U"SS";
  if (c > 0x10FFFF) return std::u32string(1, c);
  return std::u32string(1, char32_t(utf8proc_toupper(utf8proc_int32_t(c))));
}

std::u32string normalize_nfc(std::u32string_view s) { return normalize(s, UTF8PROC_STABLE | UTF8PROC_COMPOSE); }

std::u32string normalize_nfkc(std::u32string_view s) {
  return normalize(s, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
}

}  // namespace pigment
