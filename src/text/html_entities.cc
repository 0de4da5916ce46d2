#include "text/html_entities.h"

#include <algorithm>
#include <map>
#include <string>

#include "text/unicode_text.h"

namespace pigment {
namespace {

struct NamedReference {
  const char* name;
  char32_t code;
};

// The HTML 4 named references with their HTML5 values (as Python's html.entities.html5 has them), &apos;, and the
// all-caps names HTML5 defines itself.
constexpr NamedReference kNamed[] = {
  {"quot", 0x22}, {"amp", 0x26}, {"lt", 0x3C}, {"gt", 0x3E}, {"nbsp", 0xA0}, {"iexcl", 0xA1}, {"cent", 0xA2},
  {"pound", 0xA3}, {"curren", 0xA4}, {"yen", 0xA5}, {"brvbar", 0xA6}, {"sect", 0xA7}, {"uml", 0xA8}, {"copy", 0xA9},
  {"ordf", 0xAA}, {"laquo", 0xAB}, {"not", 0xAC}, {"shy", 0xAD}, {"reg", 0xAE}, {"macr", 0xAF}, {"deg", 0xB0},
  {"plusmn", 0xB1}, {"sup2", 0xB2}, {"sup3", 0xB3}, {"acute", 0xB4}, {"micro", 0xB5}, {"para", 0xB6},
  {"middot", 0xB7}, {"cedil", 0xB8}, {"sup1", 0xB9}, {"ordm", 0xBA}, {"raquo", 0xBB}, {"frac14", 0xBC},
  {"frac12", 0xBD}, {"frac34", 0xBE}, {"iquest", 0xBF}, {"Agrave", 0xC0}, {"Aacute", 0xC1}, {"Acirc", 0xC2},
  {"Atilde", 0xC3}, {"Auml", 0xC4}, {"Aring", 0xC5}, {"AElig", 0xC6}, {"Ccedil", 0xC7}, {"Egrave", 0xC8},
  {"Eacute", 0xC9}, {"Ecirc", 0xCA}, {"Euml", 0xCB}, {"Igrave", 0xCC}, {"Iacute", 0xCD}, {"Icirc", 0xCE},
  {"Iuml", 0xCF}, {"ETH", 0xD0}, {"Ntilde", 0xD1}, {"Ograve", 0xD2}, {"Oacute", 0xD3}, {"Ocirc", 0xD4},
  {"Otilde", 0xD5}, {"Ouml", 0xD6}, {"times", 0xD7}, {"Oslash", 0xD8}, {"Ugrave", 0xD9}, {"Uacute", 0xDA},
  {"Ucirc", 0xDB}, {"Uuml", 0xDC}, {"Yacute", 0xDD}, {"THORN", 0xDE}, {"szlig", 0xDF}, {"agrave", 0xE0},
  {"aacute", 0xE1}, {"acirc", 0xE2}, {"atilde", 0xE3}, {"auml", 0xE4}, {"aring", 0xE5}, {"aelig", 0xE6},
  {"ccedil", 0xE7}, {"egrave", 0xE8}, {"eacute", 0xE9}, {"ecirc", 0xEA}, {"euml", 0xEB}, {"igrave", 0xEC},
  {"iacute", 0xED}, {"icirc", 0xEE}, {"iuml", 0xEF}, {"eth", 0xF0}, {"ntilde", 0xF1}, {"ograve", 0xF2},
  {"oacute", 0xF3}, {"ocirc", 0xF4}, {"otilde", 0xF5}, {"ouml", 0xF6}, {"divide", 0xF7}, {"oslash", 0xF8},
  {"ugrave", 0xF9}, {"uacute", 0xFA}, {"ucirc", 0xFB}, {"uuml", 0xFC}, {"yacute", 0xFD}, {"thorn", 0xFE},
  {"yuml", 0xFF}, {"OElig", 0x152}, {"oelig", 0x153}, {"Scaron", 0x160}, {"scaron", 0x161}, {"Yuml", 0x178},
  {"fnof", 0x192}, {"circ", 0x2C6}, {"tilde", 0x2DC}, {"Alpha", 0x391}, {"Beta", 0x392}, {"Gamma", 0x393},
  {"Delta", 0x394}, {"Epsilon", 0x395}, {"Zeta", 0x396}, {"Eta", 0x397}, {"Theta", 0x398}, {"Iota", 0x399},
  {"Kappa", 0x39A}, {"Lambda", 0x39B}, {"Mu", 0x39C}, {"Nu", 0x39D}, {"Xi", 0x39E}, {"Omicron", 0x39F},
  {"Pi", 0x3A0}, {"Rho", 0x3A1}, {"Sigma", 0x3A3}, {"Tau", 0x3A4}, {"Upsilon", 0x3A5}, {"Phi", 0x3A6},
  {"Chi", 0x3A7}, {"Psi", 0x3A8}, {"Omega", 0x3A9}, {"alpha", 0x3B1}, {"beta", 0x3B2}, {"gamma", 0x3B3},
  {"delta", 0x3B4}, {"epsilon", 0x3B5}, {"zeta", 0x3B6}, {"eta", 0x3B7}, {"theta", 0x3B8}, {"iota", 0x3B9},
  {"kappa", 0x3BA}, {"lambda", 0x3BB}, {"mu", 0x3BC}, {"nu", 0x3BD}, {"xi", 0x3BE}, {"omicron", 0x3BF},
  {"pi", 0x3C0}, {"rho", 0x3C1}, {"sigmaf", 0x3C2}, {"sigma", 0x3C3}, {"tau", 0x3C4}, {"upsilon", 0x3C5},
  {"phi", 0x3C6}, {"chi", 0x3C7}, {"psi", 0x3C8}, {"omega", 0x3C9}, {"thetasym", 0x3D1}, {"upsih", 0x3D2},
  {"piv", 0x3D6}, {"ensp", 0x2002}, {"emsp", 0x2003}, {"thinsp", 0x2009}, {"zwnj", 0x200C}, {"zwj", 0x200D},
  {"lrm", 0x200E}, {"rlm", 0x200F}, {"ndash", 0x2013}, {"mdash", 0x2014}, {"lsquo", 0x2018}, {"rsquo", 0x2019},
  {"sbquo", 0x201A}, {"ldquo", 0x201C}, {"rdquo", 0x201D}, {"bdquo", 0x201E}, {"dagger", 0x2020}, {"Dagger", 0x2021},
  {"bull", 0x2022}, {"hellip", 0x2026}, {"permil", 0x2030}, {"prime", 0x2032}, {"Prime", 0x2033}, {"lsaquo", 0x2039},
  {"rsaquo", 0x203A}, {"oline", 0x203E}, {"frasl", 0x2044}, {"euro", 0x20AC}, {"image", 0x2111}, {"weierp", 0x2118},
  {"real", 0x211C}, {"trade", 0x2122}, {"alefsym", 0x2135}, {"larr", 0x2190}, {"uarr", 0x2191}, {"rarr", 0x2192},
  {"darr", 0x2193}, {"harr", 0x2194}, {"crarr", 0x21B5}, {"lArr", 0x21D0}, {"uArr", 0x21D1}, {"rArr", 0x21D2},
  {"dArr", 0x21D3}, {"hArr", 0x21D4}, {"forall", 0x2200}, {"part", 0x2202}, {"exist", 0x2203}, {"empty", 0x2205},
  {"nabla", 0x2207}, {"isin", 0x2208}, {"notin", 0x2209}, {"ni", 0x220B}, {"prod", 0x220F}, {"sum", 0x2211},
  {"minus", 0x2212}, {"lowast", 0x2217}, {"radic", 0x221A}, {"prop", 0x221D}, {"infin", 0x221E}, {"ang", 0x2220},
  {"and", 0x2227}, {"or", 0x2228}, {"cap", 0x2229}, {"cup", 0x222A}, {"int", 0x222B}, {"there4", 0x2234},
  {"sim", 0x223C}, {"cong", 0x2245}, {"asymp", 0x2248}, {"ne", 0x2260}, {"equiv", 0x2261}, {"le", 0x2264},
  {"ge", 0x2265}, {"sub", 0x2282}, {"sup", 0x2283}, {"nsub", 0x2284}, {"sube", 0x2286}, {"supe", 0x2287},
  {"oplus", 0x2295}, {"otimes", 0x2297}, {"perp", 0x22A5}, {"sdot", 0x22C5}, {"lceil", 0x2308}, {"rceil", 0x2309},
  {"lfloor", 0x230A}, {"rfloor", 0x230B}, {"lang", 0x27E8}, {"rang", 0x27E9}, {"loz", 0x25CA}, {"spades", 0x2660},
  {"clubs", 0x2663}, {"hearts", 0x2665}, {"diams", 0x2666}, {"apos", 0x27}, {"AMP", 0x26}, {"COPY", 0xA9},
  {"GT", 0x3E}, {"LT", 0x3C}, {"QUOT", 0x22}, {"REG", 0xAE}, {"TRADE", 0x2122},
};

const std::map<std::u32string, std::u32string>& named_table() {
  static const std::map<std::u32string, std::u32string> table = [] {
    std::map<std::u32string, std::u32string> t;
    for (const auto& e : kNamed) t[utf8_to_u32(e.name)] = std::u32string(1, e.code);
    // ftfy also decodes an all-lower-case name written in capitals (&EACUTE; -> É) unless that spelling already
    // means something else; for this set that is exactly "not already a name".
    std::map<std::u32string, std::u32string> upper;
    for (const auto& [name, value] : t) {
      std::u32string up;
      bool lower = true;
      for (char32_t c : name) {
        if (c >= U'A' && c <= U'Z') lower = false;
        up.push_back(c >= U'a' && c <= U'z' ? c - 32 : c);
      }
      if (lower && !t.count(up)) upper[up] = python_upper(value[0]);
    }
    t.insert(upper.begin(), upper.end());
    return t;
  }();
  return table;
}

// kNamed as Python's html.entities.html5 has it (no ftfy capitals). `legacy`: the names html5 also lists without
// the ';' (the Latin-1 set and amp, lt, gt, quot with their capital forms AMP, COPY, GT, LT, QUOT, REG).
struct PythonNamed {
  std::map<std::u32string, std::u32string> all, legacy;
};
const PythonNamed& python_named() {
  static const PythonNamed table = [] {
    PythonNamed t;
    for (const auto& e : kNamed) {
      const std::string name = e.name;
      t.all[utf8_to_u32(name)] = std::u32string(1, e.code);
      bool legacy = (e.code >= 0xA0 && e.code <= 0xFF) || name == "amp" || name == "lt" || name == "gt" ||
                    name == "quot" || name == "AMP" || name == "GT" || name == "LT" || name == "QUOT";
      if (legacy) t.legacy[utf8_to_u32(name)] = std::u32string(1, e.code);
    }
    return t;
  }();
  return table;
}

bool is_hex_digit(char32_t c) { return (c >= U'0' && c <= U'9') || (c >= U'a' && c <= U'f') || (c >= U'A' && c <= U'F'); }

}  // namespace

std::u32string python_html_unescape(std::u32string_view s) {
  const PythonNamed& named = python_named();
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != U'&' || i + 1 >= s.size()) {
      out.push_back(s[i++]);
      continue;
    }
    size_t j = i + 1;
    if (s[j] == U'#') {  // #[0-9]+;? or #[xX][0-9a-fA-F]+;?
      bool hex = j + 1 < s.size() && (s[j + 1] == U'x' || s[j + 1] == U'X');
      size_t k = j + (hex ? 2 : 1), start = k;
      uint64_t value = 0;
      while (k < s.size() && (hex ? is_hex_digit(s[k]) : (s[k] >= U'0' && s[k] <= U'9'))) {
        char32_t c = s[k++];
        unsigned digit = c <= U'9' ? unsigned(c - U'0') : c <= U'F' ? unsigned(c - U'A' + 10) : unsigned(c - U'a' + 10);
        value = std::min<uint64_t>(value * (hex ? 16 : 10) + digit, 0x110000);
      }
      if (k == start) {  // "&#" without digits: the pattern does not match
        out.push_back(s[i++]);
        continue;
      }
      if (k < s.size() && s[k] == U';') ++k;
      out += decode_numeric_reference(char32_t(value));
      i = k;
      continue;
    }
    // [^\t\n\f <&#;]{1,32};?
    size_t k = j;
    while (k < s.size() && k - j < 32 && s[k] != U'\t' && s[k] != U'\n' && s[k] != U'\f' && s[k] != U' ' &&
           s[k] != U'<' && s[k] != U'&' && s[k] != U'#' && s[k] != U';')
      ++k;
    if (k == j) {
      out.push_back(s[i++]);
      continue;
    }
    std::u32string name(s.substr(j, k - j));
    bool semicolon = k < s.size() && s[k] == U';';
    size_t end = semicolon ? k + 1 : k;
    if (semicolon) {
      auto it = named.all.find(name);
      if (it != named.all.end()) {
        out += it->second;
        i = end;
        continue;
      }
    } else if (auto it = named.legacy.find(name); it != named.legacy.end()) {
      out += it->second;
      i = end;
      continue;
    }
    // The longest legacy name that starts the match, the rest kept as written.
    std::u32string match(s.substr(j, end - j));
    bool done = false;
    for (size_t x = match.size() - 1; x > 1 && !done; --x) {
      auto it = named.legacy.find(match.substr(0, x));
      if (it == named.legacy.end()) continue;
      out += it->second;
      out += match.substr(x);
      done = true;
    }
    if (!done) {
      out.push_back(U'&');
      out += match;
    }
    i = end;
  }
  return out;
}

