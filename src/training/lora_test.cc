// LoRA on the text encoder(s) (--method lora --train-text-encoder): the training forward (run-time deltas through
// ClipOptions::hooks), the saved kohya file loaded by pigment's LoRA loader, and the method's own merged model give
// the same text conditioning; only the networks asked for are trained and saved.
#include "training/lora.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "core/threading.h"
#include "io/safetensors.h"
#include "models/lora.h"
#include "ops/ops.h"
#include "training/method.h"
#include "training/trainer.h"
#include "training/training_test_util.h"

namespace pigment::training {
namespace {

using namespace testing;

TrainOptions te_lora_options(const fs::path& root, const PipelineOptions& model) {
  TrainOptions o;
  o.method = "lora";
  o.model = model;
  o.data_dir = make_dataset(root).string();
  o.data.resolution = 64;
  o.data.buckets = false;
  o.output = (root / "out" / "te_lora.safetensors").string();
  o.max_steps = 6;
  o.learning_rate = 1e-2;
  o.lora.rank = 4;
  o.lora.alpha = 4;
  o.train_text_encoder = true;
  o.seed = 5;
  return o;
}

PromptEmbeds encode(const StableDiffusion& sd, const std::string& caption) {
  GenerateRequest r;
  r.a1111_syntax = false;  // as the trainer encodes captions
  return sd.encode_prompt(caption, r);
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double m = 0;
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, double(std::fabs(x[i] - y[i])));
  return m;
}

double max_abs(const Tensor& a) {
  double m = 0;
  for (float v : a.to_vector()) m = std::max(m, double(std::fabs(v)));
  return m;
}

// The three ways to the conditioning agree: training's run-time deltas, the method's merged model (sample images)
// and the saved file through pigment's LoRA loader. `prefixes`: the kohya prefix of each encoder's modules, and
// `layers` the encoders' layer counts.
void expect_paths_agree(const PipelineOptions& po, const std::vector<std::string>& prefixes,
                        const std::vector<int>& layers) {
  ScopedNumThreads one(1);
  TempDir tmp;
  TrainOptions o = te_lora_options(tmp.path, po);
  StableDiffusion sd = StableDiffusion::load(po);
  const std::string caption = "a red square";
  const PromptEmbeds base = encode(sd, caption);
  std::unique_ptr<Method> method = make_method("lora", sd, o);

  // Untrained (up = 0): the recorded text path is the frozen one.
  PromptEmbeds start = method->encode_captions({caption});
  EXPECT_LT(max_abs_diff(start.context, base.context), 1e-5);
  if (base.pooled.defined()) {
    EXPECT_LT(max_abs_diff(start.pooled, base.pooled), 1e-5);
  }

  // A trained state stands in: every up matrix random.
  std::mt19937 g(3);
  std::uniform_real_distribution<float> u(-0.3f, 0.3f);
  int te_modules = 0;
  for (Param& p : method->params()) {
    if (p.name.rfind("lora_te", 0) == 0 && p.name.find(".lora_up.") != std::string::npos) ++te_modules;
    if (p.name.find(".lora_up.") == std::string::npos) continue;
    for (int64_t i = 0; i < p.value.numel(); ++i) p.value.f32()[i] = u(g);
  }
  int expected = 0;
  for (int n : layers) expected += 6 * n;  // q, k, v, out_proj, fc1, fc2 per layer
  EXPECT_EQ(te_modules, expected);

  const PromptEmbeds trained = method->encode_captions({caption});
  const double moved = max_abs_diff(trained.context, base.context);
  EXPECT_GT(moved, 0.05 * max_abs(base.context)) << "the deltas change the conditioning";

  ASSERT_TRUE(method->apply_to(sd));
  const PromptEmbeds merged = encode(sd, caption);
  method->remove_from(sd);
  const double tol = 1e-4 * std::max(1.0, max_abs(trained.context));
  EXPECT_LT(max_abs_diff(merged.context, trained.context), tol);

  const std::string path = (tmp.path / "te.safetensors").string();
  method->save(path, {});
  SafeTensors f = SafeTensors::open(path);
  for (size_t e = 0; e < prefixes.size(); ++e)
    for (int l = 0; l < layers[e]; ++l)
      for (const char* m : {"self_attn_q_proj", "self_attn_k_proj", "self_attn_v_proj", "self_attn_out_proj",
                            "mlp_fc1", "mlp_fc2"}) {
        const std::string k = prefixes[e] + "text_model_encoder_layers_" + std::to_string(l) + "_" + m;
        EXPECT_TRUE(f.contains(k + ".lora_down.weight")) << k;
        EXPECT_TRUE(f.contains(k + ".lora_up.weight")) << k;
        EXPECT_TRUE(f.contains(k + ".alpha")) << k;
      }
  StableDiffusion loaded = StableDiffusion::load(po);
  EXPECT_TRUE(loaded.set_loras({LoraChoice(LoraFile::load(path), 1.f)}).empty()) << "every module binds";
  const PromptEmbeds from_file = encode(loaded, caption);
  EXPECT_LT(max_abs_diff(from_file.context, trained.context), tol);
  if (base.pooled.defined()) {
    EXPECT_GT(max_abs_diff(trained.pooled, base.pooled), 0.05 * max_abs(base.pooled));
    EXPECT_LT(max_abs_diff(from_file.pooled, trained.pooled), 1e-4 * std::max(1.0, max_abs(trained.pooled)));
  }
}

TEST(TextEncoderLora, TrainingFileAndMergedModelGiveTheSameConditioning) {
  expect_paths_agree(tiny_model(), {"lora_te_"}, {4});
}

TEST(TextEncoderLora, SdxlHasANetworkPerEncoderUnderKohyasNames) {
  expect_paths_agree(tiny_sdxl_model(), {"lora_te1_", "lora_te2_"}, {4, 5});
}

// --network-train-text-encoder-only: the text encoder's network trains (its gradient comes through the frozen UNet)
// and the file holds no UNet module.
TEST(TextEncoderLora, TextEncoderOnlyTrainsAndSavesNoUNetModule) {
  ScopedNumThreads one(1);
  TempDir tmp;
  TrainOptions o = te_lora_options(tmp.path, tiny_model());
  o.lora.train_unet = false;
  std::vector<float> losses;
  train(o, [&](const StepReport& r) { losses.push_back(r.loss); });
  ASSERT_EQ(losses.size(), 6u);
  SafeTensors f = SafeTensors::open(o.output);
  int te = 0;
  for (const auto& e : f.entries()) {
    EXPECT_NE(e.name.rfind("lora_unet_", 0), 0u) << e.name;
    if (e.name.find(".lora_up.") != std::string::npos) {
      ++te;
      EXPECT_GT(max_abs(f.get(e.name).as_f32()), 0) << e.name << " trained";
    }
  }
  EXPECT_EQ(te, 24);
  StableDiffusion sd = StableDiffusion::load(tiny_model());
  const PromptEmbeds base = encode(sd, "a red square");
  EXPECT_TRUE(sd.set_loras({LoraChoice(LoraFile::load(o.output), 1.f)}).empty());
  EXPECT_GT(max_abs_diff(encode(sd, "a red square").context, base.context), 1e-3);

  // Neither network: refused before step 1.
  o.train_text_encoder = false;
  o.output = (tmp.path / "none" / "x.safetensors").string();
  EXPECT_THROW(train(o), Error);
}

// SDXL through the trainer: the UNet reads encoder 1's and 2's penultimate layers and encoder 2's pooled vector, so
// encoder 2's last layer trains (only the pooled vector reaches it) and encoder 1's last layer gets no gradient.
TEST(TextEncoderLora, SdxlTrainsEncoder2ThroughThePooledVector) {
  ScopedNumThreads one(1);
  TempDir tmp;
  TrainOptions o = te_lora_options(tmp.path, tiny_sdxl_model());
  o.lora.train_unet = false;
  o.max_steps = 2;
  train(o);
  SafeTensors f = SafeTensors::open(o.output);
  int te1 = 0, te2 = 0;
  for (const auto& e : f.entries()) {
    if (e.name.find(".lora_up.") == std::string::npos) continue;
    const bool trained = max_abs(f.get(e.name).as_f32()) > 0;
    if (e.name.rfind("lora_te1_", 0) == 0) {
      ++te1;
      EXPECT_EQ(trained, e.name.find("_layers_3_") == std::string::npos) << e.name;
    } else {
      ASSERT_EQ(e.name.rfind("lora_te2_", 0), 0u) << e.name;
      ++te2;
      EXPECT_TRUE(trained) << e.name;
    }
  }
  EXPECT_EQ(te1, 24);
  EXPECT_EQ(te2, 30);
}

// --text-encoder-lr is the text encoder networks' learning rate (a param group): at 0 they stay at their start
// (up = 0) while the UNet's network trains.
TEST(TextEncoderLora, TextEncoderLrIsItsOwnParamGroup) {
  ScopedNumThreads one(1);
  TempDir tmp;
  TrainOptions o = te_lora_options(tmp.path, tiny_model());
  o.max_steps = 3;
  o.text_encoder_lr = 0;
  train(o);
  SafeTensors f = SafeTensors::open(o.output);
  int unet = 0, te = 0;
  for (const auto& e : f.entries()) {
    if (e.name.find(".lora_up.") == std::string::npos) continue;
    const double m = max_abs(f.get(e.name).as_f32());
    if (e.name.rfind("lora_te_", 0) == 0) {
      ++te;
      EXPECT_EQ(m, 0) << e.name;
    } else {
      unet += m > 0;
    }
  }
  EXPECT_EQ(te, 24);
  EXPECT_GT(unet, 0);
}

}  // namespace
}  // namespace pigment::training
