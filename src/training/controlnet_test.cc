// --method controlnet on the tiny golden SD1 model: the ControlNet made from the UNet as diffusers' from_unet makes
// it (untrained, it changes nothing), control maps from the conditioning folder, and a run whose loss falls 5x and
// whose result, loaded back through pigment's loaders in both layouts, moves the output toward the training images.
// The edges of the output are measured against the control map (and printed), but not yet asserted to follow it
// better than the untrained ControlNet's: in a run of CI size they do not (docs/status.md).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/threading.h"
#include "imaging/control_preprocess.h"
#include "io/image.h"
#include "models/controlnet_loader.h"
#include "ops/ops.h"
#include "pipelines/stable_diffusion.h"
#include "training/dataset.h"
#include "training/method.h"
#include "training/trainer.h"
#include "training/training_test_util.h"

namespace pigment::training {
namespace {

namespace fs = std::filesystem;
using namespace testing;

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

// A dark shape on white, 64x64: 0 a square on the left, 1 a circle on the right, 2 a wide bar at the bottom,
// 3 a tall bar at the top right.
Image shape(int kind) {
  Image img{64, 64, 3, std::vector<uint8_t>(64 * 64 * 3, 255)};
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x) {
      bool in = false;
      switch (kind) {
        case 0: in = x >= 6 && x < 30 && y >= 14 && y < 38; break;
        case 1: in = (x - 44) * (x - 44) + (y - 32) * (y - 32) < 15 * 15; break;
        case 2: in = x >= 8 && x < 56 && y >= 44 && y < 58; break;
        default: in = x >= 40 && x < 54 && y >= 4 && y < 40; break;
      }
      if (!in) continue;
      uint8_t* p = &img.pixels[size_t(y * 64 + x) * 3];
      p[0] = 40, p[1] = 30, p[2] = 120;
    }
  return img;
}

// Four shapes, all captioned "a shape": only the control map (the shape's outline, in data/conditioning) tells them
// apart.
fs::path make_shapes(const fs::path& root) {
  const fs::path d = root / "data";
  fs::create_directories(d / "conditioning");
  for (int k = 0; k < 4; ++k) {
    const std::string name = "shape" + std::to_string(k);
    const Image img = shape(k);
    write_png((d / (name + ".png")).string(), img);
    std::ofstream(d / (name + ".txt")) << "a shape";
    write_png((d / "conditioning" / (name + ".png")).string(), canny_edges(img));
  }
  return d;
}

TrainOptions options(const fs::path& root) {
  TrainOptions o;
  o.method = "controlnet";
  o.model = tiny_model();
  o.data_dir = make_shapes(root).string();
  o.data.resolution = 64;
  o.data.buckets = false;
  o.output = (root / "out" / "cn.safetensors").string();
  o.max_steps = 4;
  o.learning_rate = 1e-4;
  o.seed = 11;
  return o;
}

// Symmetric mean distance (pixels) between the "on" pixels of two edge maps: each edge pixel of one to the nearest
// of the other, averaged both ways. An empty map counts as 64 pixels away.
double chamfer(const Image& a, const Image& b) {
  auto points = [](const Image& m) {
    std::vector<std::pair<int, int>> p;
    for (int y = 0; y < m.height; ++y)
      for (int x = 0; x < m.width; ++x)
        if (m.at(x, y, 0) > 127) p.emplace_back(x, y);
    return p;
  };
  const auto pa = points(a), pb = points(b);
  auto one_way = [](const std::vector<std::pair<int, int>>& from, const std::vector<std::pair<int, int>>& to) {
    if (from.empty() || to.empty()) return 64.0;
    double sum = 0;
    for (auto [x, y] : from) {
      double best = 1e9;
      for (auto [u, v] : to) best = std::min(best, double((x - u) * (x - u) + (y - v) * (y - v)));
      sum += std::sqrt(best);
    }
    return sum / double(from.size());
  };
  return 0.5 * (one_way(pa, pb) + one_way(pb, pa));
}

// "a shape" at 64x64 with the ControlNet and control map: 12 steps Euler, CFG 1 (the conditional prediction alone).
GenerateResult generate(const StableDiffusion& sd, std::shared_ptr<const ControlNet> net, const Image& map) {
  GenerateRequest r;
  r.prompt = "a shape";
  r.width = r.height = 64;
  r.steps = 12;
  r.cfg_scale = 1;
  r.sampler = "Euler";
  r.seed = 123;
  ControlUnit u;
  u.net = std::move(net);
  u.image = map;
  r.control.push_back(u);
  return sd.generate(r);
}

TEST(ControlNetTraining, MadeFromTheUNetAsFromUnetAndChangesNothingUntrained) {
  ScopedNumThreads one(1);
  TempDir tmp;
  TrainOptions o = options(tmp.path);
  StableDiffusion sd = StableDiffusion::load(o.model);
  std::unique_ptr<Method> m = make_method("controlnet", sd, o);
  const TensorMap& unet = *sd.base_component("unet").tensors;
  int copied = 0, zero = 0, random = 0;
  for (const Param& p : m->params()) {
    ASSERT_TRUE(starts_with(p.name, "controlnet.")) << p.name;
    const std::string name = p.name.substr(11);
    ASSERT_EQ(p.value.dtype(), DType::F32) << name;
    const std::vector<float> v = p.value.to_vector();
    double max_abs = 0;
    for (float x : v) max_abs = std::max(max_abs, double(std::fabs(x)));
    if (starts_with(name, "controlnet_down_blocks.") || starts_with(name, "controlnet_mid_block.") ||
        starts_with(name, "controlnet_cond_embedding.conv_out.")) {
      EXPECT_EQ(max_abs, 0.0) << name << " is a zero convolution";
      ++zero;
    } else if (starts_with(name, "controlnet_cond_embedding.")) {
      EXPECT_GT(max_abs, 0.0) << name;
      ++random;
    } else {
      auto it = unet.find(name);
      ASSERT_NE(it, unet.end()) << name << " is not a UNet tensor";
      EXPECT_EQ(it->second.to_vector(), v) << name << " is not the UNet's";
      ++copied;
    }
  }
  // Tiny SD1: 4 levels of 2 resnets (+3 downsamplers) + conv_in = 12 zero convs and the mid one; conv_out of the
  // embedding (2 tensors each); 7 random embedding convolutions.
  EXPECT_EQ(zero, 2 * 13 + 2);
  EXPECT_EQ(random, 2 * 7);
  EXPECT_GT(copied, 100);

  // Untrained, the ControlNet adds nothing: saved, loaded through pigment's loader and generating, the pixels are
  // those of the base model, for any control map.
  const fs::path file = tmp.path / "untrained.safetensors";
  m->save(file.string(), {});
  auto net = std::make_shared<const ControlNet>(load_controlnet(file.string(), sd.base_component("unet").config));
  GenerateRequest plain;
  plain.prompt = "a shape";
  plain.width = plain.height = 64;
  plain.steps = 4;
  plain.sampler = "Euler";
  plain.seed = 5;
  GenerateRequest with = plain;
  with.control.push_back({net, canny_edges(shape(1))});
  EXPECT_EQ(sd.generate(plain).image.pixels, sd.generate(with).image.pixels);
}

TEST(ControlNetTraining, MissingControlMapIsAnErrorNamingTheImage) {
  TempDir tmp;
  TrainOptions o = options(tmp.path);
  fs::remove(fs::path(o.data_dir) / "conditioning" / "shape2.png");
  try {
    train(o);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("no control map for"), std::string::npos) << msg;
    EXPECT_NE(msg.find("shape2.png"), std::string::npos) << msg;
  }
  // The maps are not training images themselves, and each batch carries its image's map.
  DatasetOptions d = o.data;
  d.conditioning_dir = (fs::path(o.data_dir) / "conditioning").string();
  write_png((fs::path(o.data_dir) / "conditioning" / "shape2.png").string(), canny_edges(shape(2)));
  Dataset data = Dataset::scan(o.data_dir, d);
  ASSERT_EQ(data.items().size(), 4u);
  DataLoader loader(data, {});
  Batch b = loader.next();
  ASSERT_TRUE(b.conditioning.defined());
  const int k = b.paths[0][b.paths[0].size() - 5] - '0';
  const Image expect = canny_edges(shape(k));
  for (int i = 0; i < 64 * 64; ++i)
    ASSERT_EQ(b.conditioning.f32()[i], float(expect.pixels[size_t(i) * 3]) / 255.f) << "pixel " << i;
}

