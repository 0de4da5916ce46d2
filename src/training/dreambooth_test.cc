// --method dreambooth: full fine-tuning on one subject with an instance prompt, prior preservation with class images
// the base model draws once, and the difference saved as a LoRA.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <cstring>
#include <map>

#include "core/threading.h"
#include "io/checkpoint.h"
#include "io/image.h"
#include "models/lora.h"
#include "models/unet.h"
#include "sampling/rng.h"
#include "ops/ops.h"
#include "training/trainer.h"
#include "training/training_test_util.h"

namespace pigment::training {
namespace {

namespace fs = std::filesystem;
using namespace testing;

// One subject: a red square (two copies, as a few photos of one thing), captions that DreamBooth ignores.
fs::path make_instance_data(const fs::path& root) {
  const fs::path d = root / "instance";
  fs::create_directories(d);
  write_png((d / "a.png").string(), shape_image(0, 220, 30, 30));
  write_png((d / "b.png").string(), shape_image(0, 220, 30, 30));
  std::ofstream(d / "a.txt") << "an unrelated caption";
  return d;
}

TrainOptions dreambooth_options(const fs::path& root) {
  TrainOptions o;
  o.method = "dreambooth";
  o.model = tiny_model();
  o.data_dir = make_instance_data(root).string();
  o.data.resolution = 64;
  o.output = (root / "out" / "sks.safetensors").string();
  o.max_steps = 6;
  o.learning_rate = 1e-3;
  o.seed = 5;
  o.dreambooth.instance_prompt = "a photo of sks square";
  o.dreambooth.class_prompt = "a photo of a square";
  o.dreambooth.num_class_images = 3;
  o.dreambooth.class_image_steps = 4;
  return o;
}

std::map<std::string, fs::file_time_type> class_files(const fs::path& dir) {
  std::map<std::string, fs::file_time_type> out;
  for (const auto& e : fs::directory_iterator(dir)) out[e.path().filename().string()] = e.last_write_time();
  return out;
}

TEST(DreamBooth, LossFallsAndTheCheckpointDrawsTheSubject) {
  ScopedNumThreads one(1);
  TempDir tmp;
  TrainOptions o = dreambooth_options(tmp.path);
  o.max_steps = 200;
  o.min_snr_gamma = 5;
  std::vector<float> losses;
  TrainSummary s = train(o, [&](const StepReport& r) { losses.push_back(r.loss); });
  ASSERT_EQ(s.steps, o.max_steps);
  const auto [first, last] = first_and_last_mean(losses);
  EXPECT_GT(first / last, 5.0) << "mean loss of the first 10 steps " << first << ", of the last 10 " << last;
  // The class images were drawn into RUN_DIR/class_images, with their recipe.
  const fs::path class_dir = fs::path(run_dir_of(o)) / "class_images";
  ASSERT_EQ(class_files(class_dir).size(), 3u);
  EXPECT_NE(read_png_text((class_dir / "class-000000.png").string()).at("parameters").find("a photo of a square"),
            std::string::npos);
  // The checkpoint loads as a model (pigment generate -m) and draws the subject for the instance prompt.
  Checkpoint file = load_checkpoint(o.output);
  EXPECT_EQ(file.metadata.at("ss_instance_prompt"), "a photo of sks square");
  EXPECT_EQ(file.metadata.at("ss_num_reg_images"), "3");
  const Image red = shape_image(0, 220, 30, 30);
  const double before = latent_distance(StableDiffusion::load(tiny_model()), "a photo of sks square", red);
  const double after = latent_distance(StableDiffusion::load(tiny_model(o.output)), "a photo of sks square", red);
  std::printf("dreambooth: loss first/last 10 steps %.4f / %.4f (%.2fx); latent distance %.4f -> %.4f\n", first,
              last, first / last, before, after);
  EXPECT_LT(after, 0.5 * before);
}

// The class images are drawn once: a resumed run (and any later run with the folder) reuses them, and the resumed
// run repeats the losses of an uninterrupted one (the class images' loader position is in the checkpoint).
TEST(DreamBooth, ClassImagesAreDrawnOnceAndReusedOnResume) {
  ScopedNumThreads one(1);
  TempDir a, b;
  TrainOptions whole = dreambooth_options(a.path);
  train(whole);
  TrainOptions part = dreambooth_options(b.path);
  part.max_steps = 3;
  train(part);
  const fs::path class_dir = fs::path(run_dir_of(part)) / "class_images";
  const auto made = class_files(class_dir);
  ASSERT_EQ(made.size(), 3u);
  part.max_steps = 6;
  part.resume = true;
  train(part);
  EXPECT_EQ(class_files(class_dir), made) << "the class images were not drawn again";
  const auto l1 = step_and_loss(fs::path(run_dir_of(whole)) / "log.csv");
  const auto l2 = step_and_loss(fs::path(run_dir_of(part)) / "log.csv");
  ASSERT_EQ(l1.size(), 6u);
  EXPECT_EQ(l1, l2);
  // A folder with more images than asked is used as it is; a shared --class-data-dir is filled once.
  TempDir c;
  TrainOptions shared = dreambooth_options(c.path);
  shared.max_steps = 1;
  shared.dreambooth.class_data_dir = class_dir.string();
  shared.dreambooth.num_class_images = 2;
  train(shared);
  EXPECT_EQ(class_files(class_dir), made);
}

// The class term is present and weighted: the first step's loss (same weights, data and noise in every run) grows
// linearly with --prior-loss-weight, and weight 0 trains to other weights than weight 1.
TEST(DreamBooth, PriorLossWeightScalesTheClassTerm) {
  ScopedNumThreads one(1);
  TempDir tmp;
  std::map<float, std::vector<float>> losses;
  std::map<float, std::string> outputs;
  for (float w : {0.f, 1.f, 2.f}) {
    TrainOptions o = dreambooth_options(tmp.path);
    o.max_steps = 2;
    o.dreambooth.prior_loss_weight = w;
    o.dreambooth.class_data_dir = (tmp.path / "class").string();
    o.output = (tmp.path / ("w" + std::to_string(int(w)) + ".safetensors")).string();
    o.save_precision = DType::F32;
    train(o, [&](const StepReport& r) { losses[w].push_back(r.loss); });
    outputs[w] = o.output;
  }
  const double prior = losses[1.f][0] - losses[0.f][0];
  EXPECT_GT(prior, 1e-3) << "the class images' loss";
  EXPECT_NEAR(losses[2.f][0] - losses[0.f][0], 2 * prior, 1e-4 * std::max(1.0, double(losses[2.f][0])));
  EXPECT_NE(losses[1.f][1], losses[0.f][1]);
  const LoadedModel m0 = load_model(outputs[0.f], tiny_model().load), m1 = load_model(outputs[1.f], tiny_model().load);
  const Tensor w0 = m0.component("unet").tensors->at("conv_in.weight"), w1 = m1.component("unet").tensors->at("conv_in.weight");
  EXPECT_NE(std::memcmp(w0.raw(), w1.raw(), w0.nbytes()), 0);
}

// --save-as-lora: the difference to the base as a kohya LoRA beside the checkpoint, which pigment's loader binds to
// the base model and which moves the base's prediction toward the tuned model's.
TEST(DreamBooth, SaveAsLoraWritesTheDifferenceAsALora) {
  ScopedNumThreads one(1);
  TempDir tmp;
  TrainOptions o = dreambooth_options(tmp.path);
  o.max_steps = 4;
  o.dreambooth.class_prompt.clear();  // no prior preservation: a plain DreamBooth run
  o.dreambooth.save_as_lora = true;
  o.lora.rank = 8;
  o.save_precision = DType::F32;
  train(o);
  const fs::path lora_path = tmp.path / "out" / "sks-lora.safetensors";
  ASSERT_TRUE(fs::exists(lora_path));
  const LoadedModel base = load_model(tiny_model().model, tiny_model().load);
  const LoadedModel tuned = load_model(o.output, tiny_model().load);
  LoraFile file = LoraFile::load(lora_path.string());
  auto resolved = std::make_shared<ResolvedLora>(resolve_lora(
      file, {{"unet", base.component("unet").tensors.get()}, {"text_encoder", base.component("text_encoder").tensors.get()}}));
  EXPECT_TRUE(resolved->unmatched.empty());
  EXPECT_GT(resolved->modules.size(), 10u);
  const auto merged = merge_loras(*base.component("unet").tensors, "unet", {{resolved, 1.f}});
  const ModelComponent& uc = base.component("unet");
  const UNetConfig cfg = UNetConfig::from_json(uc.config.dump(), uc.source);
  const UNet b(cfg, uc.weights()), t(cfg, tuned.component("unet").weights()), l(cfg, Weights(merged, "base+lora"));
  auto gen = make_generator("cpu", 1);
  const Tensor x = gen->randn({1, 4, 8, 8}), c = gen->randn({1, 77, uc.config.value("cross_attention_dim", 32)});
  const Tensor yb = b.forward(x, {300.f}, c), yt = t.forward(x, {300.f}, c), yl = l.forward(x, {300.f}, c);
  const double base_gap = ops::mse(yb, yt), lora_gap = ops::mse(yl, yt);
  std::printf("dreambooth --save-as-lora: prediction gap to the tuned UNet %.3g (base) -> %.3g (base + LoRA)\n",
              base_gap, lora_gap);
  EXPECT_LT(lora_gap, 0.5 * base_gap);
}

TEST(DreamBooth, BadOptionsAreErrorsBeforeTraining) {
  TempDir tmp;
  TrainOptions o = dreambooth_options(tmp.path);
  o.dreambooth.num_class_images = 0;
  EXPECT_THROW(train(o), Error);
  o = dreambooth_options(tmp.path);
  o.dreambooth.prior_loss_weight = -1;
  EXPECT_THROW(train(o), Error);
  o = dreambooth_options(tmp.path);
  o.method = "lora";
  EXPECT_THROW(train(o), Error);  // --instance-prompt belongs to dreambooth
}

}  // namespace
}  // namespace pigment::training
