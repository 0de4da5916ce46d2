// SD2 and SDXL ControlNets. No golden case exists for them, so tiny ones are built from the tiny SD2 / SDXL UNets of
// ../shared/golden the way diffusers' ControlNetModel.from_unet does: the encoder half (time and add embeddings,
// conv_in, down blocks, mid block) copies the UNet's weights, the conditioning embedding and the 1x1 zero convs are
// new. Checked: zero-initialised zero convs leave the UNet output unchanged; identity zero convs give back the UNet's
// own skip connections (seen through its hooks); random ones equal a hand composition of the encoder half; the
// single-file forms (diffusers names, original control_model.* names, unprefixed) load to the same model.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "io/safetensors.h"
#include "models/controlnet.h"
#include "models/controlnet_loader.h"
#include "models/model_family.h"
#include "models/random_init.h"
#include "models/unet.h"

namespace pigment {
namespace {

namespace fs = std::filesystem;

fs::path models_dir() {
  const char* env = std::getenv("PIGMENT_SHARED_DIR");
  return fs::path(env ? env : "../shared") / "golden" / "models";
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream f(p);
  return nlohmann::json::parse(f);
}

Tensor random_tensor(const Shape& shape, std::mt19937& gen, float scale) {
  Tensor t = Tensor::empty(shape);
  std::normal_distribution<float> d(0.f, scale);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = d(gen);
  return t;
}

Tensor pattern(const Shape& shape, float phase) {
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = 0.5f + 0.5f * std::sin(0.37f * float(i) + phase);
  return t;
}

enum class ZeroConvs { Zero, Identity, Random };

// A ControlNet from a UNet, as ControlNetModel.from_unet; the conditioning embedding is random except, when
// `zero_cond_out`, its last conv (zero in diffusers' init), and the zero convs are as asked.
struct Built {
  nlohmann::json config;
  std::shared_ptr<TensorMap> weights;
  ControlNet make() const { return ControlNet(ControlNetConfig::from_json(config.dump()), Weights(weights, "test")); }
};

Built from_unet(const nlohmann::json& unet_config, const Weights& unet, ZeroConvs zc, bool zero_cond_out,
                uint32_t seed) {
  Built b;
  b.config = unet_config;
  b.config.erase("up_block_types");
  b.config["_class_name"] = "ControlNetModel";
  const std::vector<int64_t> widths{8, 8, 16, 16};  // three stride-2 steps: the image is 8x the latent
  b.config["conditioning_embedding_out_channels"] = widths;
  b.weights = std::make_shared<TensorMap>();
  for (const auto& [k, t] : unet.all())
    if (k.rfind("up_blocks.", 0) != 0 && k.rfind("conv_norm_out.", 0) != 0 && k.rfind("conv_out.", 0) != 0)
      (*b.weights)[k] = t;
  std::mt19937 gen(seed);
  auto conv = [&](const std::string& name, int64_t in, int64_t out, int64_t k, bool zero) {
    (*b.weights)[name + ".weight"] = zero ? Tensor::zeros({out, in, k, k}) : random_tensor({out, in, k, k}, gen, 1.f / std::sqrt(float(in * k * k)));
    (*b.weights)[name + ".bias"] = zero ? Tensor::zeros({out}) : random_tensor({out}, gen, 0.1f);
  };
  UNetConfig cfg = UNetConfig::from_json(unet_config.dump());
  conv("controlnet_cond_embedding.conv_in", 3, widths[0], 3, false);
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    conv("controlnet_cond_embedding.blocks." + std::to_string(2 * i), widths[i], widths[i], 3, false);
    conv("controlnet_cond_embedding.blocks." + std::to_string(2 * i + 1), widths[i], widths[i + 1], 3, false);
  }
  const auto& boc = cfg.block_out_channels;
  conv("controlnet_cond_embedding.conv_out", widths.back(), boc[0], 3, zero_cond_out);
  auto zero_conv = [&](const std::string& name, int64_t c) {
    if (zc == ZeroConvs::Identity) {
      Tensor w = Tensor::zeros({c, c, 1, 1});
      for (int64_t i = 0; i < c; ++i) w.f32()[i * c + i] = 1.f;
      (*b.weights)[name + ".weight"] = w;
      (*b.weights)[name + ".bias"] = Tensor::zeros({c});
    } else {
      conv(name, c, c, 1, zc == ZeroConvs::Zero);
    }
  };
  int k = 0;
  zero_conv("controlnet_down_blocks." + std::to_string(k++), boc[0]);
  for (size_t i = 0; i < boc.size(); ++i) {
    for (int l = 0; l < cfg.layers_per_block[i]; ++l) zero_conv("controlnet_down_blocks." + std::to_string(k++), boc[i]);
    if (i + 1 < boc.size()) zero_conv("controlnet_down_blocks." + std::to_string(k++), boc[i]);
  }
  zero_conv("controlnet_mid_block", boc.back());
  return b;
}

// One family's tiny UNet with inputs for it: latent 8x8 (image 64x64), SDXL text_embeds/time_ids.
struct Family {
  std::string name;
  nlohmann::json config;
  Weights weights;
  Tensor sample, context, cond;
  UNetExtras extras;
};

Family load_family(const std::string& dir) {
  Family f;
  f.name = dir;
  f.config = read_json(models_dir() / dir / "config.json");
  f.weights = load_diffusers_weights((models_dir() / dir).string());
  UNetConfig cfg = UNetConfig::from_json(f.config.dump());
  f.sample = pattern({2, 4, 8, 8}, 0.3f);
  f.context = pattern({2, 7, cfg.cross_attention_dim[0]}, 1.1f);
  f.cond = pattern({2, 3, 64, 64}, 2.f);
  if (cfg.addition_embed_type == "text_time") {
    int64_t text_dim = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim;
    f.extras.text_embeds = pattern({2, text_dim}, 0.7f);
    f.extras.time_ids = Tensor::from_vector({2, 6}, {64, 64, 0, 0, 64, 64, 48, 80, 4, 8, 64, 64});
  }
  return f;
}

class ControlNetFamilies : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!fs::exists(models_dir() / GetParam() / "config.json")) GTEST_FAIL() << "no golden models in " << models_dir();
    fam = load_family(GetParam());
  }
  Family fam;
};

