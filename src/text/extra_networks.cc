#include "text/extra_networks.h"

#include <charconv>
#include <cmath>
#include <cstdlib>

#include "core/error.h"
#include "text/unicode_text.h"

namespace pigment {
namespace {

std::string strip_python_space(const std::string& s) {
  std::u32string u = utf8_to_u32(s);
  size_t b = 0, e = u.size();
  while (b < e && is_python_space(u[b])) ++b;
  while (e > b && is_python_space(u[e - 1])) --e;
  return u32_to_utf8(std::u32string_view(u).substr(b, e - b));
}

// Python float(): surrounding white space, an optional sign, decimal or exponent forms, inf / nan.
bool parse_python_float(const std::string& text, double& out) {
  std::string s = strip_python_space(text);
  if (s.empty()) return false;
  bool negative = s[0] == '-';
  size_t start = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  std::string body = s.substr(start);
  std::string lower;
  for (char c : body) lower.push_back(char(c >= 'A' && c <= 'Z' ? c + 32 : c));
  double v;
  if (lower == "inf" || lower == "infinity") {
    v = INFINITY;
  } else if (lower == "nan") {
    v = NAN;
  } else {
    if (body.empty() || !(std::isdigit((unsigned char)body[0]) || body[0] == '.')) return false;
    auto [end, ec] = std::from_chars(body.data(), body.data() + body.size(), v);
    if (end != body.data() + body.size()) return false;
    if (ec == std::errc::result_out_of_range)
      v = std::strtod(body.c_str(), nullptr);
    else if (ec != std::errc())
      return false;
  }
  out = negative ? -v : v;
  return true;
}

// Python int() of a decimal string.
bool parse_python_int(const std::string& text, int& out) {
  std::string s = strip_python_space(text);
  size_t start = (!s.empty() && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
  if (start == s.size()) return false;
  int v = 0;
  auto [end, ec] = std::from_chars(s.data() + start, s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return false;
  out = s[0] == '-' ? -v : v;
  return true;
}

double weight_of(const ExtraNetworkTag& t, const std::string& value, const char* what) {
  double w;
  PIG_CHECK(parse_python_float(value, w), "prompt tag ", t.tag, ": ", what, " '", value, "' is not a number");
  return w;
}

void read_arguments(ExtraNetworkTag& t) {
  for (const auto& item : t.items) {
    size_t eq = item.find('=');
    bool named = eq != std::string::npos && item.find('=', eq + 1) == std::string::npos;  // split('=', 2) gives 2
    if (named)
      t.named[item.substr(0, eq)] = item.substr(eq + 1);
    else
      t.positional.push_back(item);
  }
  if (t.kind == "lora" || t.kind == "lyco") {
    PIG_CHECK(!t.positional.empty(), "prompt tag ", t.tag, ": no network name (expected <", t.kind, ":NAME:WEIGHT>)");
    t.name = t.positional[0];
    double te = t.positional.size() > 1 ? weight_of(t, t.positional[1], "text-encoder weight") : 1.0;
    if (t.named.count("te")) te = weight_of(t, t.named["te"], "te");
    double unet = t.positional.size() > 2 ? weight_of(t, t.positional[2], "UNet weight") : te;
    if (t.named.count("unet")) unet = weight_of(t, t.named["unet"], "unet");
    t.te_weight = te;
    t.unet_weight = unet;
    std::string dyn = t.named.count("dyn") ? t.named["dyn"] : (t.positional.size() > 3 ? t.positional[3] : "");
    if (!dyn.empty())
      PIG_CHECK(parse_python_int(dyn, t.dyn_dim), "prompt tag ", t.tag, ": dyn '", dyn, "' is not an integer");
  } else if (t.kind == "hypernet") {
    t.name = t.items[0];
    double m = t.items.size() > 1 ? weight_of(t, t.items[1], "multiplier") : 1.0;
    t.te_weight = t.unet_weight = m;
  } else {
    t.name = t.positional.empty() ? t.items[0] : t.positional[0];
  }
}

}  // namespace

ExtraNetworkPrompt extract_extra_networks(std::string_view prompt) {
  const std::u32string s = utf8_to_u32(prompt);
  ExtraNetworkPrompt out;
  std::u32string kept;
  size_t i = 0;
  while (i < s.size()) {
    // `<(\w+):([^>]+)>` at i
    if (s[i] == U'<') {
      size_t k = i + 1;
      while (k < s.size() && is_python_word(s[k])) ++k;
      if (k > i + 1 && k < s.size() && s[k] == U':') {
        size_t close = s.find(U'>', k + 1);
        if (close != std::u32string::npos && close > k + 1) {
          ExtraNetworkTag t;
          t.kind = u32_to_utf8(s.substr(i + 1, k - i - 1));
          t.tag = u32_to_utf8(s.substr(i, close + 1 - i));
          std::string args = u32_to_utf8(s.substr(k + 1, close - k - 1));
          for (size_t a = 0;;) {
            size_t colon = args.find(':', a);
            t.items.push_back(args.substr(a, colon == std::string::npos ? std::string::npos : colon - a));
            if (colon == std::string::npos) break;
            a = colon + 1;
          }
          read_arguments(t);
          out.tags.push_back(std::move(t));
          i = close + 1;
          continue;
        }
      }
    }
    kept.push_back(s[i++]);
  }
  out.prompt = u32_to_utf8(kept);
  return out;
}

}  // namespace pigment
