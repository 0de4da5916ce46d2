// Helpers for the training tests (test-only): the tiny golden SD1 model, a two-image data set of coloured shapes, a
// temporary folder, log.csv's losses, and how near a generation comes to a training image.
#pragma once
#include <stdlib.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "io/image.h"
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

}  // namespace pigment::training::testing
