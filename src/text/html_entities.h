// HTML character references as ftfy's unescape_html decodes them (`&name;`, `&#123;`, `&#x7B;`).
#pragma once
#include <string>
#include <string_view>

namespace pigment {

// The replacement for one reference matched by ftfy's pattern `&#?[0-9A-Za-z]{1,24};` (the whole match, with '&'
// and ';'), or the match itself when ftfy leaves it alone. Named references cover the HTML 4 set (plus &apos;) and
// their all-caps spellings (&EACUTE; -> É), not the full HTML5 list of ~2000 names.
std::u32string decode_html_reference(std::u32string_view match);

// Python's html.unescape(): `&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)`, numeric references as
// decode_numeric_reference, named ones from the same HTML 4 set (without ftfy's capital spellings; without the ';'
// only html5's legacy names: Latin-1, amp/lt/gt/quot, AMP/COPY/GT/LT/QUOT/REG). HTML5-only names stay as written.
std::u32string python_html_unescape(std::u32string_view text);

// Python html.unescape() of a numeric reference's digits ("39" or "x27"): invalid and surrogate code points
// become U+FFFD, the C1 range maps to Windows-1252, non-characters vanish.
std::u32string decode_numeric_reference(char32_t code);

// Windows-1252 ("sloppy": unmapped bytes keep their Latin-1 meaning) for a byte 0x80..0x9F.
char32_t windows1252_c1(unsigned byte);

}  // namespace pigment