TEST(ControlNetTraining, LossFallsAndTheOutputMovesTowardTheData) {
  ScopedNumThreads one(1);
  TempDir tmp;
  TrainOptions o = options(tmp.path);
  // min-SNR-5 weighting (the high-noise steps, where only the control map can tell the shape, count fully).
  o.max_steps = 400;
  o.learning_rate = 1e-3;
  o.min_snr_gamma = 5;
  o.batch_size = 2;
  std::vector<float> losses;
  TrainSummary s = train(o, [&](const StepReport& r) { losses.push_back(r.loss); });
  ASSERT_EQ(s.steps, o.max_steps);
  double first = 0, last = 0;
  for (int i = 0; i < 10; ++i) first += losses[size_t(i)], last += losses[losses.size() - 1 - size_t(i)];

  StableDiffusion sd = StableDiffusion::load(tiny_model());
  const nlohmann::json& base = sd.base_component("unet").config;
  auto trained = std::make_shared<const ControlNet>(load_controlnet(o.output, base));
  // The diffusers layout of the same tensors loads too and gives the same pixels.
  const fs::path folder = tmp.path / "diffusers";
  ControlNetFile f = read_controlnet(o.output, base);
  write_controlnet(folder.string(), ControlNetFormat::Diffusers, base, *f.tensors, DType::F32);
  auto trained_d = std::make_shared<const ControlNet>(load_controlnet(folder.string(), base));

  TrainOptions u = o;
  u.output = (tmp.path / "untrained.safetensors").string();
  make_method("controlnet", sd, u)->save(u.output, {});
  auto untrained = std::make_shared<const ControlNet>(load_controlnet(u.output, base));

  double d_trained = 0, d_untrained = 0, l_trained = 0, l_untrained = 0;
  for (int k = 0; k < 4; ++k) {
    const Image img = shape(k), map = canny_edges(img);
    const GenerateResult a = generate(sd, trained, map), b = generate(sd, untrained, map);
    if (k == 0) EXPECT_EQ(a.image.pixels, generate(sd, trained_d, map).image.pixels) << "diffusers layout";
    const double dt = chamfer(canny_edges(a.image), map), du = chamfer(canny_edges(b.image), map);
    Tensor pixels = Tensor::empty({1, 3, 64, 64});
    for (int c = 0; c < 3; ++c)
      for (int i = 0; i < 64 * 64; ++i) pixels.f32()[c * 64 * 64 + i] = img.pixels[size_t(i) * 3 + c] / 127.5f - 1.f;
    const Tensor target = ops::scale(sd.vae().encode(pixels).mean(), sd.vae().scaling_factor());
    const double lt = ops::mse(a.latents, target), lu = ops::mse(b.latents, target);
    std::printf("shape %d: edge distance to the control map %.2f (untrained %.2f) px; latent distance %.3f (%.3f)\n",
                k, dt, du, lt, lu);
    d_trained += dt / 4, d_untrained += du / 4, l_trained += lt / 4, l_untrained += lu / 4;
  }
  std::printf("loss first/last 10 steps %.4f / %.4f (%.2fx); edge distance %.2f -> %.2f px; latent %.3f -> %.3f\n",
              first / 10, last / 10, first / last, d_untrained, d_trained, l_untrained, l_trained);
  EXPECT_GT(first / last, 5.0) << "mean loss of the first 10 steps " << first / 10 << ", of the last 10 " << last / 10;
  // The generated latents move toward the training images...
  EXPECT_LT(l_trained, 0.5 * l_untrained);
  // ... but in a run of this size the ControlNet has learnt mostly what the four images share (the output hardly
  // depends on the map yet), so the edges of its pictures do not follow the control map better than the untrained
  // ControlNet's: measured and printed above, not asserted (docs/status.md).
  RecordProperty("edge_distance_trained", std::to_string(d_trained));
  RecordProperty("edge_distance_untrained", std::to_string(d_untrained));
}

}  // namespace
}  // namespace pigment::training
