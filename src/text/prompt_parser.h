// A1111 prompt syntax, as stable-diffusion-webui's modules/prompt_parser.py (commit 0674fabd) computes it.
//
// Emphasis (parse_prompt_attention): `(x)` x1.1, `[x]` /1.1, `(x:w)` xw, escapes \( \) \[ \] \\, a lone backslash
// dropped, unclosed brackets applied to the end of the prompt, BREAK (a whole word) as {"BREAK", -1}, neighbours of
// exactly equal weight merged.
//
// Prompt editing (get_learned_conditioning_prompt_schedules): `[a:b:when]`, `[a::when]`, `[b:when]` and
// alternation `[a|b|c]`; `when` below 1 is a fraction of the steps, otherwise a step number. The result is the
// list of (end_at_step, text) for a given number of steps. A prompt the grammar rejects (a `|` outside
// alternation, a trailing backslash) is its own single schedule, as in A1111. One quirk is kept on purpose: an
// alternative contributes only its first part (in `[cat (x)|dog]` the first option reads "cat ", without "(x)"),
// exactly as that commit's transformer does; an empty alternative reads as "" (A1111 raises there). Where a valid
// construct is directly followed by a stray ':', ')', ']' or '[' (as in "x[ab:0.5]:"), A1111's answer depends on
// Python's per-process hash seed (lark resolves the ambiguity through set order); pigment always takes the
// construct, which is one of the two answers A1111 gives.
//
// Composable diffusion (get_multicond_prompt_list): the prompt split on the word AND, each part with an optional
// trailing `:weight`.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace pigment {

struct WeightedText {
  std::string text;
  double weight = 1.0;
  // A BREAK marker: exactly {"BREAK", -1}. (Inside brackets its weight is scaled, and then it is ordinary text.)
  bool is_break() const { return weight == -1.0 && text == "BREAK"; }
};

// Throws pigment::Error for an emphasis weight that is not a number, such as "(x:1.2.3)" (A1111 raises too).
std::vector<WeightedText> parse_prompt_attention(std::string_view prompt);

struct ScheduledText {
  long long end_at_step;  // this text is used for sampling steps (1-based) up to and including this one
  std::string text;
};

std::vector<ScheduledText> prompt_schedule(std::string_view prompt, int steps);
// The text for a 1-based sampling step: the first entry with step <= end_at_step (the last entry past the end).
const std::string& text_at_step(const std::vector<ScheduledText>& schedule, long long step);

struct WeightedSubprompt {
  std::string text;
  double weight = 1.0;
};

// "a cat :1.2 AND a dog" -> {"a cat", 1.2}, {" a dog", 1}. Texts are kept as written, minus the weight and
// trailing white space.
std::vector<WeightedSubprompt> split_composable_prompt(std::string_view prompt);

}  // namespace pigment
