#include "models/unet.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include "ops/autograd.h"
#include "ops/precision.h"

namespace pigment {
namespace {

std::string models_dir() {
  const char* env = std::getenv("PIGMENT_SHARED_DIR");
  return (std::filesystem::path(env ? env : "../shared") / "golden" / "models").string();
}

#define REQUIRE_MODEL(name)                                                        \
  if (!std::filesystem::exists(models_dir() + "/" + name + "/config.json"))        \
    GTEST_FAIL() << "golden model " << name << " not found (set PIGMENT_SHARED_DIR)"

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Deterministic, smooth pseudo-random values.
Tensor pattern(Shape shape, float phase) {
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = std::sin(0.37f * float(i) + phase);
  return t;
}

float max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  float m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a.f32()[i] - b.f32()[i]));
  return m;
}

const char* kSD1 = R"({
  "block_out_channels": [32, 64], "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
  "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "attention_head_dim": 8, "num_attention_heads": null,
  "layers_per_block": 2, "cross_attention_dim": 768, "norm_num_groups": 16, "class_embed_type": null,
  "only_cross_attention": false, "act_fn": "silu"})";

TEST(UNetConfig, AttentionHeadDimIsTheHeadCountInSDConfigs) {
  UNetConfig c = UNetConfig::from_json(kSD1);
  EXPECT_EQ(c.num_attention_heads, (std::vector<int>{8, 8}));
  EXPECT_EQ(c.cross_attention_dim, (std::vector<int64_t>{768, 768}));
  EXPECT_EQ(c.layers_per_block, (std::vector<int>{2, 2}));
  EXPECT_EQ(c.norm_num_groups, 16);
  EXPECT_EQ(c.time_embed_dim, 128);
  EXPECT_EQ(c.down_transformer_layers, (std::vector<std::vector<int>>{{1, 1}, {1, 1}}));
  EXPECT_EQ(c.up_transformer_layers, (std::vector<std::vector<int>>{{1, 1, 1}, {1, 1, 1}}));

  UNetConfig sd2 = UNetConfig::from_json(R"({"block_out_channels": [32, 64, 64],
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "attention_head_dim": [5, 10, 20], "use_linear_projection": true})");
  EXPECT_EQ(sd2.num_attention_heads, (std::vector<int>{5, 10, 20}));
  EXPECT_TRUE(sd2.use_linear_projection);

  UNetConfig explicit_heads = UNetConfig::from_json(R"({"block_out_channels": [32],
    "down_block_types": ["CrossAttnDownBlock2D"], "attention_head_dim": 64, "num_attention_heads": 4})");
  EXPECT_EQ(explicit_heads.num_attention_heads, (std::vector<int>{4}));
  EXPECT_EQ(explicit_heads.mid_block_type, "UNetMidBlock2DCrossAttn");
  UNetConfig no_mid = UNetConfig::from_json(R"({"block_out_channels": [32], "down_block_types": ["DownBlock2D"],
    "mid_block_type": null})");
  EXPECT_EQ(no_mid.mid_block_type, "");
}

TEST(UNetConfig, TransformerLayersPerBlockAndTheirReverse) {
  UNetConfig c = UNetConfig::from_json(R"({"block_out_channels": [32, 32, 32], "layers_per_block": 2,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "transformer_layers_per_block": [1, 2, 10], "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256, "projection_class_embeddings_input_dim": 2816})");
  EXPECT_EQ(c.down_transformer_layers[2], (std::vector<int>{10, 10}));
  EXPECT_EQ(c.mid_transformer_layers, (std::vector<int>{10}));
  EXPECT_EQ(c.up_transformer_layers[0], (std::vector<int>{10, 10, 10}));
  EXPECT_EQ(c.up_transformer_layers[2], (std::vector<int>{1, 1, 1}));
  EXPECT_EQ(c.addition_embed_type, "text_time");
  EXPECT_EQ(c.addition_time_embed_dim, 256);
}

TEST(UNetConfig, RejectsWhatItDoesNotImplementByName) {
  std::string base = R"({"block_out_channels": [32], "down_block_types": ["CrossAttnDownBlock2D"], )";
  EXPECT_NE(error_of([&] { UNetConfig::from_json(base + R"("class_embed_type": "timestep"})", "u.json"); })
                .find("class_embed_type"),
            std::string::npos);
  EXPECT_NE(error_of([&] { UNetConfig::from_json(base + R"("layers_per_block": "two"})", "u.json"); })
                .find("layers_per_block"),
            std::string::npos);
  EXPECT_NE(error_of([&] { UNetConfig::from_json(base + R"("attention_head_dim": [1, 2]})", "u.json"); })
                .find("attention_head_dim"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              UNetConfig::from_json(R"({"block_out_channels": [32], "down_block_types": ["SimpleDown"]})", "u.json");
            }).find("SimpleDown"),
            std::string::npos);
  EXPECT_NE(error_of([&] { UNetConfig::from_json("{nope", "u.json"); }).find("u.json"), std::string::npos);
}