char32_t windows1252_c1(unsigned byte) {
  static constexpr char32_t kTable[32] = {
      0x20AC, 0x81,   0x201A, 0x192,  0x201E, 0x2026, 0x2020, 0x2021, 0x2C6,  0x2030, 0x160,
      0x2039, 0x152,  0x8D,   0x17D,  0x8F,   0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
      0x2013, 0x2014, 0x2DC,  0x2122, 0x161,  0x203A, 0x153,  0x9D,   0x17E,  0x178};
  return byte >= 0x80 && byte <= 0x9F ? kTable[byte - 0x80] : char32_t(byte);
}

std::u32string decode_numeric_reference(char32_t code) {
  if (code == 0) return U"\uFFFD";
  if (code == 0x0D) return U"\r";
  if (code >= 0x80 && code <= 0x9F) return std::u32string(1, windows1252_c1(code));
  if ((code >= 0xD800 && code <= 0xDFFF) || code > 0x10FFFF) return U"\uFFFD";
  bool invalid = (code >= 0x01 && code <= 0x08) || code == 0x0B || (code >= 0x0E && code <= 0x1F) || code == 0x7F ||
                 (code >= 0xFDD0 && code <= 0xFDEF) || (code & 0xFFFE) == 0xFFFE;
  if (invalid) return U"";
  return std::u32string(1, code);
}

