#include "text/prompt_parser.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace pigment {
namespace {

std::string show(const std::vector<WeightedText>& v) {
  std::string s;
  char buf[64];
  for (const auto& w : v) {
    std::snprintf(buf, sizeof buf, "%.10g", w.weight);
    s += "[" + w.text + "|" + buf + "]";
  }
  return s;
}

std::string show(const std::vector<ScheduledText>& v) {
  std::string s;
  for (const auto& e : v) s += '[', s += std::to_string(e.end_at_step), s += '|', s += e.text, s += ']';
  return s;
}

std::string show(const std::vector<WeightedSubprompt>& v) {
  std::string s;
  char buf[64];
  for (const auto& w : v) {
    std::snprintf(buf, sizeof buf, "%.10g", w.weight);
    s += "[" + w.text + "|" + buf + "]";
  }
  return s;
}

std::string att(const std::string& p) { return show(parse_prompt_attention(p)); }
std::string sched(const std::string& p, int steps = 10) { return show(prompt_schedule(p, steps)); }

TEST(PromptAttention, Emphasis) {
  EXPECT_EQ(att("normal text"), "[normal text|1]");
  EXPECT_EQ(att("an (important) word"), "[an |1][important|1.1][ word|1]");
  EXPECT_EQ(att("(unbalanced"), "[unbalanced|1.1]");
  EXPECT_EQ(att("\\(literal\\]"), "[(literal]|1]");
  EXPECT_EQ(att("(unnecessary)(parens)"), "[unnecessaryparens|1.1]");
  EXPECT_EQ(att("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky)))."),
            "[a |1][house|1.573][ |1.1][on|1][ a |1.1][hill|0.55][, sun, |1.1][sky|1.4641][.|1.1]");
  EXPECT_EQ(att("[[blurry]]"), "[blurry|0.826446281]");
  EXPECT_EQ(att("(a:.5) (b:1.) (c:1e2)"), "[a|0.5][ b |1][c:1e2|1.1]");  // equal neighbours merge
  EXPECT_EQ(att("x (y:-0.5) z"), "[x |1][y|-0.5][ z|1]");
  EXPECT_EQ(att("\\\\ backslash \\ alone"), "[\\ backslash  alone|1]");
  EXPECT_EQ(att(""), "[|1]");
  EXPECT_EQ(att("a:1.5) ]"), "[a:1.5) ]|1]");  // weight and brackets with nothing open are text
  // Exactly A1111's double arithmetic: 1.1 * 1.1 * 1.3 applied in that order.
  auto w = parse_prompt_attention("(((house:1.3)))");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].weight, 1.3 * 1.1 * 1.1);
}

TEST(PromptAttention, Break) {
  auto v = parse_prompt_attention("a cat BREAK a dog");
  ASSERT_EQ(v.size(), 3u);
  EXPECT_TRUE(v[1].is_break());
  EXPECT_EQ(att("a cat BREAKFAST"), "[a cat BREAKFAST|1]");
  EXPECT_EQ(att("(a BREAK b:1.5)"), "[a|1.5][BREAK|-1.5][b|1.5]");
  EXPECT_FALSE(parse_prompt_attention("(a BREAK b:1.5)")[1].is_break());
  EXPECT_EQ(att("BREAK"), "[|1][BREAK|-1][|1]");
  EXPECT_EQ(att("x\\(BREAK"), "[x(|1][BREAK|-1][|1]");  // "(" is not a word character
  EXPECT_EQ(att("x_BREAK"), "[x_BREAK|1]");
}

TEST(PromptAttention, InvalidWeightIsAnError) {
  try {
    parse_prompt_attention("(x:1.2.3)");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("1.2.3"), std::string::npos) << e.what();
  }
}