void expect_same(const Tensor& a, const Tensor& b, float tol, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  Tensor x = a.to(DType::F32), y = b.to(DType::F32);
  float worst = 0, scale = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    worst = std::max(worst, std::fabs(x.f32()[i] - y.f32()[i]));
    scale = std::max(scale, std::fabs(y.f32()[i]));
  }
  EXPECT_LE(worst, tol * std::max(scale, 1.f)) << what;
}

TEST_P(ControlNetFamilies, ZeroConvsLeaveTheUNetOutputUnchanged) {
  ControlNet cn = from_unet(fam.config, fam.weights, ZeroConvs::Zero, true, 1).make();
  UNet unet(UNetConfig::from_json(fam.config.dump()), fam.weights);
  ControlNetOutput res = cn.forward(fam.sample, {500.f}, fam.context, fam.cond, 1.f, false, fam.extras);
  UNetExtras with = fam.extras;
  with.down_block_additional_residuals = res.down_block_residuals;
  with.mid_block_additional_residual = res.mid_block_residual;
  Tensor plain = unet.forward(fam.sample, {500.f}, fam.context, fam.extras);
  Tensor controlled = unet.forward(fam.sample, {500.f}, fam.context, with);
  for (int64_t i = 0; i < plain.numel(); ++i) ASSERT_EQ(plain.f32()[i], controlled.f32()[i]) << i;
}

TEST_P(ControlNetFamilies, IdentityZeroConvsGiveTheUNetsOwnSkipConnections) {
  // With the condition embedding's last conv at zero, the ControlNet's encoder sees exactly the UNet's input.
  ControlNet cn = from_unet(fam.config, fam.weights, ZeroConvs::Identity, true, 2).make();
  UNetConfig cfg = UNetConfig::from_json(fam.config.dump());
  UNet unet(cfg, fam.weights);
  std::map<std::string, Tensor> seen;
  UNetExtras capture = fam.extras;
  capture.hooks.capture = [&](const std::string& n, const Tensor& v) { seen[n] = v.clone(); };
  unet.forward(fam.sample, {321.f}, fam.context, capture);
  ControlNetOutput res = cn.forward(fam.sample, {321.f}, fam.context, fam.cond, 1.f, false, fam.extras);
  // Skip 0 is conv_in's output; the last skip of block i is that block's output.
  expect_same(res.down_block_residuals[0], seen.at("conv_in"), 1e-6f, "conv_in");
  size_t last = 0;
  for (size_t i = 0; i < cfg.block_out_channels.size(); ++i) {
    last += size_t(cfg.layers_per_block[i]) + (i + 1 < cfg.block_out_channels.size() ? 1 : 0);
    expect_same(res.down_block_residuals[last], seen.at("down_blocks." + std::to_string(i)), 1e-6f,
                "down_blocks." + std::to_string(i));
  }
  EXPECT_EQ(last + 1, res.down_block_residuals.size());
  expect_same(res.mid_block_residual, seen.at("mid_block"), 1e-6f, "mid_block");
}