TEST(UNet, MissingOrMisshapenWeightsNameTheTensor) {
  REQUIRE_MODEL("unet_inpaint");
  std::string dir = models_dir() + "/unet_inpaint";
  UNetConfig cfg = UNetConfig::load(dir + "/config.json");
  Weights w = load_diffusers_weights(dir);
  const std::string victim = "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight";
  auto missing = std::make_shared<TensorMap>(w.all());
  missing->erase(victim);
  std::string e = error_of([&] { UNet(cfg, Weights(missing, "x.safetensors")); });
  EXPECT_NE(e.find(victim), std::string::npos) << e;
  EXPECT_NE(e.find("x.safetensors"), std::string::npos) << e;

  auto wrong = std::make_shared<TensorMap>(w.all());
  (*wrong)["conv_in.weight"] = Tensor::zeros({32, 4, 3, 3});  // the inpainting UNet takes 9 channels
  e = error_of([&] { UNet(cfg, Weights(wrong, "x.safetensors")); });
  EXPECT_NE(e.find("conv_in.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("[32, 9, 3, 3]"), std::string::npos) << e;
}

TEST(UNet, ScalarTimestepBroadcastsAndOddSizesWork) {
  REQUIRE_MODEL("unet_inpaint");
  UNet unet = UNet::load(models_dir() + "/unet_inpaint");
  Tensor sample = pattern({2, 9, 5, 7}, 0.f), ctx = pattern({2, 3, 32}, 1.f);
  Tensor a = unet.forward(sample, {250.5f}, ctx);
  Tensor b = unet.forward(sample, {250.5f, 250.5f}, ctx);
  EXPECT_EQ(a.shape(), (Shape{2, 4, 5, 7}));
  EXPECT_EQ(max_abs_diff(a, b), 0.f);
  Tensor c = unet.forward(sample, {250.5f, 10.f}, ctx);
  EXPECT_EQ(max_abs_diff(ops::slice(a, 0, 0, 1), ops::slice(c, 0, 0, 1)), 0.f);
  EXPECT_GT(max_abs_diff(ops::slice(a, 0, 1, 2), ops::slice(c, 0, 1, 2)), 1e-4f);

  EXPECT_NE(error_of([&] { unet.forward(sample, {1.f, 2.f, 3.f}, ctx); }).find("3 timesteps"), std::string::npos);
  EXPECT_NE(error_of([&] { unet.forward(pattern({2, 4, 8, 8}, 0.f), {1.f}, ctx); }).find("sample"),
            std::string::npos);
  UNetExtras only_down;
  only_down.down_block_additional_residuals.push_back(Tensor::zeros({2, 32, 5, 7}));
  EXPECT_NE(error_of([&] { unet.forward(sample, {1.f}, ctx, only_down); }).find("ControlNet"), std::string::npos);
}

TEST(UNet, HooksSeeIntermediatesLayersAndAttentionContexts) {
  REQUIRE_MODEL("unet_inpaint");
  UNet unet = UNet::load(models_dir() + "/unet_inpaint");
  Tensor sample = pattern({1, 9, 4, 4}, 0.5f), ctx = pattern({1, 3, 32}, 2.f);
  Tensor base = unet.forward(sample, {500.f}, ctx);

  std::set<std::string> captured, layers, attentions;
  UNetExtras e;
  e.hooks.capture = [&](const std::string& n, const Tensor&) { captured.insert(n); };
  e.hooks.layer_delta = [&](const std::string& n, const Tensor&, Tensor&) { layers.insert(n); };
  e.hooks.attention_context = [&](const std::string& n, const Tensor& c) {
    attentions.insert(n);
    return AttentionContext{c, c};
  };
  EXPECT_EQ(max_abs_diff(unet.forward(sample, {500.f}, ctx, e), base), 0.f);
  for (const char* n : {"time_proj", "time_embedding", "conv_in", "down_blocks.0", "down_blocks.1", "mid_block",
                        "up_blocks.0", "up_blocks.1", "conv_norm_out"})
    EXPECT_TRUE(captured.count(n)) << n;
  EXPECT_TRUE(layers.count("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"));
  EXPECT_TRUE(layers.count("mid_block.resnets.1.conv2"));
  EXPECT_TRUE(layers.count("conv_out"));
  EXPECT_TRUE(attentions.count("up_blocks.1.attentions.1.transformer_blocks.0.attn1"));
  EXPECT_TRUE(attentions.count("mid_block.attentions.0.transformer_blocks.0.attn2"));

  // Distinct key and value contexts reach the cross-attention (the hypernetwork seam).
  UNetExtras v_only;
  v_only.hooks.attention_context = [&](const std::string& n, const Tensor& c) {
    if (n.size() < 5 || n.substr(n.size() - 5) != "attn2") return AttentionContext{c, c};
    return AttentionContext{c, ops::scale(c, 2.f)};
  };
  EXPECT_GT(max_abs_diff(unet.forward(sample, {500.f}, ctx, v_only), base), 1e-4f);
}

// Under --precision int8 the products whose int8 rounding costs the most image quality for the least work run as fast
// (ops::without_int8): cross-attention's keys and values of the text and the resampling convolutions; the rest of
// the UNet (queries, self-attention, feed-forward, the residual blocks' convolutions) takes int8.
TEST(UNet, Int8StaysOutOfTheTextsKeysAndTheResamplers) {
  REQUIRE_MODEL("unet_inpaint");
  UNet unet = UNet::load(models_dir() + "/unet_inpaint");
  Tensor sample = pattern({1, 9, 4, 4}, 0.5f), ctx = pattern({1, 3, 32}, 2.f);
  std::map<std::string, ops::Precision> seen;
  UNetExtras e;
  e.hooks.layer_delta = [&](const std::string& n, const Tensor&, Tensor&) { seen[n] = ops::precision(); };
  const ops::ScopedPrecision int8(ops::Precision::Int8);
  unet.forward(sample, {500.f}, ctx, e);
  EXPECT_EQ(ops::precision(), ops::Precision::Int8);
  const std::string attn = "down_blocks.0.attentions.0.transformer_blocks.0.";
  for (const std::string& n : {attn + "attn2.to_k", attn + "attn2.to_v", std::string("down_blocks.0.downsamplers.0.conv"),
                              std::string("up_blocks.0.upsamplers.0.conv")}) {
    ASSERT_TRUE(seen.count(n)) << n;
    EXPECT_EQ(seen[n], ops::Precision::Fast) << n;
  }
  for (const std::string& n : {attn + "attn2.to_q", attn + "attn2.to_out.0", attn + "attn1.to_k", attn + "attn1.to_v",
                              attn + "ff.net.2", std::string("down_blocks.0.resnets.0.conv1"),
                              std::string("mid_block.resnets.1.conv2")}) {
    ASSERT_TRUE(seen.count(n)) << n;
    EXPECT_EQ(seen[n], ops::Precision::Int8) << n;
  }
}

}  // namespace
}  // namespace pigment

