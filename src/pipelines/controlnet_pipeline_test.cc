// ControlNet units in the pipeline on the tiny golden SDXL model (SD1 has the golden controlnet/pipeline case):
// a ControlNet made from the model's own UNet (as diffusers' from_unet) with zero-initialised zero convs leaves
// the generation unchanged; random ones change it; two identical units at strength 0.5 equal one at 1.0; guess mode
// (conditional rows only, with SDXL's text_embeds/time_ids sliced to them) runs and differs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>

#include "pipelines/stable_diffusion.h"

namespace pigment {
namespace {

namespace fs = std::filesystem;

fs::path shared_dir() {
  const char* env = std::getenv("PIGMENT_SHARED_DIR");
  return env ? env : "../shared";
}

const StableDiffusion& tiny_sdxl() {
  static const StableDiffusion sd = [] {
    fs::path m = shared_dir() / "golden" / "models";
    PipelineOptions po;
    po.model = (m / "sdxl_single_file_fp16.safetensors").string();
    po.tokenizer = (shared_dir() / "clip-tokenizer").string();
    po.load.config_paths = {{"unet", (m / "unet_sdxl").string()},
                            {"vae", (m / "vae").string()},
                            {"text_encoder", (m / "clip_sd1").string()},
                            {"text_encoder_2", (m / "clip_proj").string()}};
    return StableDiffusion::load(po);
  }();
  return sd;
}

std::shared_ptr<const ControlNet> controlnet_from_unet(const ModelComponent& unet, bool zero_convs, uint32_t seed) {
  nlohmann::json cfg = unet.config;
  cfg.erase("up_block_types");
  cfg["conditioning_embedding_out_channels"] = {8, 8, 16, 16};
  auto w = std::make_shared<TensorMap>();
  for (const auto& [k, t] : *unet.tensors)
    if (k.rfind("up_blocks.", 0) != 0 && k.rfind("conv_norm_out.", 0) != 0 && k.rfind("conv_out.", 0) != 0)
      (*w)[k] = t;
  std::mt19937 gen(seed);
  auto conv = [&](const std::string& name, int64_t in, int64_t out, int64_t k, bool zero) {
    Tensor wt = Tensor::zeros({out, in, k, k}), b = Tensor::zeros({out});
    std::normal_distribution<float> d(0.f, 1.f / std::sqrt(float(in * k * k)));
    if (!zero) {
      for (int64_t i = 0; i < wt.numel(); ++i) wt.f32()[i] = d(gen);
      for (int64_t i = 0; i < b.numel(); ++i) b.f32()[i] = 0.1f * d(gen);
    }
    (*w)[name + ".weight"] = wt;
    (*w)[name + ".bias"] = b;
  };
  ControlNetConfig c = ControlNetConfig::from_json(cfg.dump());
  const auto& ch = c.conditioning_embedding_out_channels;
  const auto& boc = c.unet.block_out_channels;
  conv("controlnet_cond_embedding.conv_in", 3, ch[0], 3, false);
  for (size_t i = 0; i + 1 < ch.size(); ++i) {
    conv("controlnet_cond_embedding.blocks." + std::to_string(2 * i), ch[i], ch[i], 3, false);
    conv("controlnet_cond_embedding.blocks." + std::to_string(2 * i + 1), ch[i], ch[i + 1], 3, false);
  }
  conv("controlnet_cond_embedding.conv_out", ch.back(), boc[0], 3, false);
  int k = 0;
  conv("controlnet_down_blocks." + std::to_string(k++), boc[0], boc[0], 1, zero_convs);
  for (size_t i = 0; i < boc.size(); ++i) {
    for (int l = 0; l < c.unet.layers_per_block[i]; ++l)
      conv("controlnet_down_blocks." + std::to_string(k++), boc[i], boc[i], 1, zero_convs);
    if (i + 1 < boc.size()) conv("controlnet_down_blocks." + std::to_string(k++), boc[i], boc[i], 1, zero_convs);
  }
  conv("controlnet_mid_block", boc.back(), boc.back(), 1, zero_convs);
  return std::make_shared<const ControlNet>(c, Weights(w, "from_unet"));
}

Image control_image() {
  Image img{64, 64, 3, std::vector<uint8_t>(64 * 64 * 3)};
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x)
      for (int c = 0; c < 3; ++c) img.pixels[(size_t(y) * 64 + x) * 3 + c] = uint8_t((x * 4 + y * 2 + c * 60) % 256);
  return img;
}

GenerateRequest request() {
  GenerateRequest r;
  r.prompt = "a red house";
  r.negative_prompt = "blurry";
  r.width = r.height = 64;
  r.steps = 2;
  r.cfg_scale = 6;
  r.sampler = "Euler";
  r.seed = 11;
  return r;
}

bool same(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return false;
  for (int64_t i = 0; i < a.numel(); ++i)
    if (a.f32()[i] != b.f32()[i]) return false;
  return true;
}

TEST(ControlNetPipeline, SdxlUnits) {
  if (!fs::exists(shared_dir() / "golden" / "models" / "unet_sdxl" / "config.json")) GTEST_FAIL() << "no golden data";
  const StableDiffusion& sd = tiny_sdxl();
  ASSERT_EQ(sd.family(), Family::SDXL);
  const ModelComponent& unet = sd.base_component("unet");
  Tensor plain = sd.generate(request()).latents;

  GenerateRequest r = request();
  ControlUnit zero;
  zero.net = controlnet_from_unet(unet, true, 1);
  zero.image = control_image();
  r.control = {zero};
  EXPECT_TRUE(same(sd.generate(r).latents, plain)) << "zero convs must change nothing";

  ControlUnit one;
  one.net = controlnet_from_unet(unet, false, 2);
  one.image = control_image();
  r.control = {one};
  Tensor controlled = sd.generate(r).latents;
  EXPECT_FALSE(same(controlled, plain));

  ControlUnit half = one;
  half.strength = 0.5;
  r.control = {half, half};
  EXPECT_TRUE(same(sd.generate(r).latents, controlled)) << "two units at 0.5 add up to one at 1.0";

  ControlUnit guess = one;
  guess.guess_mode = true;
  r.control = {guess};
  Tensor guessed = sd.generate(r).latents;
  EXPECT_FALSE(same(guessed, controlled));
  EXPECT_FALSE(same(guessed, plain));
}

}  // namespace
}  // namespace pigment
