#include "text/prompt_parser.h"

#include <algorithm>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <set>

#include "core/error.h"
#include "text/unicode_text.h"

namespace pigment {
namespace {

using U32 = std::u32string;

// Python float() of an ASCII numeral such as "1.", ".5", "-2", "1e3" (the caller has checked the shape).
std::optional<double> python_float(const U32& s) {
  std::string a;
  for (char32_t c : s) {
    if (c > 0x7F) return std::nullopt;
    a.push_back(char(c));
  }
  size_t start = (!a.empty() && (a[0] == '+' || a[0] == '-')) ? 1 : 0;
  if (start == a.size()) return std::nullopt;
  double v = 0;
  auto [end, ec] = std::from_chars(a.data() + start, a.data() + a.size(), v);
  if (end != a.data() + a.size()) return std::nullopt;
  // Out of range: Python gives inf or (sub)normal/zero, as strtod does (the text is ASCII digits, '.', 'e').
  if (ec == std::errc::result_out_of_range)
    v = std::strtod(a.c_str() + start, nullptr);
  else if (ec != std::errc())
    return std::nullopt;
  return a[0] == '-' ? -v : v;
}

size_t count_digits(const U32& s, size_t i) {
  size_t k = i;
  while (k < s.size() && is_ascii_digit(s[k])) ++k;
  return k - i;
}

// ---------------------------------------------------------------------------------------------------------------
// Emphasis.

// True when "BREAK" at i is a whole word (Python's \b on both sides).
bool break_word_at(const U32& s, size_t i) {
  static const U32 kBreak = U"BREAK";
  if (s.compare(i, kBreak.size(), kBreak) != 0) return false;
  bool left = i == 0 || !is_python_word(s[i - 1]);
  bool right = i + 5 == s.size() || !is_python_word(s[i + 5]);
  return left && right;
}

// re.split(r"\s*\bBREAK\b\s*", text)
std::vector<U32> split_on_break(const U32& s) {
  std::vector<U32> parts;
  size_t piece_start = 0, p = 0;
  while (p < s.size()) {
    size_t w = p;
    while (w < s.size() && is_python_space(s[w])) ++w;
    if (break_word_at(s, w)) {
      size_t end = w + 5;
      while (end < s.size() && is_python_space(s[end])) ++end;
      parts.push_back(s.substr(piece_start, p - piece_start));
      piece_start = p = end;
    } else {
      ++p;
    }
  }
  parts.push_back(s.substr(piece_start));
  return parts;
}

struct Weighted {
  U32 text;
  double weight;
};

}  // namespace

std::vector<WeightedText> parse_prompt_attention(std::string_view prompt) {
  const U32 s = utf8_to_u32(prompt);
  std::vector<Weighted> res;
  std::vector<size_t> round, square;
  const double round_mult = 1.1, square_mult = 1 / 1.1;
  auto multiply_range = [&](size_t start, double m) {
    for (size_t p = start; p < res.size(); ++p) res[p].weight *= m;
  };
  auto is_syntax = [](char32_t c) {
    return c == U'\\' || c == U'(' || c == U')' || c == U'[' || c == U']' || c == U':';
  };
  auto add_text = [&](const U32& text) {
    std::vector<U32> parts = split_on_break(text);
    for (size_t k = 0; k < parts.size(); ++k) {
      if (k > 0) res.push_back({U"BREAK", -1.0});
      res.push_back({parts[k], 1.0});
    }
  };

  size_t i = 0;
  while (i < s.size()) {
    char32_t c = s[i];
    if (c == U'\\') {
      char32_t next = i + 1 < s.size() ? s[i + 1] : 0;
      bool escape = next == U'(' || next == U')' || next == U'[' || next == U']' || next == U'\\';
      res.push_back({escape ? U32(1, next) : U32(), 1.0});  // a lone backslash stands for nothing
      i += escape ? 2 : 1;
    } else if (c == U'(') {
      round.push_back(res.size());
      ++i;
    } else if (c == U'[') {
      square.push_back(res.size());
      ++i;
    } else if (c == U':') {
      // ":<[+-]?[.\d]+>)" is a weight token; any other ':' is text.
      size_t k = i + 1;
      if (k < s.size() && (s[k] == U'+' || s[k] == U'-')) ++k;
      size_t body = k;
      while (k < s.size() && (s[k] == U'.' || is_ascii_digit(s[k]))) ++k;
      if (k > body && k < s.size() && s[k] == U')') {
        U32 token = s.substr(i, k + 1 - i);
        if (!round.empty()) {
          U32 number = s.substr(i + 1, k - i - 1);
          auto w = python_float(number);
          PIG_CHECK(w, "prompt: emphasis weight '", u32_to_utf8(number), "' in '", u32_to_utf8(token),
                    "' is not a number (expected a form such as (text:1.2))");
          multiply_range(round.back(), *w);
          round.pop_back();
        } else {
          add_text(token);
        }
        i = k + 1;
      } else {
        add_text(U":");
        ++i;
      }
    } else if (c == U')' || c == U']') {
      auto& stack = c == U')' ? round : square;
      if (!stack.empty()) {
        multiply_range(stack.back(), c == U')' ? round_mult : square_mult);
        stack.pop_back();
      } else {
        add_text(U32(1, c));
      }
      ++i;
    } else {
      size_t k = i;
      while (k < s.size() && !is_syntax(s[k])) ++k;
      add_text(s.substr(i, k - i));
      i = k;
    }
  }
  for (size_t pos : round) multiply_range(pos, round_mult);
  for (size_t pos : square) multiply_range(pos, square_mult);
  if (res.empty()) res.push_back({U32(), 1.0});

  std::vector<Weighted> merged;
  for (auto& r : res) {
    if (!merged.empty() && merged.back().weight == r.weight)
      merged.back().text += r.text;
    else
      merged.push_back(std::move(r));
  }
  std::vector<WeightedText> out;
  out.reserve(merged.size());
  for (auto& m : merged) out.push_back({u32_to_utf8(m.text), m.weight});
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Prompt editing. A1111 parses with a lark Earley grammar:
//   start: (prompt | /[][():]/+)*
//   prompt: (emphasized | scheduled | alternate | plain | WHITESPACE)*
//   emphasized: "(" prompt ")" | "(" prompt ":" prompt ")" | "[" prompt "]"
//   scheduled: "[" [prompt ":"] prompt ":" [WHITESPACE] NUMBER "]"
//   alternate: "[" prompt ("|" prompt)+ "]"
//   plain: /([^\\\[\]():|]|\\.)+/
// Inside brackets everything must be well formed; at the top level a bracket or ':' that starts nothing valid is
// kept as a literal character. Where both readings exist the parser takes the bracket construct, as lark's
// ambiguity resolution does. The recursive descent below makes the same choices.
namespace {

struct Item;
using Prompt = std::vector<Item>;

struct Item {
  enum Kind { kText, kEmphasized, kScheduled, kAlternate } kind = kText;
  U32 text;                     // kText: the raw text (escapes kept); kEmphasized: the opening bracket
  std::vector<Prompt> prompts;  // kEmphasized: 1 or 2 (after ':'); kScheduled: [before,] after; kAlternate: options
  bool has_before = false;      // kScheduled
  double when_raw = 0;          // kScheduled: the NUMBER as written
  long long when = 0;           // kScheduled: after conversion to a step
};

class ScheduleParser {
 public:
  explicit ScheduleParser(const U32& s) : s_(s) {}

  // The top level; nullopt when the grammar rejects the prompt.
  std::optional<Prompt> parse_start() {
    Prompt out;
    size_t pos = 0;
    while (pos < s_.size()) {
      size_t before = pos;
      Prompt p = parse_prompt(pos);
      if (pos > before) {
        out.insert(out.end(), p.begin(), p.end());
        continue;
      }
      char32_t c = s_[pos];
      if (c == U'[' || c == U']' || c == U'(' || c == U')' || c == U':') {
        Item lit;
        lit.text = U32(1, c);
        out.push_back(std::move(lit));
        ++pos;
        continue;
      }
      return std::nullopt;  // '|' outside alternation, or a backslash with nothing (or a newline) after it
    }
    return out;
  }

 private:
  bool plain_char_at(size_t i, size_t& len) const {
    char32_t c = s_[i];
    if (c == U'\\') {
      if (i + 1 < s_.size() && s_[i + 1] != U'\n') {
        len = 2;
        return true;
      }
      return false;
    }
    if (c == U'[' || c == U']' || c == U'(' || c == U')' || c == U':' || c == U'|') return false;
    len = 1;
    return true;
  }

  // A run of items; stops (without failing) at anything that cannot continue a prompt.
  Prompt parse_prompt(size_t& pos) {
    Prompt items;
    while (pos < s_.size()) {
      size_t len = 0;
      if (plain_char_at(pos, len)) {
        size_t start = pos;
        while (pos < s_.size() && plain_char_at(pos, len)) pos += len;
        Item t;
        t.text = s_.substr(start, pos - start);
        items.push_back(std::move(t));
        continue;
      }
      char32_t c = s_[pos];
      if (c != U'(' && c != U'[') break;
      size_t p = pos;
      std::optional<Item> item = c == U'(' ? parse_round(p) : parse_square(p);
      if (!item) break;
      items.push_back(std::move(*item));
      pos = p;
    }
    return items;
  }

  std::optional<Item> parse_round(size_t& pos) {
    size_t p = pos + 1;
    Item e;
    e.kind = Item::kEmphasized;
    e.text = U"(";
    e.prompts.push_back(parse_prompt(p));
    if (p < s_.size() && s_[p] == U':') {
      ++p;
      e.prompts.push_back(parse_prompt(p));
    }
    if (p >= s_.size() || s_[p] != U')') return std::nullopt;
    pos = p + 1;
    return e;
  }

  std::optional<Item> parse_square(size_t& pos) {
    size_t p = pos + 1;
    Prompt first = parse_prompt(p);
    if (p >= s_.size()) return std::nullopt;
    if (s_[p] == U']') {
      Item e;
      e.kind = Item::kEmphasized;
      e.text = U"[";
      e.prompts.push_back(std::move(first));
      pos = p + 1;
      return e;
    }
    if (s_[p] == U'|') {
      Item a;
      a.kind = Item::kAlternate;
      a.prompts.push_back(std::move(first));
      while (p < s_.size() && s_[p] == U'|') {
        ++p;
        a.prompts.push_back(parse_prompt(p));
      }
      if (p >= s_.size() || s_[p] != U']') return std::nullopt;
      pos = p + 1;
      return a;
    }
    if (s_[p] != U':') return std::nullopt;
    // "[after:when]" or "[before:after:when]"; at most one of the two can fit.
    size_t q = p + 1;
    if (auto when = parse_when(q)) {
      Item sch;
      sch.kind = Item::kScheduled;
      sch.prompts.push_back(std::move(first));
      sch.when_raw = *when;
      pos = q;
      return sch;
    }
    q = p + 1;
    Prompt second = parse_prompt(q);
    if (q >= s_.size() || s_[q] != U':') return std::nullopt;
    ++q;
    auto when = parse_when(q);
    if (!when) return std::nullopt;
    Item sch;
    sch.kind = Item::kScheduled;
    sch.has_before = true;
    sch.prompts.push_back(std::move(first));
    sch.prompts.push_back(std::move(second));
    sch.when_raw = *when;
    pos = q;
    return sch;
  }

  // [WHITESPACE] NUMBER "]" (lark's SIGNED_NUMBER); on success pos is past the ']'.
  std::optional<double> parse_when(size_t& pos) {
    size_t p = pos;
    while (p < s_.size() && is_python_space(s_[p])) ++p;
    size_t start = p;
    if (p < s_.size() && (s_[p] == U'+' || s_[p] == U'-')) ++p;
    size_t digits = count_digits(s_, p);
    auto exponent = [&](size_t at) -> size_t {  // length of [eE][+-]?\d+ at `at`, or 0
      if (at >= s_.size() || (s_[at] != U'e' && s_[at] != U'E')) return 0;
      size_t k = at + 1;
      if (k < s_.size() && (s_[k] == U'+' || s_[k] == U'-')) ++k;
      size_t d = count_digits(s_, k);
      return d ? k + d - at : 0;
    };
    size_t end = 0;
    if (digits && exponent(p + digits)) {  // INT _EXP
      end = p + digits + exponent(p + digits);
    } else if (digits && p + digits < s_.size() && s_[p + digits] == U'.') {  // INT "." INT? _EXP?
      size_t k = p + digits + 1;
      k += count_digits(s_, k);
      end = k + exponent(k);
    } else if (!digits && p < s_.size() && s_[p] == U'.' && count_digits(s_, p + 1)) {  // "." INT _EXP?
      size_t k = p + 1 + count_digits(s_, p + 1);
      end = k + exponent(k);
    } else if (digits) {  // INT
      end = p + digits;
    } else {
      return std::nullopt;
    }
    if (end >= s_.size() || s_[end] != U']') return std::nullopt;
    auto v = python_float(s_.substr(start, end - start));
    if (!v) return std::nullopt;
    pos = end + 1;
    return v;
  }

  const U32& s_;
};

void collect_steps(Prompt& prompt, int steps, std::set<long long>& out) {
  for (Item& it : prompt) {
    if (it.kind == Item::kScheduled) {
      double v = it.when_raw;
      if (v < 1) v *= steps;
      // int() truncates toward zero; min(steps, ...) bounds it above. Clamp far negatives instead of overflowing.
      double t = std::trunc(v);
      it.when = t >= double(steps) ? steps : (t <= -9.2e18 ? LLONG_MIN / 2 : (long long)t);
      out.insert(it.when);
    } else if (it.kind == Item::kAlternate) {
      for (int k = 1; k <= steps; ++k) out.insert(k);
    }
    for (Prompt& p : it.prompts) collect_steps(p, steps, out);
  }
}

void render(const Prompt& prompt, long long step, U32& out);

void render_item(const Item& it, long long step, U32& out) {
  switch (it.kind) {
    case Item::kText:
      out += it.text;
      break;
    case Item::kEmphasized:
      out += it.text;
      render(it.prompts[0], step, out);
      if (it.prompts.size() > 1) {
        out += U':';
        render(it.prompts[1], step, out);
      }
      out += it.text == U"(" ? U')' : U']';
      break;
    case Item::kScheduled:
      if (step <= it.when) {
        if (it.has_before) render(it.prompts[0], step, out);
      } else {
        render(it.prompts.back(), step, out);
      }
      break;
    case Item::kAlternate: {
      long long n = (long long)it.prompts.size();
      long long k = ((step - 1) % n + n) % n;  // Python's modulo
      const Prompt& option = it.prompts[size_t(k)];
      if (!option.empty()) render_item(option.front(), step, out);  // only the first part: see the header
      break;
    }
  }
}

void render(const Prompt& prompt, long long step, U32& out) {
  for (const Item& it : prompt) render_item(it, step, out);
}

}  // namespace

std::vector<ScheduledText> prompt_schedule(std::string_view prompt, int steps) {
  const U32 s = utf8_to_u32(prompt);
  ScheduleParser parser(s);
  std::optional<Prompt> tree = parser.parse_start();
  if (!tree) return {{steps, std::string(prompt)}};
  std::set<long long> at{steps};
  collect_steps(*tree, steps, at);
  std::vector<ScheduledText> out;
  for (long long t : at) {
    U32 text;
    render(*tree, t, text);
    out.push_back({t, u32_to_utf8(text)});
  }
  return out;
}

const std::string& text_at_step(const std::vector<ScheduledText>& schedule, long long step) {
  PIG_CHECK(!schedule.empty(), "text_at_step: empty prompt schedule");
  for (const auto& e : schedule)
    if (step <= e.end_at_step) return e.text;
  return schedule.back().text;
}

// ---------------------------------------------------------------------------------------------------------------
// Composable prompts.
namespace {

// `^(\s*.*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$` applied with re.search.
WeightedSubprompt split_weight(const U32& s) {
  size_t w = 0;
  while (w < s.size() && is_python_space(s[w])) ++w;
  size_t nl = s.find(U'\n', w);
  if (nl == U32::npos) nl = s.size();
  auto skip_space = [&](size_t k) {
    while (k < s.size() && is_python_space(s[k])) ++k;
    return k;
  };
  auto numeral = [](const U32& t) {  // [-+]?(?:\d+\.?|\d*\.\d+)
    size_t k = (!t.empty() && (t[0] == U'+' || t[0] == U'-')) ? 1 : 0;
    size_t d1 = count_digits(t, k);
    if (d1 && (k + d1 == t.size() || (t[k + d1] == U'.' && k + d1 + 1 == t.size()))) return true;
    if (k + d1 < t.size() && t[k + d1] == U'.') {
      size_t d2 = count_digits(t, k + d1 + 1);
      return d2 && k + d1 + 1 + d2 == t.size();
    }
    return false;
  };
  for (size_t e = w; e <= nl; ++e) {
    size_t k = skip_space(e);
    if (k < s.size() && s[k] == U':') {
      size_t a = skip_space(k + 1), b = a;
      while (b < s.size() && !is_python_space(s[b])) ++b;
      U32 token = s.substr(a, b - a);
      if (skip_space(b) == s.size() && numeral(token)) {
        auto v = python_float(token);
        if (v) return {u32_to_utf8(s.substr(0, e)), *v};
      }
    }
    if (k == s.size()) return {u32_to_utf8(s.substr(0, e)), 1.0};
  }
  return {u32_to_utf8(s), 1.0};
}

}  // namespace

std::vector<WeightedSubprompt> split_composable_prompt(std::string_view prompt) {
  const U32 s = utf8_to_u32(prompt);
  std::vector<WeightedSubprompt> out;
  size_t start = 0, i = 0;
  while (i + 3 <= s.size()) {
    bool word = s.compare(i, 3, U"AND") == 0 && (i == 0 || !is_python_word(s[i - 1])) &&
                (i + 3 == s.size() || !is_python_word(s[i + 3]));
    if (word) {
      out.push_back(split_weight(s.substr(start, i - start)));
      start = i = i + 3;
    } else {
      ++i;
    }
  }
  out.push_back(split_weight(s.substr(start)));
  return out;
}

}  // namespace pigment