std::u32string decode_html_reference(std::u32string_view match) {
  std::u32string m(match);
  if (m.size() < 3 || m.front() != U'&' || m.back() != U';') return m;
  std::u32string body = m.substr(1, m.size() - 2);
  if (body[0] != U'#') {
    const auto& t = named_table();
    auto it = t.find(body);
    return it == t.end() ? m : it->second;
  }
  // html.unescape() must consume every digit up to the ';', otherwise ftfy keeps the original text.
  bool hex = body.size() > 1 && (body[1] == U'x' || body[1] == U'X');
  size_t start = hex ? 2 : 1;
  if (start >= body.size()) return m;
  uint64_t value = 0;
  for (size_t i = start; i < body.size(); ++i) {
    char32_t c = body[i];
    int digit;
    if (c >= U'0' && c <= U'9') digit = int(c - U'0');
    else if (hex && c >= U'a' && c <= U'f') digit = int(c - U'a' + 10);
    else if (hex && c >= U'A' && c <= U'F') digit = int(c - U'A' + 10);
    else return m;
    value = value * (hex ? 16 : 10) + uint64_t(digit);
    if (value > 0x110000) value = 0x110000;  // saturate: anything past U+10FFFF decodes the same
  }
  return decode_numeric_reference(char32_t(value));
}

}  // namespace pigment
