// Helpers for the training tests (test-only): the tiny golden SD1 model, a two-image data set of coloured shapes, a
// temporary folder, log.csv's losses, and how near a generation comes to a training image.
#pragma once
#include <stdlib.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "io/image.h"
#include "io/safetensors.h"
#include "ops/ops.h"
#include "pipelines/stable_diffusion.h"
#include "training/trainer.h"

namespace pigment::training::testing {

namespace fs = std::filesystem;

inline fs::path shared_dir() {
  const char* env = std::getenv("PIGMENT_SHARED_DIR");
  return env ? env : "../shared";
}
inline fs::path golden_models() { return shared_dir() / "golden" / "models"; }

// A single file of the tiny golden SD1 architecture, as `pigment train -m` would load it (a single file records no
// head counts or norm groups: the golden configs give them). Default: the golden single file itself.
inline PipelineOptions tiny_model(const std::string& file = "") {
  const fs::path m = golden_models();
  PipelineOptions po;
  po.model = file.empty() ? (m / "sd1_single_file.safetensors").string() : file;
  po.tokenizer = (shared_dir() / "clip-tokenizer").string();
  po.load.config_paths = {{"unet", (m / "unet_sd1").string()},
                          {"vae", (m / "vae").string()},
                          {"text_encoder", (m / "clip_sd1").string()}};
  return po;
}

// The tiny golden SDXL as a single file (f16), with the golden configs.
inline PipelineOptions tiny_sdxl_model(const std::string& file = "") {
  const fs::path m = golden_models();
  PipelineOptions po;
  po.model = file.empty() ? (m / "sdxl_single_file_fp16.safetensors").string() : file;
  po.tokenizer = (shared_dir() / "clip-tokenizer").string();
  po.load.config_paths = {{"unet", (m / "unet_sdxl").string()},
                          {"vae", (m / "vae").string()},
                          {"text_encoder", (m / "clip_sd1").string()},
                          {"text_encoder_2", (m / "clip_proj").string()}};
  return po;
}

// A shape of one colour on white, 64x64: kind 0 a square, 1 a circle.
inline Image shape_image(int kind, uint8_t r, uint8_t g, uint8_t b) {
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

// Two captioned images in root/data: "a red square" and "a blue circle".
inline fs::path make_dataset(const fs::path& root) {
  const fs::path d = root / "data";
  fs::create_directories(d);
  write_png((d / "red.png").string(), shape_image(0, 220, 30, 30));
  std::ofstream(d / "red.txt") << "a red square";
  write_png((d / "blue.png").string(), shape_image(1, 30, 40, 220));
  std::ofstream(d / "blue.txt") << "a blue circle";
  return d;
}

// The options the method tests start from: METHOD on the tiny golden SD1 model over make_dataset(root) at 64×64
// without buckets, the result in ROOT/out/OUTPUT_NAME; each test sets its steps, learning rate and seed.
inline TrainOptions tiny_run_options(const fs::path& root, const std::string& method, const std::string& output_name) {
  TrainOptions o;
  o.method = method;
  o.model = tiny_model();
  o.data_dir = make_dataset(root).string();
  o.data.resolution = 64;
  o.data.buckets = false;
  o.output = (root / "out" / output_name).string();
  return o;
}

inline std::vector<std::string> read_lines(const fs::path& p) {
  std::ifstream f(p);
  std::vector<std::string> lines;
  for (std::string l; std::getline(f, l);) lines.push_back(l);
  return lines;
}

// The step and loss columns of log.csv rows (what a resumed run must reproduce bit for bit).
inline std::vector<std::string> step_and_loss(const fs::path& log) {
  std::vector<std::string> out;
  for (const auto& l : read_lines(log)) {
    if (l.rfind("step,", 0) == 0) continue;
    const auto c1 = l.find(','), c2 = l.find(',', c1 + 1);
    out.push_back(l.substr(0, c2));
  }
  return out;
}

// The scaled latents (posterior mean) of a 64x64 image, as generation's final latents are.
inline Tensor image_latents(const StableDiffusion& sd, const Image& image) {
  Tensor pixels = Tensor::empty({1, 3, 64, 64});
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 64 * 64; ++i) pixels.f32()[c * 64 * 64 + i] = image.pixels[size_t(i) * 3 + c] / 127.5f - 1.f;
  return ops::scale(sd.vae().encode(pixels).mean(), sd.vae().scaling_factor());
}

// Mean squared distance between the final latents of a 64x64 generation of `prompt` (with the hypernetworks, if
// any) and the latents of `image`.
inline double latent_distance(const StableDiffusion& sd, const std::string& prompt, const Image& image,
                              const std::vector<HypernetworkUse>& hypernetworks = {}) {
  GenerateRequest r;
  r.hypernetworks = hypernetworks;
  r.prompt = prompt;
  r.width = r.height = 64;
  r.steps = 12;
  r.cfg_scale = 1;  // the conditional prediction alone
  r.sampler = "Euler";
  r.seed = 123;
  return ops::mse(sd.generate(r).latents, image_latents(sd, image));
}

// The mean of v[begin, end) (losses over a range of steps).
inline double mean_of(const std::vector<float>& v, size_t begin, size_t end) {
  double s = 0;
  for (size_t i = begin; i < end; ++i) s += v.at(i);
  return s / double(end - begin);
}
// The mean loss of the first n and of the last n steps.
inline std::pair<double, double> first_and_last_mean(const std::vector<float>& losses, size_t n = 10) {
  return {mean_of(losses, 0, n), mean_of(losses, losses.size() - n, losses.size())};
}

// A folder ROOT/NAME holding a copy of `image` and, unless caption is empty, its same-named caption file.
inline fs::path one_image_folder(const fs::path& root, const std::string& name, const fs::path& image,
                                 const std::string& caption = "") {
  const fs::path d = root / name;
  fs::create_directories(d);
  fs::copy_file(image, d / image.filename());
  if (!caption.empty()) std::ofstream(fs::path(d / image.filename()).replace_extension(".txt")) << caption;
  return d;
}

// Four shapes, each with its own caption, in root/NAME: the red and green squares, the blue and yellow circles.
inline fs::path make_four_shapes(const fs::path& root, const std::string& name) {
  const fs::path d = root / name;
  fs::create_directories(d);
  const struct {
    const char* stem;
    int kind;
    uint8_t r, g, b;
    const char* caption;
  } shapes[] = {
      {"red", 0, 220, 30, 30, "a red square"},
      {"green", 0, 30, 200, 40, "a green square"},
      {"blue", 1, 30, 40, 220, "a blue circle"},
      {"yellow", 1, 230, 210, 20, "a yellow circle"},
  };
  for (const auto& s : shapes) {
    write_png((d / (std::string(s.stem) + ".png")).string(), shape_image(s.kind, s.r, s.g, s.b));
    std::ofstream(d / (std::string(s.stem) + ".txt")) << s.caption;
  }
  return d;
}

// The tiny golden SD1 with a sharp VAE posterior, as trained VAEs have: the random golden VAE's log-variances are
// near 0, so a sampled latent carries noise of about its own size that no prediction can explain (a loss floor of
// every method on that model). Here quant_conv's log-variance rows give -20 whatever the input.
inline fs::path sharp_posterior_model(const fs::path& root) {
  SafeTensors f = SafeTensors::open(tiny_model().model);
  NamedTensors out;
  for (const auto& e : f.entries()) {
    Tensor t = f.get(e.name).as_f32().clone();
    if (e.name == "first_stage_model.quant_conv.weight")
      std::fill(t.f32() + 4 * 8, t.f32() + 8 * 8, 0.f);  // output rows 4..7: the log-variances
    if (e.name == "first_stage_model.quant_conv.bias") std::fill(t.f32() + 4, t.f32() + 8, -20.f);
    out.emplace_back(e.name, t);
  }
  const fs::path p = root / "sharp.safetensors";
  write_safetensors(p.string(), out, f.metadata());
  return p;
}

// A tiny model whose pictures follow its text: the sharp-posterior tiny SD1, UNet and text encoder trained (full,
// 400 steps of 4) on make_four_shapes at timesteps 900..999 with the clean latent as the target (prediction type
// "sample", kept in the checkpoint). There the noisy latent hardly tells which shape it is, so the model must read
// the caption, and a method that changes how a caption is read (a word, a hypernetwork) can lower the loss to near
// 0. Measured (one thread): loss 0.12 at the start, a plateau near 0.009 (the mean picture) until about step 250,
// then the captions take over.
struct TextReadingModel {
  std::string model;  // the checkpoint (load with tiny_model(model))
  std::string data;   // the four shapes with their captions
};
inline TextReadingModel text_reading_model(const fs::path& root) {
  TrainOptions o;
  o.method = "full";
  o.model = tiny_model(sharp_posterior_model(root).string());
  o.data_dir = make_four_shapes(root, "shapes").string();
  o.data.resolution = 64;
  o.data.buckets = false;
  o.output = (root / "text_reading.safetensors").string();
  o.save_precision = DType::F32;
  o.prediction_type = "sample";
  o.min_timestep = 900;
  o.train_text_encoder = true;
  o.batch_size = 4;
  o.max_steps = 400;
  o.learning_rate = 2e-3;
  o.seed = 5;
  train(o);
  return {o.output, o.data_dir};
}

}  // namespace pigment::training::testing
