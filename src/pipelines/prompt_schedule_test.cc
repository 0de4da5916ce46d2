#include "pipelines/prompt_schedule.h"

#include <gtest/gtest.h>

namespace pigment {
namespace {

std::vector<std::string> texts_per_step(const PromptSchedule& s, int steps) {
  std::vector<std::string> v;
  for (int i = 1; i <= steps; ++i) v.push_back(s.at_step(i).at(0).first);
  return v;
}

TEST(PromptSchedule, PromptEditingSwitchesAtTheGivenStep) {
  PromptSchedule s("a [cat:dog:0.5] in a field", 10);
  auto t = texts_per_step(s, 10);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(t[i], "a cat in a field") << "step " << i + 1;
  for (int i = 5; i < 10; ++i) EXPECT_EQ(t[i], "a dog in a field") << "step " << i + 1;
  EXPECT_EQ(s.distinct_texts().size(), 2u);
}

TEST(PromptSchedule, IntegerWhenIsAStepNumber) {
  PromptSchedule s("[from::3] to", 6);
  auto t = texts_per_step(s, 6);
  EXPECT_EQ(t[0], "from to");
  EXPECT_EQ(t[2], "from to");
  EXPECT_EQ(t[3], " to");
}

TEST(PromptSchedule, AlternationCyclesEveryStep) {
  PromptSchedule s("[cat|dog|fox]", 7);
  auto t = texts_per_step(s, 7);
  std::vector<std::string> want{"cat", "dog", "fox", "cat", "dog", "fox", "cat"};
  EXPECT_EQ(t, want);
  EXPECT_EQ(s.distinct_texts().size(), 3u);
}

TEST(PromptSchedule, AndSplitsIntoWeightedParts) {
  PromptSchedule s("a cat :1.5 AND a [red:blue:2] dog", 4);
  auto step1 = s.at_step(1), step4 = s.at_step(4);
  ASSERT_EQ(step1.size(), 2u);
  EXPECT_EQ(step1[0].first, "a cat");
  EXPECT_DOUBLE_EQ(step1[0].second, 1.5);
  EXPECT_EQ(step1[1].first, " a red dog");
  EXPECT_EQ(step4[1].first, " a blue dog");
  EXPECT_DOUBLE_EQ(step4[1].second, 1.0);
}

TEST(PromptSchedule, LiteralModeKeepsTheTextAsWritten) {
  PromptSchedule s("a [cat:dog:0.5] AND x", 4, false);
  ASSERT_EQ(s.parts().size(), 1u);
  EXPECT_EQ(s.at_step(4).at(0).first, "a [cat:dog:0.5] AND x");
}

}  // namespace
}  // namespace pigment
