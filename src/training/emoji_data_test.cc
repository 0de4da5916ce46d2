#include "training/emoji_data.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "text/unicode_text.h"

namespace pigment::training {
namespace {

const char* kSample =
    "# emoji-test.txt sample\n"
    "\n"
    "# group: Food & Drink\n"
    "\n"
    "# subgroup: food-fruit\n"
    "1F34E                                      ; fully-qualified     # 🍎 E0.6 red apple\n"
    "\n"
    "# group: Symbols\n"
    "# subgroup: keycap\n"
    "0023 FE0F 20E3                             ; fully-qualified     # #️⃣ E0.6 keycap: #\n"
    "0023 20E3                                  ; unqualified         # #⃣ E0.6 keycap: #\n"
    "263A                                       ; unqualified         # ☺ E0.6 smiling face\n"
    "# subgroup: skin-tone\n"
    "1F3FB                                      ; component           # 🏻 E1.0 light skin tone\n"
    "\n"
    "# Status Counts\n"
    "# fully-qualified : 2\n"
    "# unqualified : 2\n"
    "# component : 1\n"
    "#EOF\n";

TEST(EmojiTest, ReadsFullyQualifiedEntriesWithGroups) {
  auto v = parse_emoji_test(kSample, "sample");
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].code_points, U"\U0001F34E");
  EXPECT_EQ(v[0].name, "red apple");
  EXPECT_EQ(v[0].version, "E0.6");
  EXPECT_EQ(v[0].group, "Food & Drink");
  EXPECT_EQ(v[0].subgroup, "food-fruit");
  EXPECT_EQ(v[0].line, 6);
  EXPECT_EQ(v[1].code_points, (std::u32string{0x23, 0xFE0F, 0x20E3}));
  EXPECT_EQ(v[1].name, "keycap: #");  // a '#' in the name is not a comment
  EXPECT_EQ(v[1].group, "Symbols");
  EXPECT_EQ(v[1].subgroup, "keycap");
}

TEST(EmojiTest, RejectsWhatItDoesNotUnderstand) {
  auto error_of = [](const std::string& text) {
    try {
      parse_emoji_test(text, "t.txt");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string head = "# group: G\n# subgroup: s\n";
  EXPECT_NE(error_of(head + "1F34E ; fully-qualifed # 🍎 E0.6 red apple\n").find("t.txt:3: unknown status"),
            std::string::npos);
  EXPECT_NE(error_of(head + "1F34F ; fully-qualified # 🍎 E0.6 red apple\n").find("does not start with the emoji"),
            std::string::npos);
  EXPECT_NE(error_of(head + "1F34E fully-qualified # 🍎 E0.6 red apple\n").find("t.txt:3: expected"),
            std::string::npos);
  EXPECT_NE(error_of("1F34E ; fully-qualified # 🍎 E0.6 red apple\n").find("outside any group"), std::string::npos);
  EXPECT_NE(error_of(head + "1F34E ; fully-qualified # 🍎 E0.6 red apple\n# fully-qualified : 2\n")
                .find("declares 2 fully-qualified lines but has 1"),
            std::string::npos);
  EXPECT_NE(error_of("# nothing\n").find("no fully-qualified emoji"), std::string::npos);
}

TEST(EmojiTest, CodePoints) {
  EXPECT_EQ(parse_code_points("1F468 200D 1F469", "x"), (std::u32string{0x1F468, 0x200D, 0x1F469}));
  EXPECT_EQ(parse_code_points("1f1ef-1f1f5", "x"), (std::u32string{0x1F1EF, 0x1F1F5}));
  EXPECT_EQ(parse_code_points("23_fe0f_20e3", "x"), (std::u32string{0x23, 0xFE0F, 0x20E3}));
  EXPECT_THROW(parse_code_points("", "x"), Error);
  EXPECT_THROW(parse_code_points("1F34G", "x"), Error);
  EXPECT_THROW(parse_code_points("110000", "x"), Error);
  EXPECT_THROW(parse_code_points("D800", "x"), Error);
  EXPECT_EQ(code_point_hex({0x23, 0x1F34E}), (std::vector<std::string>{"0023", "1F34E"}));
}

const char* kCldrSample = R"(<?xml version="1.0" encoding="UTF-8" ?>
<!DOCTYPE ldml SYSTEM "../../common/dtd/ldml.dtd">
<!-- Copyright -->
<ldml>
	<identity>
		<version number="$Revision$"/>
		<language type="en"/>
	</identity>
	<annotations>
		<!-- causes tool breakage
			 <annotation cp="">whitespace</annotation>
		-->
		<annotation cp="🍎">apple | fruit | red</annotation>
		<annotation cp="🍎" type="tts">red apple</annotation>
		<annotation cp="&amp;">ampersand | and</annotation>
		<annotation cp="&amp;" type="tts">ampersand</annotation>
		<annotation cp="☺" draft="contributed">face | outlined &#x263A; | &lt;smile&gt;</annotation> <!-- 263A -->
		<annotation cp="☺" type="tts" draft="contributed">smiling face</annotation>
	</annotations>
</ldml>
)";

TEST(CldrAnnotations, ReadsNamesAndKeywords) {
  Annotations a;
  parse_cldr_annotations(kCldrSample, "en.xml", a);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[U"\U0001F34E"].name, "red apple");
  EXPECT_EQ(a[U"\U0001F34E"].keywords, (std::vector<std::string>{"apple", "fruit", "red"}));
  EXPECT_EQ(a[U"&"].name, "ampersand");
  EXPECT_EQ(a[U"\u263A"].keywords, (std::vector<std::string>{"face", "outlined \u263A", "<smile>"}));
  EXPECT_EQ(a[U"\u263A"].name, "smiling face");
  // CLDR keys have no U+FE0F: emoji-test.txt's ☺️ (263A FE0F) finds the entry through annotation_key.
  EXPECT_EQ(annotation_key({0x263A, 0xFE0F}), U"\u263A");
  // A later file (annotationsDerived) adds entries and overrides.
  parse_cldr_annotations("<annotations><annotation cp=\"🍎\" type=\"tts\">apple (red)</annotation></annotations>",
                         "derived.xml", a);
  EXPECT_EQ(a[U"\U0001F34E"].name, "apple (red)");
  EXPECT_EQ(a[U"\U0001F34E"].keywords.size(), 3u);
}