TEST_P(ControlNetFamilies, RandomControlNetEqualsAHandComposition) {
  Built b = from_unet(fam.config, fam.weights, ZeroConvs::Random, false, 3);
  ControlNet cn = b.make();
  const float scale = 0.75f;
  ControlNetOutput res = cn.forward(fam.sample, {77.f}, fam.context, fam.cond, scale, false, fam.extras);

  // By hand: the UNet's own encoder half, the conditioning convs and the 1x1 convs as plain ops.
  UNetConfig cfg = UNetConfig::from_json(fam.config.dump());
  UNetEncoder enc(cfg, fam.weights);
  const TensorMap& w = *b.weights;
  auto conv = [&](const Tensor& x, const std::string& name, int stride) {
    int64_t k = w.at(name + ".weight").dim(2);
    return ops::conv2d(x, w.at(name + ".weight"), &w.at(name + ".bias"),
                       ops::Conv2dParams::same(int(k / 2), stride));
  };
  Tensor e = ops::silu(conv(fam.cond, "controlnet_cond_embedding.conv_in", 1));
  for (int i = 0; i < 6; ++i) e = ops::silu(conv(e, "controlnet_cond_embedding.blocks." + std::to_string(i), i % 2 ? 2 : 1));
  e = conv(e, "controlnet_cond_embedding.conv_out", 1);
  Tensor emb = enc.time_embedding({77.f}, 2, fam.extras);
  Tensor x = ops::add(enc.conv_in(fam.sample, {}), e);
  std::vector<Tensor> skips{x};
  x = enc.mid(enc.down(x, emb, fam.context, skips, {}), emb, fam.context, {});
  ASSERT_EQ(skips.size(), res.down_block_residuals.size());
  for (size_t i = 0; i < skips.size(); ++i)
    expect_same(res.down_block_residuals[i],
                ops::scale(conv(skips[i], "controlnet_down_blocks." + std::to_string(i), 1), scale), 1e-5f,
                "residual " + std::to_string(i));
  expect_same(res.mid_block_residual, ops::scale(conv(x, "controlnet_mid_block", 1), scale), 1e-5f, "mid");

  // And the residuals reach the UNet: its output moves.
  UNet unet(cfg, fam.weights);
  UNetExtras with = fam.extras;
  with.down_block_additional_residuals = res.down_block_residuals;
  with.mid_block_additional_residual = res.mid_block_residual;
  Tensor a = unet.forward(fam.sample, {77.f}, fam.context, fam.extras);
  Tensor c = unet.forward(fam.sample, {77.f}, fam.context, with);
  double moved = 0;
  for (int64_t i = 0; i < a.numel(); ++i) moved += std::fabs(a.f32()[i] - c.f32()[i]);
  EXPECT_GT(moved / double(a.numel()), 1e-3);
}

