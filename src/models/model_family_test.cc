#include "models/model_family.h"

#include <gtest/gtest.h>

#include "models/checkpoint_layout.h"

namespace pigment {
namespace {

using json = nlohmann::json;

// Shape-only stand-ins for a checkpoint: tensors with no storage behind them are enough for detection.
std::map<std::string, Tensor> fake_file(const std::vector<Layout>& layouts) {
  std::map<std::string, Tensor> m;
  static const float dummy = 0;
  for (const auto& l : layouts)
    for (const auto& [k, s] : layout_file_tensors(l)) m[k] = Tensor::view(nullptr, &dummy, s, DType::F16);
  return m;
}

std::map<std::string, Tensor> preset_file(const std::string& name) {
  const auto& p = family_preset(name);
  std::vector<Layout> ls = {unet_layout(p.unet), vae_layout(p.vae)};
  if (p.family == Family::SD1) ls.push_back(openai_clip_layout(p.text_encoder_file, file_prefix::kSd1Clip));
  if (p.family == Family::SD2) ls.push_back(open_clip_layout(p.text_encoder_file, file_prefix::kSd2OpenClip));
  if (p.family == Family::SDXL) {
    ls.push_back(openai_clip_layout(p.text_encoder_file, file_prefix::kSdxlClip));
    ls.push_back(open_clip_layout(p.text_encoder_2, file_prefix::kSdxlOpenClip));
  }
  return fake_file(ls);
}

TEST(ModelFamily, DetectsPresetsFromTheirOwnKeys) {
  EXPECT_EQ(detect_family(preset_file("sd15"), "x").family, Family::SD1);
  EXPECT_EQ(detect_family(preset_file("sd21"), "x").family, Family::SD2);
  EXPECT_EQ(detect_family(preset_file("sdxl"), "x").family, Family::SDXL);
  Detection d = detect_family(preset_file("sd21-v"), "x");
  EXPECT_EQ(d.context_dim, 1024);
  EXPECT_FALSE(d.inpaint);
}

TEST(ModelFamily, InpaintingAndUNetOnlyFiles) {
  json u = family_preset("sd15").unet;
  u["in_channels"] = 9;
  Detection d = detect_family(fake_file({unet_layout(u)}), "x");
  EXPECT_EQ(d.family, Family::SD1);  // from the context width alone
  EXPECT_TRUE(d.inpaint);
  EXPECT_EQ(detection_str(d), "sd1 (inpainting)");
  u = family_preset("sd21").unet;
  EXPECT_EQ(detect_family(fake_file({unet_layout(u)}), "x").family, Family::SD2);
}

TEST(ModelFamily, UnknownIsAClearError) {
  static const float dummy = 0;
  std::map<std::string, Tensor> m = {{"lora_unet_down.lora_up.weight", Tensor::view(nullptr, &dummy, {4, 1}, DType::F32)}};
  try {
    detect_family(m, "thing.safetensors");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("thing.safetensors: unknown model family"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(try_detect_family(m).has_value());
  json u = family_preset("sd15").unet;
  u["cross_attention_dim"] = 512;
  EXPECT_FALSE(try_detect_family(fake_file({unet_layout(u)})).has_value());
  u["cross_attention_dim"] = 768;
  u["in_channels"] = 8;
  EXPECT_FALSE(try_detect_family(fake_file({unet_layout(u)})).has_value());
}

TEST(ModelFamily, PredictionTypeConventions) {
  Detection sd2;
  sd2.family = Family::SD2;
  EXPECT_EQ(infer_prediction_type(sd2, "/m/v2-1_768-ema-pruned.safetensors", {}), "v_prediction");
  EXPECT_EQ(infer_prediction_type(sd2, "/m/v2-1_512-ema-pruned.safetensors", {}), "epsilon");
  EXPECT_EQ(infer_prediction_type(sd2, "/m/my-model-v.safetensors", {}), "v_prediction");
  EXPECT_EQ(infer_prediction_type(sd2, "/m/sd21-base.safetensors", {}), "epsilon");
  EXPECT_EQ(infer_prediction_type(sd2, "/m/whatever.safetensors", {}), "v_prediction");
  EXPECT_EQ(infer_prediction_type(sd2, "/m/v2-1_768.safetensors", {{"modelspec.prediction_type", "epsilon"}}),
            "epsilon");
  EXPECT_EQ(infer_prediction_type(sd2, "/m/a.ckpt", {{"global_step", "875000"}}), "epsilon");
  EXPECT_EQ(infer_prediction_type(sd2, "/m/v2-1_768.safetensors", {}, "eps"), "epsilon");
  Detection sd2i = sd2;
  sd2i.inpaint = true;
  EXPECT_EQ(infer_prediction_type(sd2i, "/m/512-inpainting-ema.safetensors", {}), "epsilon");
  Detection sd1;
  EXPECT_EQ(infer_prediction_type(sd1, "/m/v1-5-pruned-768.safetensors", {}), "epsilon");
  EXPECT_EQ(infer_prediction_type(sd1, "/m/x.safetensors", {{"modelspec.architecture", "stable-diffusion-v1-v"}}),
            "v_prediction");
  EXPECT_EQ(infer_prediction_type(sd1, "/m/x.safetensors", {}, "v"), "v_prediction");
  EXPECT_EQ(infer_prediction_type(sd1, "/m/x.safetensors", {}, "x0"), "sample");
  EXPECT_EQ(infer_prediction_type(sd1, "/m/x.safetensors", {{"modelspec.prediction_type", "sample"}}), "sample");
  EXPECT_THROW(infer_prediction_type(sd1, "/m/x.safetensors", {}, "x1"), Error);
}

TEST(ModelFamily, InferredConfigsReproduceThePresets) {
  for (const char* name : {"sd15", "sd21", "sd21-v", "sdxl"}) {
    const auto& p = family_preset(name);
    auto file = preset_file(name);
    Detection d = detect_family(file, name);
    SingleFileConfigs c = infer_single_file_configs(file, d, p.prediction_type);
    EXPECT_EQ(c.unet, p.unet) << name << "\n" << c.unet.dump() << "\n" << p.unet.dump();
    EXPECT_EQ(c.vae, p.vae) << name;
    EXPECT_EQ(c.text_encoder, p.text_encoder) << name << "\n" << c.text_encoder.dump();
    EXPECT_EQ(c.text_encoder_2, p.text_encoder_2) << name;
  }
}

TEST(ModelFamily, PresetNames) {
  EXPECT_EQ(family_preset_names(), (std::vector<std::string>{"sd15", "sd21", "sd21-v", "sdxl", "pigment-emoji"}));
  EXPECT_TRUE(family_preset("pigment-emoji").self_describing);
  EXPECT_FALSE(family_preset("sd15").self_describing);
  EXPECT_THROW(family_preset("sd3"), Error);
  EXPECT_EQ(family_preset("sd21-v").scheduler["prediction_type"], "v_prediction");
  EXPECT_TRUE(family_preset("sd21").text_encoder_2.is_null());
}

}  // namespace
}  // namespace pigment
