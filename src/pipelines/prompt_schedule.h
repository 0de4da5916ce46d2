// Which text conditions which sampling step, as A1111 decides it: the prompt is split on AND into weighted parts
// (composable diffusion), and each part's prompt editing (`[from:to:when]`, `[to:when]`, `[from::when]`) and
// alternation (`[a|b]`) give a text per step. Each distinct text is encoded once; the pipeline switches between
// the encodings step by step.
#pragma once
#include <string>
#include <vector>

#include "text/prompt_parser.h"

namespace pigment {

struct ConditioningPart {
  double weight = 1.0;                  // the AND part's `:weight`
  std::vector<ScheduledText> schedule;  // (end_at_step, text), from prompt_schedule
};

class PromptSchedule {
 public:
  // `a1111_syntax` off: the prompt is one part used verbatim at every step.
  PromptSchedule(const std::string& prompt, int steps, bool a1111_syntax = true, bool allow_and = true);

  // The (text, weight) pairs conditioning 1-based step `step`, one per AND part.
  std::vector<std::pair<std::string, double>> at_step(int step) const;
  // Every text some step uses, each once, in order of first use.
  std::vector<std::string> distinct_texts() const;
  const std::vector<ConditioningPart>& parts() const { return parts_; }

 private:
  std::vector<ConditioningPart> parts_;
};

}  // namespace pigment
