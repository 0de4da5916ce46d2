#include "training/emoji_data.h"

#include <cctype>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "text/unicode_text.h"

namespace pigment::training {
namespace {

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::string read_text(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  PIG_CHECK(in, path, ": cannot open ", what, " (scripts/setup installs it)");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

}  // namespace

std::u32string parse_code_points(const std::string& hex, const std::string& label) {
  std::u32string out;
  size_t i = 0;
  while (i < hex.size()) {
    char c = hex[i];
    if (c == ' ' || c == '-' || c == '_') {
      ++i;
      continue;
    }
    size_t j = i;
    uint32_t v = 0;
    while (j < hex.size() && std::isxdigit((unsigned char)hex[j]) && j - i < 7) {
      v = v * 16 + uint32_t(std::isdigit((unsigned char)hex[j]) ? hex[j] - '0' : (std::toupper(hex[j]) - 'A' + 10));
      ++j;
    }
    PIG_CHECK(j > i && (j == hex.size() || hex[j] == ' ' || hex[j] == '-' || hex[j] == '_'), label,
              ": expected hexadecimal code points separated by spaces or '-', got '", hex, "'");
    PIG_CHECK(v <= 0x10FFFF && (v < 0xD800 || v > 0xDFFF), label, ": ", hex.substr(i, j - i),
              " is not a Unicode scalar value");
    out.push_back(char32_t(v));
    i = j;
  }
  PIG_CHECK(!out.empty(), label, ": no code points in '", hex, "'");
  return out;
}

std::vector<std::string> code_point_hex(const std::u32string& cps) {
  std::vector<std::string> out;
  char buf[16];
  for (char32_t c : cps) {
    std::snprintf(buf, sizeof buf, "%04X", unsigned(c));
    out.push_back(buf);
  }
  return out;
}

std::vector<EmojiEntry> parse_emoji_test(const std::string& text, const std::string& label) {
  std::vector<EmojiEntry> out;
  std::string group, subgroup;
  std::map<std::string, int> counts, declared;
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string where = label + ":" + std::to_string(n);
    if (trim(line).empty()) continue;
    if (line[0] == '#') {
      if (starts_with(line, "# group: ")) {
        group = trim(line.substr(9)), subgroup.clear();
      } else if (starts_with(line, "# subgroup: ")) {
        PIG_CHECK(!group.empty(), where, ": a subgroup before any group");
        subgroup = trim(line.substr(12));
      } else {
        // "# fully-qualified : 3655" in the closing "Status Counts" block.
        for (const char* s : {"fully-qualified", "minimally-qualified", "unqualified", "component"}) {
          std::string p = std::string("# ") + s + " : ";
          if (starts_with(line, p)) declared[s] = std::stoi(line.substr(p.size()));
        }
      }
      continue;
    }
    size_t semi = line.find(';');
    size_t hash = semi == std::string::npos ? semi : line.find('#', semi);
    PIG_CHECK(hash != std::string::npos, where, ": expected 'code points ; status # emoji Ex.y name', got '", line,
              "'");
    std::u32string cps = parse_code_points(trim(line.substr(0, semi)), where);
    std::string status = trim(line.substr(semi + 1, hash - semi - 1));
    PIG_CHECK(status == "fully-qualified" || status == "minimally-qualified" || status == "unqualified" ||
                  status == "component",
              where, ": unknown status '", status, "'");
    ++counts[status];
    // "# 🧑🏽‍💻 E12.1 technologist: medium skin tone": the emoji itself, its version and its name.
    std::string rest = trim(line.substr(hash + 1));
    std::string emoji = u32_to_utf8(cps);
    PIG_CHECK(starts_with(rest, emoji + " "), where, ": the comment does not start with the emoji of the code points");
    rest = rest.substr(emoji.size() + 1);
    size_t sp = rest.find(' ');
    PIG_CHECK(sp != std::string::npos && rest.size() > 1 && rest[0] == 'E', where, ": expected 'Ex.y name' after the emoji");
    if (status != "fully-qualified") continue;
    PIG_CHECK(!group.empty() && !subgroup.empty(), where, ": an emoji outside any group/subgroup");
    EmojiEntry e;
    e.code_points = cps;
    e.version = rest.substr(0, sp);
    e.name = trim(rest.substr(sp + 1));
    e.group = group, e.subgroup = subgroup, e.line = n;
    PIG_CHECK(!e.name.empty(), where, ": an emoji without a name");
    out.push_back(std::move(e));
  }
  for (const auto& [status, count] : declared)
    PIG_CHECK(counts[status] == count, label, ": the file declares ", count, " ", status, " lines but has ",
              counts[status]);
  PIG_CHECK(!out.empty(), label, ": no fully-qualified emoji (is this emoji-test.txt?)");
  return out;
}

std::vector<EmojiEntry> read_emoji_test(const std::string& path) {
  return parse_emoji_test(read_text(path, "Unicode's emoji-test.txt (Debian package unicode-data)"), path);
}

std::u32string annotation_key(const std::u32string& cps) {
  std::u32string k;
  for (char32_t c : cps)
    if (c != 0xFE0F) k.push_back(c);
  return k;
}

namespace {

// Text or an attribute value with its references resolved: &amp; &lt; &gt; &quot; &apos; &#N; &#xH;.
std::string decode_xml_text(const std::string& s, const std::string& where) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (s[i] != '&') {
      out += s[i++];
      continue;
    }
    size_t semi = s.find(';', i);
    PIG_CHECK(semi != std::string::npos && semi - i <= 10, where, ": an '&' that starts no entity in '", s, "'");
    std::string ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp") out += '&';
    else if (ent == "lt") out += '<';
    else if (ent == "gt") out += '>';
    else if (ent == "quot") out += '"';
    else if (ent == "apos") out += '\'';
    else if (ent.size() > 1 && ent[0] == '#') {
      bool hex = ent[1] == 'x';
      std::string digits = ent.substr(hex ? 2 : 1);
      PIG_CHECK(!digits.empty() && digits.find_first_not_of(hex ? "0123456789abcdefABCDEF" : "0123456789") ==
                                       std::string::npos,
                where, ": bad character reference &", ent, ";");
      unsigned long v = std::stoul(digits, nullptr, hex ? 16 : 10);
      PIG_CHECK(v > 0 && v <= 0x10FFFF, where, ": bad character reference &", ent, ";");
      append_utf8(out, char32_t(v));
    } else {
      fail(where, ": unknown entity &", ent, ";");
    }
    i = semi + 1;
  }
  return out;
}

