#include "pipelines/infotext.h"

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <regex>

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
