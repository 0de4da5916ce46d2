// The text sources of pigment's emoji data set: Unicode's emoji-test.txt (every emoji sequence with its name, group
// and subgroup) and CLDR's annotation files (a short name and keywords per emoji, per language). Both readers are
// strict: a line or element they do not understand is an error naming the file and line, never silently dropped.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace pigment::training {

// Where Debian puts them (packages unicode-data and unicode-cldr-core).
inline constexpr const char* kEmojiTestPath = "/usr/share/unicode/emoji/emoji-test.txt";
inline constexpr const char* kCldrCommonDir = "/usr/share/unicode/cldr/common";

// One fully-qualified line of emoji-test.txt:
//   1F9D1 1F3FD 200D 1F4BB ; fully-qualified # 🧑🏽‍💻 E12.1 technologist: medium skin tone
struct EmojiEntry {
  std::u32string code_points;
  std::string name;             // "technologist: medium skin tone"
  std::string version;          // "E12.1": the Emoji version that introduced it
  std::string group, subgroup;  // "People & Body", "person-role"
  int line = 0;                 // in the file, for messages
};

// The fully-qualified entries in file order (the CLDR order); minimally-qualified, unqualified and component lines
// are read and checked but not returned. `label` names the text in errors.
std::vector<EmojiEntry> parse_emoji_test(const std::string& text, const std::string& label);
std::vector<EmojiEntry> read_emoji_test(const std::string& path = kEmojiTestPath);

// "1F9D1 1F3FD 200D 1F4BB" or "1f9d1-1f3fd-200d-1f4bb" (spaces, '-' or '_' between code points) → code points.
std::u32string parse_code_points(const std::string& hex, const std::string& label);
// Upper-case hex, one per code point ("1F34E").
std::vector<std::string> code_point_hex(const std::u32string& cps);

// CLDR annotations of one language: the short name (type="tts") and the keywords (the other element, split at
// " | "), keyed by the sequence without U+FE0F (CLDR drops it from every cp attribute).
struct Annotation {
  std::string name;
  std::vector<std::string> keywords;
};
using Annotations = std::map<std::u32string, Annotation>;
std::u32string annotation_key(const std::u32string& cps);  // cps without U+FE0F

// Reads the <annotation> elements of a CLDR annotations XML file into `into` (a later file adds to and overrides an
// earlier one, so read annotations/xx.xml then annotationsDerived/xx.xml). Understands exactly what these files
// hold: comments, the XML declaration and DOCTYPE, other elements (skipped), and annotation elements with cp, type
// and draft attributes, text with the five predefined entities and numeric character references.
void parse_cldr_annotations(const std::string& xml, const std::string& label, Annotations& into);
// annotations/<lang>.xml and annotationsDerived/<lang>.xml under `cldr_common_dir`.
Annotations read_cldr_annotations(const std::string& lang, const std::string& cldr_common_dir = kCldrCommonDir);

}  // namespace pigment::training
