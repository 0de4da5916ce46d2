#include "training/trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/threading.h"
#include "io/image.h"
#include "models/lora.h"
#include "ops/ops.h"

namespace pigment::training {
namespace {

namespace fs = std::filesystem;

fs::path shared_dir() {
  const char* env = std::getenv("PIGMENT_SHARED_DIR");
  return env ? env : "../shared";
}

// The tiny golden SD1 model (random weights) as `pigment train -m` would load it.
PipelineOptions tiny_model() {
  const fs::path m = shared_dir() / "golden" / "models";
  PipelineOptions po;
  po.model = (m / "sd1_single_file.safetensors").string();
  po.tokenizer = (shared_dir() / "clip-tokenizer").string();
  po.load.config_paths = {{"unet", (m / "unet_sd1").string()},
                          {"vae", (m / "vae").string()},
                          {"text_encoder", (m / "clip_sd1").string()}};
  return po;
}

// A shape of one colour on white, 64x64.
Image shape_image(int kind, uint8_t r, uint8_t g, uint8_t b) {
  Image img{64, 64, 3, std::vector<uint8_t>(64 * 64 * 3, 255)};
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x) {
      const int dx = x - 32, dy = y - 32;
      const bool in = kind == 0 ? (std::abs(dx) < 18 && std::abs(dy) < 18) : (dx * dx + dy * dy < 20 * 20);
      if (!in) continue;
      uint8_t* p = &img.pixels[size_t(y * 64 + x) * 3];
      p[0] = r, p[1] = g, p[2] = b;
    }
  return img;
}

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/pigment-train-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

// Two captioned images.
fs::path make_dataset(const fs::path& root) {
  const fs::path d = root / "data";
  fs::create_directories(d);
  write_png((d / "red.png").string(), shape_image(0, 220, 30, 30));
  std::ofstream(d / "red.txt") << "a red square";
  write_png((d / "blue.png").string(), shape_image(1, 30, 40, 220));
  std::ofstream(d / "blue.txt") << "a blue circle";
  return d;
}

TrainOptions lora_options(const fs::path& root) {
  TrainOptions o;
  o.method = "lora";
  o.model = tiny_model();
  o.data_dir = make_dataset(root).string();
  o.data.resolution = 64;
  o.data.buckets = false;
  o.output = (root / "out" / "tiny_lora.safetensors").string();
  o.max_steps = 8;
  o.learning_rate = 1e-2;
  o.lora.rank = 4;
  o.lora.alpha = 4;
  o.seed = 7;
  return o;
}

std::vector<std::string> read_lines(const fs::path& p) {
  std::ifstream f(p);
  std::vector<std::string> lines;
  for (std::string l; std::getline(f, l);) lines.push_back(l);
  return lines;
}

// The loss column of log.csv rows (step and loss are what a resumed run must reproduce bit for bit).
std::vector<std::string> step_and_loss(const fs::path& log) {
  std::vector<std::string> out;
  for (const auto& l : read_lines(log)) {
    if (l.rfind("step,", 0) == 0) continue;
    const auto c1 = l.find(','), c2 = l.find(',', c1 + 1);
    out.push_back(l.substr(0, c2));
  }
  return out;
}

// Mean squared distance between the final latents of a 64x64 generation of `prompt` and the latents of `image`.
double latent_distance(const StableDiffusion& sd, const std::string& prompt, const Image& image) {
  GenerateRequest r;
  r.prompt = prompt;
  r.width = r.height = 64;
  r.steps = 12;
  r.cfg_scale = 1;  // the conditional prediction alone
  r.sampler = "Euler";
  r.seed = 123;
  const Tensor generated = sd.generate(r).latents;
  Tensor pixels = Tensor::empty({1, 3, 64, 64});
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 64 * 64; ++i) pixels.f32()[c * 64 * 64 + i] = image.pixels[size_t(i) * 3 + c] / 127.5f - 1.f;
  const Tensor target = ops::scale(sd.vae().encode(pixels).mean(), sd.vae().scaling_factor());
  return ops::mse(generated, target);
}

// Tiny models train on one thread: their ops are too small to split, and an idle second thread costs more than it
// gives on a busy machine.
TEST(Trainer, LoraLossFallsAndTheOutputMovesTowardTheData) {
  ScopedNumThreads one(1);
  TempDir tmp;
  TrainOptions o = lora_options(tmp.path);
  // Measured on this model (docs/status.md): LoCon rank 8 on the resnet convolutions as well, min-SNR-5 weighting
  // (the low-noise steps, whose ε no small model can infer, would otherwise dominate the loss), 400 steps.
  o.max_steps = 400;
  o.lora.rank = o.lora.conv_rank = 8;
  o.lora.alpha = o.lora.conv_alpha = 8;
  o.min_snr_gamma = 5;
  std::vector<float> losses;
  TrainSummary s = train(o, [&](const StepReport& r) { losses.push_back(r.loss); });
  ASSERT_EQ(s.steps, 400);
  double first = 0, last = 0;
  for (int i = 0; i < 10; ++i) first += losses[size_t(i)], last += losses[losses.size() - 1 - size_t(i)];
  EXPECT_GT(first / last, 5.0) << "mean loss of the first 10 steps " << first / 10 << ", of the last 10 " << last / 10;

  // The saved file is a kohya LoRA that pigment's loader reads, and with it the model generates latents nearer to
  // the training image of the prompt.
  StableDiffusion sd = StableDiffusion::load(tiny_model());
  const Image red = read_image((fs::path(o.data_dir) / "red.png").string());
  const double before = latent_distance(sd, "a red square", red);
  LoraFile f = LoraFile::load(o.output);
  EXPECT_FALSE(f.entries.empty());
  EXPECT_TRUE(sd.set_loras({LoraChoice(f, 1.f)}).empty()) << "every trained module binds to a layer";
  const double after = latent_distance(sd, "a red square", red);
  std::printf("loss first/last 10 steps %.4f / %.4f (%.2fx); latent distance %.4f -> %.4f\n", first / 10, last / 10,
              first / last, before, after);
  EXPECT_LT(after, 0.5 * before) << "latent distance to the training image: " << before << " without, " << after
                                 << " with the LoRA";
}

TEST(Trainer, ResumedRunRepeatsTheLossesOfAnUninterruptedOne) {
  ScopedNumThreads one(1);
  TempDir a, b;
  TrainOptions whole = lora_options(a.path);
  whole.max_steps = 8;
  train(whole);
  TrainOptions part = lora_options(b.path);
  part.max_steps = 5;  // stops after step 5 (a checkpoint is written at the end)
  train(part);
  part.max_steps = 8;
  part.resume = true;
  train(part);
  const auto l1 = step_and_loss(fs::path(whole.output + ".run") / "log.csv");
  const auto l2 = step_and_loss(fs::path(part.output + ".run") / "log.csv");
  ASSERT_EQ(l1.size(), 8u);
  EXPECT_EQ(l1, l2);
}

TEST(Trainer, BadOptionsFailBeforeTheFirstStep) {
  TempDir tmp;
  TrainOptions o = lora_options(tmp.path);
  o.method = "nonsense";
  EXPECT_THROW(train(o), Error);
  o = lora_options(tmp.path);
  o.data_dir = (tmp.path / "missing").string();
  EXPECT_THROW(train(o), Error);
  o = lora_options(tmp.path);
  o.lr_scheduler = "sideways";
  EXPECT_THROW(train(o), Error);
  o = lora_options(tmp.path);
  o.output = "/proc/pigment-cannot-write-here/x.safetensors";
  EXPECT_THROW(train(o), Error);
}

}  // namespace
}  // namespace pigment::training
