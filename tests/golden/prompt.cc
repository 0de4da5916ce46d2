// Golden runner for prompt/*: A1111 prompt syntax. For every prompt of the case: the emphasis parse, the prompt
// schedules for each listed step count, and the AND split. Texts must match exactly, weights within rtol 1e-9.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "golden.h"
#include "text/prompt_parser.h"

namespace pigment::golden {
namespace {

constexpr double kRtol = 1e-9;

std::string json_quoted(const std::string& s) { return nlohmann::json(s).dump(); }

std::string number(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// Renders actual and expected (text, weight) lists side by side; an actual weight within tolerance is written as
// the expected one, so that the exact text comparison checks texts exactly and weights with rtol.
template <typename Pairs>
void compare_pairs(Case& c, const std::string& label, const Pairs& actual, const nlohmann::json& expected,
                   const char* text_key, const char* weight_key) {
  std::string a = "[", e = "[";
  for (size_t i = 0; i < std::max(actual.size(), expected.size()); ++i) {
    const std::string sep = i ? ", " : "";
    double ew = 0;
    if (i < expected.size()) {
      const auto& x = expected[i];
      std::string et = text_key ? x.at(text_key).get<std::string>() : x.at(0).get<std::string>();
      ew = weight_key ? x.at(weight_key).get<double>() : x.at(1).get<double>();
      e += sep + json_quoted(et) + ":" + number(ew);
    }
    if (i < actual.size()) {
      double aw = actual[i].weight;
      bool close = i < expected.size() && std::fabs(aw - ew) <= kRtol * std::fabs(ew);
      a += sep + json_quoted(actual[i].text) + ":" + number(close ? ew : aw);
    }
  }
  c.compare_text(label, a + "]", e + "]");
}

void run_a1111_syntax(Case& c) {
  const auto& prompts = c.spec().at("prompts");
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto& p = prompts[i];
    const std::string text = p.at("prompt").get<std::string>();
    const std::string label = "prompt[" + std::to_string(i) + "] ";
    try {
      compare_pairs(c, label + "attention", parse_prompt_attention(text), p.at("attention"), nullptr, nullptr);
    } catch (const std::exception& ex) {
      c.failure(label + "attention", ex.what());
    }
    for (const auto& [steps, expected] : p.at("schedules").items()) {
      std::string a = "[", e = "[";
      auto schedule = prompt_schedule(text, std::stoi(steps));
      for (size_t k = 0; k < schedule.size(); ++k)
        a += (k ? ", " : "") + std::to_string(schedule[k].end_at_step) + ":" + json_quoted(schedule[k].text);
      for (size_t k = 0; k < expected.size(); ++k)
        e += (k ? ", " : "") + std::to_string(expected[k].at(0).get<long long>()) + ":" +
             json_quoted(expected[k].at(1).get<std::string>());
      c.compare_text(label + "schedule@" + steps, a + "]", e + "]");
    }
    compare_pairs(c, label + "and_split", split_composable_prompt(text), p.at("and_split"), "text", "weight");
  }
}

Register reg_prompt("prompt/", run_a1111_syntax);

}  // namespace
}  // namespace pigment::golden
