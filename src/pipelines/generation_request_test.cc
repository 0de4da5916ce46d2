#include "pipelines/generation_request.h"

#include <gtest/gtest.h>

namespace pigment {
namespace {

TEST(GenerationRequest, InfotextRoundTrip) {
  GenerationRequest g;
  g.gen.prompt = "a (red:1.2) fox";
  g.gen.negative_prompt = "blurry";
  g.gen.steps = 12;
  g.gen.sampler = "DPM++ 2M";
  g.gen.schedule = "Karras";
  g.gen.cfg_scale = 6.5;
  g.gen.width = 64;
  g.gen.height = 32;
  g.gen.clip_skip = 2;
  g.gen.rng = "cpu";
  GenerateRequest::HiresFix hr;
  hr.scale = 1.5;
  hr.steps = 3;
  hr.denoising_strength = 0.4;
  g.gen.hires = hr;
  RecipeContext ctx;
  ctx.model_path = "/models/thing.safetensors";
  ctx.model_hash = "0123456789";
  Infotext info = request_infotext(g, 77, ctx);
  const std::string text = format_infotext(info);
  EXPECT_NE(text.find("Model: thing"), std::string::npos) << text;
  GenerationRequest back = request_from_infotext(parse_infotext(text), "test");
  EXPECT_EQ(back.gen.prompt, g.gen.prompt);
  EXPECT_EQ(back.gen.negative_prompt, g.gen.negative_prompt);
  EXPECT_EQ(back.gen.steps, 12);
  EXPECT_EQ(back.gen.sampler, "DPM++ 2M");
  EXPECT_EQ(back.gen.schedule, "Karras");
  EXPECT_DOUBLE_EQ(back.gen.cfg_scale, 6.5);
  EXPECT_EQ(back.seed, 77);
  EXPECT_EQ(back.gen.width, 64);
  EXPECT_EQ(back.gen.height, 32);
  EXPECT_EQ(back.gen.clip_skip, 2);
  EXPECT_EQ(back.gen.rng, "cpu");
  ASSERT_TRUE(back.gen.hires.has_value());
  EXPECT_DOUBLE_EQ(back.gen.hires->scale, 1.5);
  EXPECT_EQ(back.gen.hires->steps, 3);
  EXPECT_DOUBLE_EQ(back.gen.hires->denoising_strength, 0.4);
  // The same request written again gives the same text.
  EXPECT_EQ(format_infotext(request_infotext(back, 77, ctx)), text);
}

TEST(GenerationRequest, InfotextKeepsFieldsItDoesNotName) {
  GenerationRequest g;
  g.gen.steps = 9;
  g.gen.width = 128;
  apply_infotext(g, parse_infotext("a cat\nSampler: Euler, CFG scale: 3, Seed: 5"), "x");
  EXPECT_EQ(g.gen.steps, 9);
  EXPECT_EQ(g.gen.width, 128);
  EXPECT_EQ(g.gen.sampler, "Euler");
  EXPECT_EQ(g.seed, 5);
  EXPECT_EQ(g.gen.rng, "cuda");  // no RNG key: A1111's GPU seeds
  EXPECT_THROW(apply_infotext(g, parse_infotext("a\nSteps: 3abc, Sampler: Euler, Seed: 5"), "x"), Error);
}

std::string failing_field(const GenerationRequest& g, const RequestLimits& limits = {}) {
  try {
    validate(g, limits);
  } catch (const FieldError& e) {
    return e.field;
  }
  return "";
}

TEST(GenerationRequest, ValidationNamesTheField) {
  GenerationRequest ok;
  EXPECT_EQ(failing_field(ok), "");
  auto with = [](auto change) {
    GenerationRequest g;
    change(g);
    return g;
  };
  EXPECT_EQ(failing_field(with([](auto& g) { g.gen.width = 65; })), "width");
  EXPECT_EQ(failing_field(with([](auto& g) { g.gen.height = 0; })), "height");
  EXPECT_EQ(failing_field(with([](auto& g) { g.gen.steps = 0; })), "steps");
  EXPECT_EQ(failing_field(with([](auto& g) { g.gen.sampler = "Bogus 3000"; })), "sampler_name");
  EXPECT_EQ(failing_field(with([](auto& g) { g.gen.schedule = "wobbly"; })), "scheduler");
  EXPECT_EQ(failing_field(with([](auto& g) { g.gen.strength = 1.5; })), "denoising_strength");
  EXPECT_EQ(failing_field(with([](auto& g) { g.batch_count = 0; })), "batch_size");
  EXPECT_EQ(failing_field(with([](auto& g) { g.seed = -2; })), "seed");
  EXPECT_EQ(failing_field(with([](auto& g) { g.gen.mask = Image{8, 8, 1, std::vector<uint8_t>(64)}; })), "mask");
  RequestLimits small;
  small.max_pixels = 256 * 256;
  small.max_steps = 10;
  small.max_batch = 2;
  EXPECT_EQ(failing_field(with([](auto& g) { g.gen.width = g.gen.height = 512; }), small), "width");
  EXPECT_EQ(failing_field(with([](auto& g) { g.gen.width = g.gen.height = 256; g.gen.steps = 11; }), small), "steps");
  EXPECT_EQ(failing_field(with([](auto& g) { g.gen.width = g.gen.height = 256; g.gen.steps = 10; g.batch_count = 3; }),
                          small),
            "batch_size");
  EXPECT_EQ(failing_field(with([](auto& g) {
                            g.gen.width = g.gen.height = 256;
                            g.gen.steps = 10;
                            g.gen.hires = GenerateRequest::HiresFix{};
                          }),
                          small),
            "hr_scale");
}

TEST(GenerationRequest, PipelineRequestInvertsTheMask) {
  GenerationRequest g;
  g.gen.init_image = Image{2, 1, 3, std::vector<uint8_t>(6, 9)};
  g.gen.mask = Image{2, 1, 1, {0, 255}};
  g.mask_invert = true;
  GenerateRequest r = pipeline_request(g, 42, "p", "n");
  EXPECT_EQ(r.seed, 42u);
  EXPECT_EQ(r.prompt, "p");
  EXPECT_EQ(r.mask->pixels, (std::vector<uint8_t>{255, 0}));
}

}  // namespace
}  // namespace pigment