TEST_P(ControlNetFamilies, SingleFileFormsLoadToTheSameModel) {
  Built b = from_unet(fam.config, fam.weights, ZeroConvs::Random, false, 4);
  ControlNet direct = b.make();
  ControlNetOutput ref = direct.forward(fam.sample, {900.f}, fam.context, fam.cond, 1.f, false, fam.extras);

  // Diffusers names in one file (as most SDXL ControlNets ship), the original control_model.* layout, and the
  // original layout without prefix (control_v11 safetensors).
  NamedTensors diffusers;
  for (const auto& [k, t] : *b.weights) diffusers.emplace_back(k, t);
  std::map<std::string, NamedTensors> files{{"diffusers", diffusers}};
  for (const std::string prefix : {"control_model.", ""}) {
    NamedTensors original;
    for (const auto& e : controlnet_layout(fam.config, prefix)) {
      // controlnet_layout has lllyasviel's conditioning widths, this model smaller ones: same keys, its own tensors.
      ASSERT_TRUE(b.weights->count(e.name)) << e.name;
      const Tensor& t = b.weights->at(e.name);
      bool own = e.name.rfind("controlnet_", 0) == 0;
      original.emplace_back(e.file_key, own ? t : t.reshape(e.file_shape));
    }
    files[prefix.empty() ? "original-unprefixed" : "original"] = original;
  }
  for (const auto& [form, tensors] : files) {
    fs::path file = fs::temp_directory_path() / ("pigment_cn_" + fam.name + "_" + form + ".safetensors");
    write_safetensors(file.string(), tensors);
    ControlNet loaded = load_controlnet(file.string(), fam.config);
    fs::remove(file);
    ControlNetOutput got = loaded.forward(fam.sample, {900.f}, fam.context, fam.cond, 1.f, false, fam.extras);
    ASSERT_EQ(got.down_block_residuals.size(), ref.down_block_residuals.size()) << form;
    for (size_t i = 0; i < ref.down_block_residuals.size(); ++i)
      expect_same(got.down_block_residuals[i], ref.down_block_residuals[i], 0.f, form + " residual " + std::to_string(i));
    expect_same(got.mid_block_residual, ref.mid_block_residual, 0.f, form + " mid");
  }
}

INSTANTIATE_TEST_SUITE_P(Tiny, ControlNetFamilies, ::testing::Values("unet_sd1", "unet_sd2", "unet_sdxl"));

TEST(ControlNetLayout, FullSizeSd15AndSdxl) {
  // lllyasviel's SD1.5 ControlNets hold 361M parameters (1.45 GB in float32); diffusers' SDXL ones 1.25B (2.5 GB in
  // float16). The layout walks the full-size presets' UNet configs.
  struct Case {
    const char* family;
    int64_t lo, hi;
    size_t zero_convs;
  };
  for (const Case& c : {Case{"sd15", 361'000'000, 361'500'000, 12}, Case{"sdxl", 1'245'000'000, 1'255'000'000, 9}}) {
    Layout l = controlnet_layout(family_preset(c.family).unet);
    int64_t params = param_count(layout_params(l));
    EXPECT_GE(params, c.lo) << c.family;
    EXPECT_LE(params, c.hi) << c.family;
    size_t zero = 0, hint = 0;
    for (const auto& e : l) {
      EXPECT_EQ(e.file_key.rfind("control_model.", 0), 0u) << e.file_key;
      zero += e.file_key.find(".zero_convs.") != std::string::npos && e.file_key.ends_with(".weight");
      hint += e.file_key.find(".input_hint_block.") != std::string::npos && e.file_key.ends_with(".weight");
      EXPECT_EQ(e.file_key.find("output_blocks"), std::string::npos) << e.file_key;
      EXPECT_EQ(e.file_key.find(".out."), std::string::npos) << e.file_key;
    }
    EXPECT_EQ(zero, c.zero_convs) << c.family;
    EXPECT_EQ(hint, 8u) << c.family;
  }
}

TEST(ControlNetLayout, RandomFullSizeSd15ControlNetLoads) {
  // What pigment init --controlnet writes (float16, ~720 MB): it loads against the SD1.5 UNet config.
  const FamilyPreset& p = family_preset("sd15");
  fs::path file = fs::temp_directory_path() / "pigment_cn_full_sd15.safetensors";
  InitOptions o;
  o.family = "sd15";
  o.dtype = DType::F16;
  InitReport r = write_random_tensors(file.string(), {controlnet_layout(p.unet)}, o, false);
  EXPECT_EQ(r.components.at("controlnet").parameters, param_count(layout_params(controlnet_layout(p.unet))));
  ControlNet cn = load_controlnet(file.string(), p.unet);
  fs::remove(file);
  EXPECT_EQ(cn.config().conditioning_embedding_out_channels, (std::vector<int64_t>{16, 32, 96, 256}));
  EXPECT_EQ(cn.config().unet.block_out_channels, (std::vector<int64_t>{320, 640, 1280, 1280}));
}

}  // namespace
}  // namespace pigment