std::vector<std::string> split_keywords(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t bar = s.find('|', start);
    std::string k = trim(s.substr(start, bar == std::string::npos ? std::string::npos : bar - start));
    if (!k.empty()) out.push_back(k);
    if (bar == std::string::npos) break;
    start = bar + 1;
  }
  return out;
}

}  // namespace

void parse_cldr_annotations(const std::string& xml, const std::string& label, Annotations& into) {
  // Line numbers for messages, counted incrementally (positions only move forward).
  size_t counted = 0;
  int line = 1;
  auto line_of = [&](size_t pos) {
    for (; counted < pos; ++counted) line += xml[counted] == '\n';
    return label + ":" + std::to_string(line);
  };
  size_t i = 0;
  int found = 0;
  bool in_annotations = false;
  while ((i = xml.find('<', i)) != std::string::npos) {
    if (xml.compare(i, 4, "<!--") == 0) {
      size_t e = xml.find("-->", i + 4);
      PIG_CHECK(e != std::string::npos, line_of(i), ": an unterminated comment");
      i = e + 3;
      continue;
    }
    size_t gt = xml.find('>', i);
    PIG_CHECK(gt != std::string::npos, line_of(i), ": an unterminated tag");
    if (xml[i + 1] == '?' || xml[i + 1] == '!') {  // <?xml ...?>, <!DOCTYPE ...>
      i = gt + 1;
      continue;
    }
    std::string tag = xml.substr(i + 1, gt - i - 1);
    if (tag == "annotations") in_annotations = true;
    if (tag == "/annotations") in_annotations = false;
    if (tag.compare(0, 11, "annotation ") != 0) {  // another element: ldml, identity, version, ...
      i = gt + 1;
      continue;
    }
    const std::string where = line_of(i);
    PIG_CHECK(in_annotations, where, ": an <annotation> outside <annotations>");
    // Attributes: name="value", separated by spaces.
    std::map<std::string, std::string> attrs;
    size_t a = 10;
    while (true) {
      while (a < tag.size() && (tag[a] == ' ' || tag[a] == '\t')) ++a;
      if (a >= tag.size()) break;
      size_t eq = tag.find("=\"", a);
      PIG_CHECK(eq != std::string::npos, where, ": expected name=\"value\" in <", tag, ">");
      size_t q = tag.find('"', eq + 2);
      PIG_CHECK(q != std::string::npos, where, ": an unterminated attribute in <", tag, ">");
      std::string name = tag.substr(a, eq - a);
      PIG_CHECK(name == "cp" || name == "type" || name == "draft", where, ": unexpected attribute '", name, "'");
      PIG_CHECK(!attrs.count(name), where, ": attribute '", name, "' twice");
      attrs[name] = decode_xml_text(tag.substr(eq + 2, q - eq - 2), where);
      a = q + 1;
    }
    PIG_CHECK(attrs.count("cp") && !attrs["cp"].empty(), where, ": an <annotation> without cp");
    PIG_CHECK(!attrs.count("type") || attrs["type"] == "tts", where, ": unknown annotation type '", attrs["type"], "'");
    size_t close = xml.find("</annotation>", gt + 1);
    PIG_CHECK(close != std::string::npos, where, ": an <annotation> without </annotation>");
    std::string raw = xml.substr(gt + 1, close - gt - 1);
    PIG_CHECK(raw.find('<') == std::string::npos, where, ": markup inside an <annotation>");
    std::string text = trim(decode_xml_text(raw, where));
    Annotation& ann = into[annotation_key(utf8_to_u32(attrs["cp"]))];
    if (attrs.count("type")) ann.name = text;
    else ann.keywords = split_keywords(text);
    ++found;
    i = close + 13;
  }
  PIG_CHECK(found > 0, label, ": no <annotation> elements (is this a CLDR annotations file?)");
}

Annotations read_cldr_annotations(const std::string& lang, const std::string& cldr_common_dir) {
  Annotations out;
  for (const char* sub : {"annotations", "annotationsDerived"}) {
    std::string path = cldr_common_dir + "/" + sub + "/" + lang + ".xml";
    parse_cldr_annotations(read_text(path, "CLDR annotations (Debian package unicode-cldr-core)"), path, out);
  }
  return out;
}

}  // namespace pigment::training
