// --method full: every UNet weight trains, and the result is a whole single-file checkpoint.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/threading.h"
#include "io/checkpoint.h"
#include "io/image.h"
#include "models/checkpoint_layout.h"
#include "models/checkpoint_writer.h"
#include "models/random_init.h"
#include "models/vae.h"
#include "ops/backward.h"
#include "ops/ops.h"
#include "training/trainer.h"
#include "training/training_test_util.h"

namespace pigment::training {
namespace {

namespace fs = std::filesystem;
using namespace testing;

PipelineOptions golden_sd1() { return tiny_model(); }

TrainOptions full_options(const fs::path& root, const PipelineOptions& model) {
  TrainOptions o;
  o.method = "full";
  o.model = model;
  o.data_dir = make_dataset(root).string();
  o.data.resolution = 64;
  o.data.buckets = false;
  o.output = (root / "out" / "tiny_full.safetensors").string();
  o.max_steps = 8;
  o.learning_rate = 1e-3;
  o.seed = 11;
  return o;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

TEST(FullTraining, LossFallsAndTheCheckpointGeneratesTowardTheData) {
  ScopedNumThreads one(1);  // tiny models: one thread is fastest on a busy machine
  TempDir tmp;
  TrainOptions o = full_options(tmp.path, golden_sd1());
  o.max_steps = 200;
  o.min_snr_gamma = 5;  // the low-noise steps, whose ε no small model can infer, would otherwise dominate the loss
  std::vector<float> losses;
  const auto t0 = std::chrono::steady_clock::now();
  TrainSummary s = train(o, [&](const StepReport& r) { losses.push_back(r.loss); });
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(s.steps, o.max_steps);
  const auto [first, last] = first_and_last_mean(losses);
  EXPECT_GT(first / last, 5.0) << "mean loss of the first 10 steps " << first << ", of the last 10 " << last;

  // The result is a single file in the SD1 layout, f16 by default, that the loader reads like the base; the VAE
  // and text encoder are the base's (rounded to f16), the UNet is not.
  Checkpoint file = load_checkpoint(o.output);
  EXPECT_TRUE(file.tensors.count("model.diffusion_model.out.2.weight"));
  EXPECT_EQ(file.tensors.at("model.diffusion_model.out.2.weight").dtype(), DType::F16);
  EXPECT_EQ(file.metadata.at("modelspec.architecture"), "stable-diffusion-v1");
  EXPECT_EQ(file.metadata.at("ss_max_train_steps"), "200");
  LoadedModel base = load_model(golden_sd1().model, golden_sd1().load);
  LoadedModel trained = load_model(o.output, golden_sd1().load);
  EXPECT_TRUE(trained.unused_keys.empty());
  for (const char* c : {"vae", "text_encoder"})
    for (const auto& [k, t] : *base.component(c).tensors)
      ASSERT_TRUE(same_bits(trained.component(c).tensors->at(k), t.to(DType::F16))) << c << "." << k;
  int changed = 0;
  for (const auto& [k, t] : *base.component("unet").tensors)
    changed += !same_bits(trained.component("unet").tensors->at(k), t.to(DType::F16));
  EXPECT_GT(changed, int(base.component("unet").tensors->size()) * 9 / 10) << "UNet tensors changed by training";

  // `pigment generate -m OUTPUT`: the trained model generates latents nearer to the training image of the prompt.
  const Image red = read_image((fs::path(o.data_dir) / "red.png").string());
  const double before = latent_distance(StableDiffusion::load(golden_sd1()), "a red square", red);
  const double after = latent_distance(StableDiffusion::load(tiny_model(o.output)), "a red square", red);
  std::printf("full: %lld steps in %.1f s; loss first/last 10 steps %.4f / %.4f (%.2fx); latent distance %.4f -> "
              "%.4f\n",
              (long long)s.steps, secs, first, last, first / last, before, after);
  EXPECT_LT(after, 0.5 * before) << "latent distance to the training image: " << before << " base, " << after
                                 << " trained";
}

TEST(FullTraining, SavePrecisionFloat32KeepsTheFrozenComponentsBitExact) {
  ScopedNumThreads one(1);
  TempDir tmp;
  TrainOptions o = full_options(tmp.path, golden_sd1());
  o.max_steps = 2;
  o.save_precision = DType::F32;
  train(o);
  LoadedModel base = load_model(golden_sd1().model, golden_sd1().load);
  LoadedModel trained = load_model(o.output, golden_sd1().load);
  for (const char* c : {"vae", "text_encoder"})
    for (const auto& [k, t] : *base.component(c).tensors)
      ASSERT_TRUE(same_bits(trained.component(c).tensors->at(k), t)) << c << "." << k;
  EXPECT_EQ(trained.component("unet").tensors->at("conv_in.weight").dtype(), DType::F32);
  EXPECT_FALSE(same_bits(trained.component("unet").tensors->at("conv_in.weight"),
                         base.component("unet").tensors->at("conv_in.weight")));
}


// The checkpoint holds the float32 master weights and AdamW's state: a resumed run repeats the losses bit for bit.
TEST(FullTraining, ResumedRunRepeatsTheLossesOfAnUninterruptedOne) {
  ScopedNumThreads one(1);
  TempDir a, b;
  TrainOptions whole = full_options(a.path, golden_sd1());
  whole.max_steps = 6;
  train(whole);
  TrainOptions part = full_options(b.path, golden_sd1());
  part.max_steps = 3;
  train(part);
  part.max_steps = 6;
  part.resume = true;
  train(part);
  const auto l1 = step_and_loss(fs::path(whole.output + ".run") / "log.csv");
  const auto l2 = step_and_loss(fs::path(part.output + ".run") / "log.csv");
  ASSERT_EQ(l1.size(), 6u);
  EXPECT_EQ(l1, l2);
}

// Killed while writing its output, after the final checkpoint: --resume writes the output from that checkpoint, the
// same bytes (here with --use-ema, whose average the output holds), and trains no step; with the output there, a
// resume at the last step is still an error.
TEST(FullTraining, ResumeWritesAnOutputLostAfterTheFinalCheckpoint) {
  ScopedNumThreads one(1);
  TempDir a;
  TrainOptions o = full_options(a.path, golden_sd1());
  o.max_steps = 3;
  o.use_ema = true;
  o.ema_decay = 0.9;
  o.save_precision = DType::BF16;
  train(o);
  auto bytes = [](const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  const std::string written = bytes(o.output);
  const auto log = step_and_loss(fs::path(o.output + ".run") / "log.csv");
  ASSERT_FALSE(written.empty());
  fs::remove(o.output);
  o.resume = true;
  TrainSummary s = train(o);
  EXPECT_EQ(s.steps, 0);
  EXPECT_EQ(s.output, o.output);
  EXPECT_TRUE(bytes(o.output) == written) << "the output written on resume differs";
  EXPECT_EQ(step_and_loss(fs::path(o.output + ".run") / "log.csv"), log);
  EXPECT_THROW(train(o), Error);
}

// Training from scratch: a random checkpoint as `pigment init` writes one (random_init, the tiny SD1 architecture),
// fully trained; the loss falls and the result loads.
TEST(FullTraining, TrainsFromARandomInitCheckpoint) {
  ScopedNumThreads one(1);
  TempDir tmp;
  LoadedModel arch = load_model(golden_sd1().model, golden_sd1().load);
  InitOptions io;
  io.dtype = DType::F16;
  io.seed = 3;
  const std::string init = (tmp.path / "init.safetensors").string();
  write_random_tensors(init,
                       {unet_layout(arch.component("unet").config), vae_layout(arch.component("vae").config),
                        openai_clip_layout(arch.component("text_encoder").config, file_prefix::kSd1Clip)},
                       io, false, modelspec_metadata(Family::SD1, "epsilon", "tiny random init"));
  TrainOptions o = full_options(tmp.path, tiny_model(init));
  o.max_steps = 60;
  o.min_snr_gamma = 5;
  std::vector<float> losses;
  train(o, [&](const StepReport& r) { losses.push_back(r.loss); });
  ASSERT_EQ(losses.size(), 60u);
  for (float l : losses) ASSERT_TRUE(std::isfinite(l));
  const double first = mean_of(losses, 0, 10), last = mean_of(losses, 50, 60);
  std::printf("from random init: loss first/last 10 steps %.4f / %.4f (%.2fx)\n", first, last, first / last);
  EXPECT_LT(last, 0.5 * first);
  StableDiffusion sd = StableDiffusion::load(tiny_model(o.output));
  GenerateRequest r;
  r.prompt = "a red square";
  r.width = r.height = 64;
  r.steps = 4;
  r.seed = 1;
  const Tensor latents = sd.generate(r).latents;
  for (float v : latents.to_vector()) ASSERT_TRUE(std::isfinite(v));
}

// --train-text-encoder: the text encoder's weights train with the UNet's, through the recorded text forward, and the
// saved checkpoint holds the trained encoder (its VAE stays the base's).
TEST(FullTraining, TrainTextEncoderChangesTheEncoderInTheCheckpoint) {
  ScopedNumThreads one(1);
  TempDir tmp;
  TrainOptions o = full_options(tmp.path, golden_sd1());
  o.max_steps = 3;
  o.train_text_encoder = true;
  o.save_precision = DType::F32;
  std::vector<float> losses;
  train(o, [&](const StepReport& r) { losses.push_back(r.loss); });
  ASSERT_EQ(losses.size(), 3u);
  LoadedModel base = load_model(golden_sd1().model, golden_sd1().load);
  LoadedModel trained = load_model(o.output, golden_sd1().load);
  for (const auto& [k, t] : *base.component("vae").tensors)
    ASSERT_TRUE(same_bits(trained.component("vae").tensors->at(k), t)) << "vae." << k;
  int changed = 0;
  for (const auto& [k, t] : *base.component("text_encoder").tensors)
    changed += !same_bits(trained.component("text_encoder").tensors->at(k), t.to(DType::F32));
  // Every weight but the embeddings of tokens no caption uses, and the position embeddings past the captions.
  EXPECT_GT(changed, int(base.component("text_encoder").tensors->size()) * 3 / 4) << "text encoder tensors changed";
}

// SD2: the OpenCLIP text tower (a tiny single file as `pigment init` writes one: the tower has one layer more than the
// loader keeps) trains with --train-text-encoder; the result is written back in the OpenCLIP layout (q/k/v re-fused
// into in_proj), the unused last layer carried over unchanged, and it loads and conditions differently.
TEST(FullTraining, Sd2TrainTextEncoderWritesTheOpenClipTower) {
  ScopedNumThreads one(1);
  TempDir tmp;
  const nlohmann::json clip = {{"architectures", {"CLIPTextModel"}}, {"hidden_size", 32}, {"intermediate_size", 37},
                               {"num_hidden_layers", 3}, {"num_attention_heads", 4}, {"hidden_act", "gelu"},
                               {"vocab_size", 49408}, {"max_position_embeddings", 77}};
  PipelineOptions po = golden_sd1();
  po.load.config_paths = {{"unet", (golden_models() / "unet_sd2").string()},
                          {"vae", (golden_models() / "vae").string()}};
  const LoadedModel unet_only = load_model((golden_models() / "unet_sd2").string());
  const LoadedModel vae_only = load_model((golden_models() / "vae").string());
  InitOptions io;
  io.dtype = DType::F32;
  io.seed = 9;
  po.model = (tmp.path / "sd2.safetensors").string();
  write_random_tensors(po.model,
                       {unet_layout(unet_only.component("unet").config), vae_layout(vae_only.component("vae").config),
                        open_clip_layout(clip, file_prefix::kSd2OpenClip)},
                       io, false, modelspec_metadata(Family::SD2, "epsilon", "tiny sd2"));
  TrainOptions o = full_options(tmp.path, po);
  o.max_steps = 3;
  o.train_text_encoder = true;
  o.save_precision = DType::F32;
  train(o);

  const LoadedModel base = load_model(po.model, po.load);
  PipelineOptions tuned_po = po;
  tuned_po.model = o.output;
  const LoadedModel trained = load_model(o.output, po.load);
  ASSERT_EQ(trained.family(), Family::SD2);
  int changed = 0;
  for (const auto& [k, t] : *base.component("text_encoder").tensors)
    changed += !same_bits(trained.component("text_encoder").tensors->at(k), t.to(DType::F32));
  EXPECT_GT(changed, int(base.component("text_encoder").tensors->size()) * 3 / 4) << "text encoder tensors changed";
  const Checkpoint a = load_checkpoint(po.model), b = load_checkpoint(o.output);
  const std::string tower = std::string(file_prefix::kSd2OpenClip) + "transformer.resblocks.";
  EXPECT_FALSE(same_bits(a.tensors.at(tower + "0.attn.in_proj_weight"), b.tensors.at(tower + "0.attn.in_proj_weight")));
  EXPECT_TRUE(same_bits(a.tensors.at(tower + "2.attn.in_proj_weight"), b.tensors.at(tower + "2.attn.in_proj_weight")))
      << "the layer diffusers drops is carried over";
  GenerateRequest r;
  r.a1111_syntax = false;
  const Tensor c0 = StableDiffusion::load(po).encode_prompt("a red square", r).context;
  const Tensor c1 = StableDiffusion::load(tuned_po).encode_prompt("a red square", r).context;
  EXPECT_GT(ops::mse(c0, c1), 0.0);
}

// --method vae: the autoencoder alone trains on the images (L1 + KL); the loss falls, the saved checkpoint's VAE
// reconstructs the training images better than the base's, and its scaling factor is 1 / std of its latents.
TEST(VaeTraining, ReconstructionImprovesAndTheScalingFactorIsSet) {
  ScopedNumThreads one(1);
  TempDir tmp;
  TrainOptions o = full_options(tmp.path, golden_sd1());
  o.method = "vae";
  o.max_steps = 60;
  o.learning_rate = 2e-3;
  o.save_precision = DType::F32;
  std::vector<float> losses;
  train(o, [&](const StepReport& r) { losses.push_back(r.loss); });
  ASSERT_EQ(losses.size(), 60u);
  const double first = mean_of(losses, 0, 5), last = mean_of(losses, 55, 60);
  std::printf("vae: loss first/last 5 steps %.4f / %.4f (%.2fx)\n", first, last, first / last);
  EXPECT_LT(last, 0.5 * first);

  LoadedModel base = load_model(golden_sd1().model, golden_sd1().load);
  LoadedModel trained = load_model(o.output, golden_sd1().load);
  for (const auto& [k, t] : *base.component("unet").tensors)
    ASSERT_TRUE(same_bits(trained.component("unet").tensors->at(k), t)) << "unet." << k;
  auto recon_error = [&](const LoadedModel& m) {
    Vae vae = Vae::load(m.component("vae").model_config(), m.component("vae").weights());
    const Tensor x = image_to_tensor(read_image((fs::path(o.data_dir) / "red.png").string()));
    return double(ops::l1(vae.decode(vae.encode(x).mean()), x));
  };
  const double before = recon_error(base), after = recon_error(trained);
  std::printf("vae: L1 reconstruction of a training image %.4f -> %.4f\n", before, after);
  EXPECT_LT(after, 0.5 * before);
  // (written as the VAE's config in the metadata: a single file has no other place for it; this test's own config
  // override would win over it when loading, so read the metadata)
  const auto vae_config =
      nlohmann::json::parse(load_checkpoint(o.output).metadata.at(std::string(kMetaConfigPrefix) + "vae"));
  const double sf = vae_config.at("scaling_factor").get<double>();
  std::printf("vae: scaling factor %.4f\n", sf);
  EXPECT_TRUE(std::isfinite(sf) && sf > 0);
  EXPECT_NE(sf, base.component("vae").config.value("scaling_factor", 0.18215));
}

}  // namespace
}  // namespace pigment::training