TEST(PromptSchedule, Editing) {
  EXPECT_EQ(sched("test"), "[10|test]");
  EXPECT_EQ(sched("a [b:3]"), "[3|a ][10|a b]");
  EXPECT_EQ(sched("a [b: 3]"), "[3|a ][10|a b]");
  EXPECT_EQ(sched("a [[[b]]:2]"), "[2|a ][10|a [[b]]]");
  EXPECT_EQ(sched("[(a:2):3]"), "[3|][10|(a:2)]");
  EXPECT_EQ(sched("a [b : c : 1] d"), "[1|a b  d][10|a  c  d]");
  EXPECT_EQ(sched("a[b:[c:d:2]:1]e"), "[1|abe][2|ace][10|ade]");
  EXPECT_EQ(sched("a [unbalanced"), "[10|a [unbalanced]");
  EXPECT_EQ(sched("a [b:.5] c"), "[5|a  c][10|a b c]");
  EXPECT_EQ(sched("((a][:b:c [d:3]"), "[3|((a][:b:c ][10|((a][:b:c d]");
  EXPECT_EQ(sched("[a::0.6]", 20), "[12|a][20|]");
  EXPECT_EQ(sched("[red:blue:0.4]", 7), "[2|red][7|blue]");  // 0.4 * 7 = 2.8 -> 2
  EXPECT_EQ(sched("[a:b:50]"), "[10|a]");                    // past the end: clamped to the step count
  EXPECT_EQ(sched("[a:b:1e0]"), "[1|a][10|b]");
  EXPECT_EQ(sched("[a:b:3 ]"), "[10|[a:b:3 ]]");  // no space allowed after the number
}

TEST(PromptSchedule, Alternation) {
  EXPECT_EQ(sched("[a|(b:1.1)]", 4), "[1|a][2|(b:1.1)][3|a][4|(b:1.1)]");
  EXPECT_EQ(sched("[cat|dog|bird] x", 4), "[1|cat x][2|dog x][3|bird x][4|cat x]");
  // That commit's quirk: only the first part of an option is used.
  EXPECT_EQ(sched("[cat (x)|dog]", 2), "[1|cat ][2|dog]");
  EXPECT_EQ(sched("[(x) y|c]", 2), "[1|(x)][2|c]");
  EXPECT_EQ(sched("[a\\|b|c]", 2), "[1|a\\|b][2|c]");
  EXPECT_EQ(sched("[|b]", 2), "[1|][2|b]");
}

TEST(PromptSchedule, RejectedPromptsAreKept) {
  EXPECT_EQ(sched("a|b"), "[10|a|b]");
  EXPECT_EQ(sched("[a:b:1] trailing \\"), "[10|[a:b:1] trailing \\]");
  EXPECT_EQ(sched("\\\\[a:b:1]"), "[1|\\\\a][10|\\\\b]");  // an escaped backslash is fine
}

TEST(PromptSchedule, TextAtStep) {
  auto s = prompt_schedule("[a:b:3]", 10);
  EXPECT_EQ(text_at_step(s, 1), "a");
  EXPECT_EQ(text_at_step(s, 3), "a");
  EXPECT_EQ(text_at_step(s, 4), "b");
  EXPECT_EQ(text_at_step(s, 99), "b");
}

TEST(ComposablePrompt, SplitsOnAnd) {
  EXPECT_EQ(show(split_composable_prompt("a cat AND a dog")), "[a cat|1][ a dog|1]");
  EXPECT_EQ(show(split_composable_prompt("a cat AND a dog :0.5")), "[a cat|1][ a dog|0.5]");
  EXPECT_EQ(show(split_composable_prompt("a cat:1.2 AND (red:1.2) AND  b : -0.3")),
            "[a cat|1.2][ (red:1.2)|1][  b|-0.3]");
  EXPECT_EQ(show(split_composable_prompt("ANDROID robot")), "[ANDROID robot|1]");
  EXPECT_EQ(show(split_composable_prompt("a :1.")), "[a|1]");
  EXPECT_EQ(show(split_composable_prompt("a :.25  ")), "[a|0.25]");
  EXPECT_EQ(show(split_composable_prompt("a:1:2")), "[a:1|2]");
  EXPECT_EQ(show(split_composable_prompt("a:1:x")), "[a:1:x|1]");
  EXPECT_EQ(show(split_composable_prompt("")), "[|1]");
}

}  // namespace
}  // namespace pigment