namespace pigment {
namespace {

// Gradient checkpointing per block recomputes each block in the backward: every parameter gradient and the input
// gradient agree with those of an ordinary recording (to float32 rounding: the parameter sums are added in another
// order), while the tape keeps far fewer nodes.
TEST(UNetTraining, CheckpointedBlocksGiveTheSameGradients) {
  REQUIRE_MODEL("unet_sd1");
  UNet unet = UNet::load(models_dir() + "/unet_sd1");
  const Tensor sample = pattern({2, 4, 16, 16}, 0.3f), ctx = pattern({2, 7, 32}, 1.1f);
  const Tensor dy = pattern({2, 4, 16, 16}, 2.2f);
  struct Run {
    std::map<std::string, Tensor> grads;
    Tensor dx;
    size_t nodes = 0;
  };
  auto run = [&](bool checkpoint) {
    ops::autograd::Tape tape;
    for (const auto& [name, t] : unet.weights().all()) tape.watch(t);
    Tensor x = tape.input(sample);
    UNetExtras e;
    e.hooks.checkpoint_blocks = checkpoint;
    Tensor y;
    {
      ops::autograd::Recording rec(tape);
      y = unet.forward(x, {500.f, 20.f}, ctx, e);
    }
    Run r;
    r.nodes = tape.size();
    tape.backward(y, dy);
    for (const auto& [name, t] : unet.weights().all()) r.grads[name] = tape.gradient(t).clone();
    r.dx = tape.gradient(x).clone();
    return r;
  };
  const Run plain = run(false), ckpt = run(true);
  EXPECT_LT(ckpt.nodes * 4, plain.nodes) << "checkpointed recording keeps " << ckpt.nodes << " nodes, plain "
                                         << plain.nodes;
  ASSERT_EQ(plain.grads.size(), ckpt.grads.size());
  for (const auto& [name, g] : plain.grads) {
    ASSERT_TRUE(g.defined() && ckpt.grads.at(name).defined()) << name;
    EXPECT_LT(max_abs_diff(ckpt.grads.at(name), g), 1e-5f * (1 + max_abs_diff(g, Tensor::zeros(g.shape())))) << name;
  }
  EXPECT_LT(max_abs_diff(ckpt.dx, plain.dx), 1e-5f * (1 + max_abs_diff(plain.dx, Tensor::zeros(plain.dx.shape()))));
}

}  // namespace
}  // namespace pigment
