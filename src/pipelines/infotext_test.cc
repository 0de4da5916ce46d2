#include "pipelines/infotext.h"

#include <gtest/gtest.h>

namespace pigment {
namespace {

TEST(Infotext, FormatsLikeA1111) {
  Infotext i;
  i.prompt = "a (cat:1.2), oil painting";
  i.negative_prompt = "blurry";
  i.params = {{"Steps", "20"},       {"Sampler", "DPM++ 2M"}, {"Schedule type", "Karras"}, {"CFG scale", "7"},
              {"Seed", "965400086"}, {"Size", "512x512"},     {"Model hash", "45dee52b"},  {"Model", "v1-5"},
              {"Lora hashes", "name: abc123def456"}};
  EXPECT_EQ(format_infotext(i),
            "a (cat:1.2), oil painting\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, "
            "CFG scale: 7, Seed: 965400086, Size: 512x512, Model hash: 45dee52b, Model: v1-5, "
            "Lora hashes: \"name: abc123def456\"");
}

TEST(Infotext, ParseRoundTrip) {
  Infotext i;
  i.prompt = "line one\nline two, with comma";
  i.negative_prompt = "ugly";
  i.params = {{"Steps", "4"}, {"Sampler", "Euler a"}, {"CFG scale", "7.5"}, {"Seed", "42"}, {"Size", "256x256"},
              {"Lora hashes", "a: 1, b: 2"}};
  Infotext p = parse_infotext(format_infotext(i));
  EXPECT_EQ(p.prompt, i.prompt);
  EXPECT_EQ(p.negative_prompt, i.negative_prompt);
  EXPECT_EQ(p.params, i.params);
}

TEST(Infotext, NoParamsLineWhenFewerThanThree) {
  Infotext p = parse_infotext("just a prompt: with colon");
  EXPECT_EQ(p.prompt, "just a prompt: with colon");
  EXPECT_TRUE(p.params.empty());
}

TEST(Infotext, Numbers) {
  EXPECT_EQ(format_number(7.0), "7");
  EXPECT_EQ(format_number(7.5), "7.5");
  EXPECT_EQ(format_number(0.75), "0.75");
  EXPECT_EQ(format_number(0.1), "0.1");
}

}  // namespace
}  // namespace pigment
