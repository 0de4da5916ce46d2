#include "pipelines/infotext.h"

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/error.h"

namespace pigment {

const std::string* Infotext::find(const std::string& key) const {
  for (const auto& [k, v] : params)
    if (k == key) return &v;
  return nullptr;
}

void Infotext::set(const std::string& key, const std::string& value) {
  for (auto& [k, v] : params)
    if (k == key) {
      v = value;
      return;
    }
  params.emplace_back(key, value);
}

std::string format_number(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string((long long)v);
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest round-trip form, like Python's repr
  return std::string(buf, r.ptr);
}

namespace {

std::string_view trimmed(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == '\r')) v.remove_suffix(1);
  return v;
}

// The whole of `v` as an integer, or nullopt (no sign other than a leading '-', no trailing text, in range).
std::optional<int64_t> whole_integer(std::string_view v) {
  int64_t x = 0;
  auto r = std::from_chars(v.data(), v.data() + v.size(), x);
  if (v.empty() || r.ec != std::errc() || r.ptr != v.data() + v.size()) return std::nullopt;
  return x;
}

[[noreturn]] void bad_field(const std::string& source, const std::string& key, const std::string& value,
                            const char* expected) {
  fail(source, ": infotext field '", key, "': '", value, "' is ", expected);
}

}  // namespace

std::optional<int64_t> infotext_integer(const Infotext& info, const std::string& key, const std::string& source) {
  const std::string* v = info.find(key);
  if (!v) return std::nullopt;
  auto x = whole_integer(trimmed(*v));
  if (!x) bad_field(source, key, *v, "not an integer");
  return x;
}

std::optional<double> infotext_number(const Infotext& info, const std::string& key, const std::string& source) {
  const std::string* v = info.find(key);
  if (!v) return std::nullopt;
  std::string_view t = trimmed(*v);
  double x = 0;
  auto r = std::from_chars(t.data(), t.data() + t.size(), x);
  if (t.empty() || r.ec != std::errc() || r.ptr != t.data() + t.size() || !std::isfinite(x))
    bad_field(source, key, *v, "not a number");
  return x;
}

std::optional<std::pair<int, int>> infotext_size(const Infotext& info, const std::string& key,
                                                 const std::string& source, bool allow_zero) {
  const std::string* v = info.find(key);
  if (!v) return std::nullopt;
  std::string_view t = trimmed(*v);
  size_t x = t.find('x');
  std::optional<int64_t> w, h;
  if (x != std::string_view::npos) {
    w = whole_integer(t.substr(0, x));
    h = whole_integer(t.substr(x + 1));
  }
  const int64_t lowest = allow_zero ? 0 : 1;
  if (!w || !h || *w < lowest || *h < lowest || *w > 65536 || *h > 65536)
    bad_field(source, key, *v, allow_zero ? "not a size WxH of two integers" : "not a size WxH of two positive integers");
  return std::pair{int(*w), int(*h)};
}

namespace {
std::string quote(const std::string& v) {
  if (v.find_first_of(",\n:") == std::string::npos) return v;
  return nlohmann::json(v).dump();
}
}  // namespace

std::string format_infotext(const Infotext& info) {
  std::string out = info.prompt;
  if (!info.negative_prompt.empty()) out += "\nNegative prompt: " + info.negative_prompt;
  std::string line;
  for (const auto& [k, v] : info.params) {
    if (!line.empty()) line += ", ";
    line += (k == v) ? k : k + ": " + quote(v);
  }
  if (!line.empty()) out += "\n" + line;
  return out;
}

Infotext parse_infotext(const std::string& text) {
  static const std::regex re_param(R"(\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$))");
  Infotext info;
  std::vector<std::string> lines;
  size_t start = 0;
  while (true) {
    size_t nl = text.find('\n', start);
    lines.push_back(text.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  std::string last = lines.back();
  std::vector<std::pair<std::string, std::string>> found;
  for (auto it = std::sregex_iterator(last.begin(), last.end(), re_param); it != std::sregex_iterator(); ++it)
    found.emplace_back((*it)[1].str(), (*it)[2].str());
  if (found.size() >= 3) lines.pop_back();
  else found.clear();
  bool negative = false;
  std::string prompt, neg;
  for (const auto& l : lines) {
    std::string s = l;
    while (!s.empty() && (s.back() == ' ' || s.back() == '\r')) s.pop_back();
    size_t b = s.find_first_not_of(' ');
    s = b == std::string::npos ? "" : s.substr(b);
    if (s.rfind("Negative prompt:", 0) == 0) {
      negative = true;
      s = s.substr(16);
      size_t nb = s.find_first_not_of(' ');
      s = nb == std::string::npos ? "" : s.substr(nb);
    }
    std::string& dst = negative ? neg : prompt;
    dst += (dst.empty() ? "" : "\n") + s;
  }
  info.prompt = prompt;
  info.negative_prompt = neg;
  for (auto& [k, v] : found) {
    std::string val = v;
    while (!val.empty() && val.back() == ' ') val.pop_back();
    if (val.size() >= 2 && val.front() == '"' && val.back() == '"') {
      try {
        val = nlohmann::json::parse(val).get<std::string>();
      } catch (const std::exception&) {
      }
    }
    info.params.emplace_back(k, val);
  }
  return info;
}

}  // namespace pigment
