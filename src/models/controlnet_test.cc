#include "models/controlnet.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

namespace pigment {
namespace {

std::string models_dir() {
  const char* env = std::getenv("PIGMENT_SHARED_DIR");
  return (std::filesystem::path(env ? env : "../shared") / "golden" / "models").string();
}

Tensor pattern(Shape shape, float phase) {
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = 0.5f + 0.5f * std::sin(0.29f * float(i) + phase);
  return t;
}

TEST(ControlNet, GuessModeScalesRunGeometricallyFromATenthToOne) {
  std::vector<float> s = controlnet_guess_mode_scales(13, 1.f);
  ASSERT_EQ(s.size(), 13u);
  EXPECT_FLOAT_EQ(s.front(), 0.1f);
  EXPECT_FLOAT_EQ(s.back(), 1.f);
  for (size_t i = 0; i < s.size(); ++i) EXPECT_NEAR(s[i], std::pow(10.0, -1.0 + double(i) / 12.0), 1e-7);
  std::vector<float> h = controlnet_guess_mode_scales(13, 0.5f);
  EXPECT_FLOAT_EQ(h[6], 0.5f * s[6]);
}

TEST(ControlNet, ConfigReadsConditioningFields) {
  ControlNetConfig c = ControlNetConfig::from_json(R"({"block_out_channels": [32, 32],
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"], "conditioning_channels": 3,
    "conditioning_embedding_out_channels": [16, 32], "controlnet_conditioning_channel_order": "bgr"})");
  EXPECT_EQ(c.conditioning_embedding_out_channels, (std::vector<int64_t>{16, 32}));
  EXPECT_EQ(c.channel_order, "bgr");
  EXPECT_TRUE(c.unet.up_block_types.empty());
  EXPECT_THROW(ControlNetConfig::from_json(R"({"block_out_channels": [32], "down_block_types": ["DownBlock2D"],
    "controlnet_conditioning_channel_order": "gbr"})"), Error);
}

TEST(ControlNet, ResidualsMatchTheUNetSkipsAndGuessModeScalesThem) {
  if (!std::filesystem::exists(models_dir() + "/controlnet/config.json")) GTEST_FAIL() << "no golden models";
  ControlNet cn = ControlNet::load(models_dir() + "/controlnet");
  Tensor sample = pattern({1, 4, 2, 2}, 0.f), ctx = pattern({1, 2, 32}, 1.f), cond = pattern({1, 3, 16, 16}, 2.f);
  ControlNetOutput plain = cn.forward(sample, {10.f}, ctx, cond, 1.f, false);
  ControlNetOutput guess = cn.forward(sample, {10.f}, ctx, cond, 1.f, true);
  ASSERT_EQ(plain.down_block_residuals.size(), 12u);
  std::vector<float> s = controlnet_guess_mode_scales(13, 1.f);
  for (size_t i = 0; i < 12; ++i) {
    const Tensor &p = plain.down_block_residuals[i], &g = guess.down_block_residuals[i];
    for (int64_t k = 0; k < p.numel(); ++k) EXPECT_FLOAT_EQ(g.f32()[k], p.f32()[k] * s[i]);
  }
  EXPECT_EQ(plain.mid_block_residual.shape(), (Shape{1, 32, 1, 1}));
  EXPECT_THROW(cn.forward(sample, {10.f}, ctx, pattern({1, 3, 8, 8}, 0.f)), Error);  // not 8x the latent
}

}  // namespace
}  // namespace pigment