TEST(CldrAnnotations, RejectsWhatItDoesNotUnderstand) {
  auto wrap = [](const std::string& s) { return "<annotations>\n" + s + "\n</annotations>"; };
  Annotations a;
  EXPECT_THROW(parse_cldr_annotations(wrap("<annotation cp=\"a\">x &nbsp; y</annotation>"), "x", a), Error);
  EXPECT_THROW(parse_cldr_annotations(wrap("<annotation cp=\"a\" alt=\"b\">x</annotation>"), "x", a), Error);
  EXPECT_THROW(parse_cldr_annotations(wrap("<annotation cp=\"a\" type=\"short\">x</annotation>"), "x", a), Error);
  EXPECT_THROW(parse_cldr_annotations(wrap("<annotation cp=\"a\">x"), "x", a), Error);
  EXPECT_THROW(parse_cldr_annotations(wrap("<annotation cp=\"a\">x <b>y</b></annotation>"), "x", a), Error);
  EXPECT_THROW(parse_cldr_annotations(wrap("<annotation type=\"tts\">x</annotation>"), "x", a), Error);
  EXPECT_THROW(parse_cldr_annotations("<annotation cp=\"a\">x</annotation>", "x", a), Error);  // outside
  EXPECT_THROW(parse_cldr_annotations(wrap("<!-- open"), "x", a), Error);
  EXPECT_THROW(parse_cldr_annotations("<ldml></ldml>", "x", a), Error);
  try {
    parse_cldr_annotations(wrap("<annotation cp=\"a\">x &bogus; y</annotation>"), "zh.xml", a);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("zh.xml:2: unknown entity &bogus;"), std::string::npos) << e.what();
  }
}

// The installed files (scripts/setup installs unicode-data and unicode-cldr-core): they must parse completely.
TEST(EmojiSources, DebianFilesParse) {
  ASSERT_TRUE(std::filesystem::exists(kEmojiTestPath))
      << kEmojiTestPath << " is missing: run scripts/setup (Debian package unicode-data)";
  ASSERT_TRUE(std::filesystem::exists(std::string(kCldrCommonDir) + "/annotations/en.xml"))
      << kCldrCommonDir << " is missing: run scripts/setup (Debian package unicode-cldr-core)";
  auto entries = read_emoji_test();
  EXPECT_GE(entries.size(), 3655u);  // Emoji 15.0 (Debian 12); later versions only add
  auto apple = std::find_if(entries.begin(), entries.end(), [](const EmojiEntry& e) { return e.name == "red apple"; });
  ASSERT_NE(apple, entries.end());
  EXPECT_EQ(apple->code_points, U"\U0001F34E");
  EXPECT_EQ(apple->group, "Food & Drink");
  Annotations en = read_cldr_annotations("en"), zh = read_cldr_annotations("zh");
  EXPECT_EQ(zh[U"\U0001F34E"].name, "红苹果");
  EXPECT_EQ(en[U"\U0001F34E"].keywords, (std::vector<std::string>{"apple", "fruit", "red"}));
  // A derived annotation (annotationsDerived): a skin-tone ZWJ sequence.
  std::u32string tech = annotation_key(parse_code_points("1F469 1F3FD 200D 1F4BB", "x"));
  EXPECT_EQ(en[tech].name, "woman technologist: medium skin tone");
  EXPECT_EQ(zh[tech].name, "女程序员: 中等肤色");
}

}  // namespace
}  // namespace pigment::training
