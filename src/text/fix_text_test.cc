#include "text/fix_text.h"

#include <gtest/gtest.h>

#include "text/clip_tokenizer.h"
#include "text/html_entities.h"
#include "text/unicode_text.h"

namespace pigment {
namespace {

std::string fix(const std::string& s) { return ftfy_fix_text(std::string_view(s)); }

TEST(FixText, HtmlReferencesOnlyWithoutTags) {
  EXPECT_EQ(fix("Tom &amp; Jerry &#39;x&#x27; &nbsp;"), "Tom & Jerry 'x' \u00a0");
  EXPECT_EQ(fix("&amp;lt;"), "<");                   // repeated until nothing changes
  EXPECT_EQ(fix("<b>&amp;</b>"), "<b>&amp;</b>");    // looks like HTML: left alone
  EXPECT_EQ(fix("a\n<b>\n&amp;"), "a\n<b>\n&amp;");  // ... from that line on
  EXPECT_EQ(fix("&amp;\n<"), "&\n<");
  EXPECT_EQ(fix("&EACUTE;cole &bogus; &#12a;"), "\u00c9cole &bogus; &#12a;");
  EXPECT_EQ(fix("&#0;&#x110000;&#128;"), "\ufffd\ufffd\u20ac");
}

TEST(FixText, CharacterFixes) {
  EXPECT_EQ(fix("\ufb01sh \u0133"), "fish ij");                 // Latin ligatures
  EXPECT_EQ(fix("\uff21\uff22\uff23\uff11\u3000x"), "ABC1 x");  // full width
  EXPECT_EQ(fix("\u201cquoted\u201d \u2018it\u2019s\u2019"), "\"quoted\" 'it's'");
  EXPECT_EQ(fix("a\x1b[31mred\x1b[0m\x01\x7f"), "ared");           // terminal escapes, controls
  EXPECT_EQ(fix("caf\x65\xcc\x81 \xc2\x85"), "caf\u00e9 \u2026");  // NFC; C1 control read as Windows-1252
  EXPECT_EQ(fix("a\r\nb\rc\u2028d"), "a\nb\nc\nd");
  EXPECT_EQ(fix("zero\u200bwidth soft\u00adhyphen"), "zero\u200bwidth soft\u00adhyphen");  // kept by ftfy
}

TEST(FixText, WhitespaceClean) {
  EXPECT_EQ(u32_to_utf8(clip_whitespace_clean(utf8_to_u32("  a\t\tb\u00a0\u2009c\n "))), "a b c");
  EXPECT_EQ(u32_to_utf8(clip_whitespace_clean(utf8_to_u32(" \n "))), "");
}

TEST(UnicodeText, PythonLower) {
  EXPECT_EQ(u32_to_utf8(python_lower(utf8_to_u32("\u0130stanbul"))), "i\u0307stanbul");
  EXPECT_EQ(u32_to_utf8(python_lower(utf8_to_u32("\u03a3\u039f\u03a6\u0399\u0391\u03a3 \u03a3"))),
            "\u03c3\u03bf\u03c6\u03b9\u03b1\u03c2 \u03c3");  // final sigma only after a letter, at a word end
  EXPECT_EQ(u32_to_utf8(python_lower(utf8_to_u32("\u2163 ABC"))), "\u2173 abc");
}

TEST(UnicodeText, InvalidUtf8BecomesReplacement) {
  const std::string bad = std::string("a\xff") + "b";
  EXPECT_EQ(utf8_to_u32(bad), U"a\uFFFDb");
}

// Python's html.unescape (the values below are what Python 3.11 returns for the same text).
TEST(FixText, PythonHtmlUnescape) {
  auto unescape = [](const std::string& s) { return u32_to_utf8(python_html_unescape(utf8_to_u32(s))); };
  EXPECT_EQ(unescape("<b>&amp;</b>"), "<b>&</b>");  // no "looks like HTML" rule, unlike ftfy
  EXPECT_EQ(unescape("&ampx &amp &copy2 &notit; &EACUTE; &TRADE; &#39 &#x27x &# &bogus; &lt&gt"),
            "&x & \u00a92 \u00acit; &EACUTE; \u2122 ' 'x &# &bogus; <>");
  EXPECT_EQ(unescape("&amp;lt;"), "&lt;");  // once per call
}

TEST(ClipTokenizerOpenai, UnescapesTwiceAfterFtfy) {
  ClipTokenizer openai = ClipTokenizer::builtin();
  openai.set_text_cleanup(ClipTokenizer::TextCleanup::kOpenai);
  ClipTokenizer hf = ClipTokenizer::builtin();
  // "<b>" stops ftfy's unescaping, OpenAI's html.unescape still decodes "&amp;amp;" twice.
  EXPECT_EQ(openai.tokenize("<b> &amp;amp;"), hf.tokenize("<b> &"));
  EXPECT_NE(hf.tokenize("<b> &amp;amp;"), hf.tokenize("<b> &"));
  EXPECT_EQ(openai.encode("a photograph of an astronaut"), hf.encode("a photograph of an astronaut"));
}

}  // namespace
}  // namespace pigment
