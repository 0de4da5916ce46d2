#include "pipelines/infotext.h"

#include "core/error.h"

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

// Strict numbers: a malformed value is one error line naming the field and the value; never a partial read.
TEST(Infotext, StrictNumbers) {
  Infotext i = parse_infotext(
      "p\nSteps: 20, CFG scale: 7.5, Seed: 4294967295, Size: 512x768, Clip skip: 2, Hires resize: 0x1024");
  EXPECT_EQ(infotext_integer(i, "Steps", "x.png"), 20);
  EXPECT_EQ(infotext_integer(i, "Seed", "x.png"), 4294967295LL);
  EXPECT_EQ(infotext_number(i, "CFG scale", "x.png"), 7.5);
  EXPECT_EQ(infotext_size(i, "Size", "x.png"), (std::pair{512, 768}));
  EXPECT_EQ(infotext_size(i, "Hires resize", "x.png", /*allow_zero=*/true), (std::pair{0, 1024}));
  EXPECT_EQ(infotext_integer(i, "Denoising strength", "x.png"), std::nullopt);  // absent

  auto message = [](const std::string& params, auto read) -> std::string {
    Infotext bad = parse_infotext("p\n" + params);
    try {
      read(bad);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_EQ(message("Seed: abc, Steps: 3, Sampler: Euler",
                    [](const Infotext& b) { infotext_integer(b, "Seed", "x.png"); }),
            "x.png: infotext field 'Seed': 'abc' is not an integer");
  EXPECT_EQ(message("Steps: 3abc, Seed: 1, Sampler: Euler",
                    [](const Infotext& b) { infotext_integer(b, "Steps", "x.png"); }),
            "x.png: infotext field 'Steps': '3abc' is not an integer");
  EXPECT_EQ(message("Size: 32xfoo, Seed: 1, Sampler: Euler",
                    [](const Infotext& b) { infotext_size(b, "Size", "x.png"); }),
            "x.png: infotext field 'Size': '32xfoo' is not a size WxH of two positive integers");
  EXPECT_EQ(message("CFG scale: 7.5.1, Seed: 1, Sampler: Euler",
                    [](const Infotext& b) { infotext_number(b, "CFG scale", "x.png"); }),
            "x.png: infotext field 'CFG scale': '7.5.1' is not a number");
  for (const char* bad_steps : {"3.5", "", "99999999999999999999", "+-3", "0x10"})
    EXPECT_NE(message(std::string("Steps: ") + bad_steps + ", Seed: 1, Sampler: Euler",
                      [](const Infotext& b) { infotext_integer(b, "Steps", "x.png"); }),
              "no error")
        << bad_steps;
  for (const char* bad_size : {"32x", "x32", "32", "0x32", "32x-8", "32 x 32x", "64x64x64"})
    EXPECT_NE(message(std::string("Size: ") + bad_size + ", Seed: 1, Sampler: Euler",
                      [](const Infotext& b) { infotext_size(b, "Size", "x.png"); }),
              "no error")
        << bad_size;
  EXPECT_NE(message("CFG scale: nan, Seed: 1, Sampler: Euler",
                    [](const Infotext& b) { infotext_number(b, "CFG scale", "x.png"); }),
            "no error");
}

}  // namespace
}  // namespace pigment
