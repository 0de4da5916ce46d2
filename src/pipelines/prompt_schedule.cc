#include "pipelines/prompt_schedule.h"

#include <algorithm>

namespace pigment {

PromptSchedule::PromptSchedule(const std::string& prompt, int steps, bool a1111_syntax, bool allow_and) {
  if (!a1111_syntax) {
    parts_.push_back({1.0, {{steps, prompt}}});
    return;
  }
  std::vector<WeightedSubprompt> subs;
  if (allow_and) subs = split_composable_prompt(prompt);
  if (subs.empty()) subs.push_back({prompt, 1.0});
  for (const auto& s : subs) parts_.push_back({s.weight, pigment::prompt_schedule(s.text, steps)});
}

std::vector<std::pair<std::string, double>> PromptSchedule::at_step(int step) const {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& p : parts_) out.emplace_back(text_at_step(p.schedule, step), p.weight);
  return out;
}

std::vector<std::string> PromptSchedule::distinct_texts() const {
  std::vector<std::string> out;
  for (const auto& p : parts_)
    for (const auto& s : p.schedule)
      if (std::find(out.begin(), out.end(), s.text) == out.end()) out.push_back(s.text);
  return out;
}

}  // namespace pigment
