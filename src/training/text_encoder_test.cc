// --method text-encoder: the contrastive objective's gradient, and a run that teaches the text encoder to tell two
// captions apart by their pictures.
#include "training/text_encoder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "core/threading.h"
#include "io/checkpoint.h"
#include "models/clip_text.h"
#include "models/model_loader.h"
#include "pipelines/stable_diffusion.h"
#include "training/trainer.h"
#include "training/training_test_util.h"

namespace pigment::training {
namespace {

using namespace testing;

Tensor pseudo_random(Shape shape, uint64_t seed) {
  Tensor t = Tensor::zeros(shape);
  for (int64_t i = 0; i < t.numel(); ++i) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    t.f32()[i] = float(double((seed >> 11) & 0xFFFFF) / double(0xFFFFF) - 0.5);
  }
  return t;
}

TEST(TextEncoderContrastive, GradientMatchesFiniteDifferences) {
  const int64_t B = 3, T = 2, H = 5;
  Tensor context = pseudo_random({B, T, H}, 1), images = pseudo_random({B, H}, 2);
  const double scale = 4.0, gs = 0.5;
  Tensor dcontext, dimages;
  const double loss = contrastive_loss(context, images, scale, gs, &dcontext, &dimages);
  // Chance: every logit alike gives ln B; these inputs give something near it.
  EXPECT_GT(loss, 0.3);
  EXPECT_LT(loss, 3.0);
  auto check = [&](Tensor& x, const Tensor& grad, const char* what) {
    for (int64_t i = 0; i < x.numel(); ++i) {
      const float keep = x.f32()[i];
      const float h = 1e-2f;
      Tensor d1, d2;
      x.f32()[i] = keep + h;
      const double up = contrastive_loss(context, images, scale, gs, &d1, &d2);
      x.f32()[i] = keep - h;
      const double down = contrastive_loss(context, images, scale, gs, &d1, &d2);
      x.f32()[i] = keep;
      const double numeric = gs * (up - down) / (2.0 * h);
      EXPECT_NEAR(grad.f32()[i], numeric, 2e-3 * std::max(1.0, std::abs(numeric))) << what << " element " << i;
    }
  };
  check(context, dcontext, "context");
  check(images, dimages, "images");
}

TEST(TextEncoderContrastive, MatchingPairsGiveALowerLossThanSwappedOnes) {
  Tensor context = Tensor::from_vector({2, 1, 2}, {1, 0, 0, 1});
  Tensor matched = Tensor::from_vector({2, 2}, {2, 0, 0, 3}), swapped = Tensor::from_vector({2, 2}, {0, 3, 2, 0});
  Tensor d1, d2;
  const double good = contrastive_loss(context, matched, 10, 1, &d1, &d2);
  const double bad = contrastive_loss(context, swapped, 10, 1, &d1, &d2);
  EXPECT_LT(good, 1e-3);
  EXPECT_GT(bad, 9.0);
  EXPECT_THROW(contrastive_loss(context, Tensor::zeros({3, 2}), 10, 1, &d1, &d2), std::exception);
}

// Relative L2 distance between the mean-pooled contexts of two captions.
double context_distance(const std::string& model, const std::string& a, const std::string& b) {
  StableDiffusion sd = StableDiffusion::load(tiny_model(model));
  std::vector<std::vector<int64_t>> ids;
  for (const auto& c : {a, b}) {
    std::vector<int> t = sd.tokenizer().encode_padded(c);
    ids.emplace_back(t.begin(), t.end());
  }
  const ModelComponent& te = sd.base_component("text_encoder");
  ClipTextModel m = ClipTextModel::load(te.model_config(), te.weights());
  Tensor ctx = m.forward(ids, ClipOptions{}).context;
  const int64_t T = ctx.dim(1), H = ctx.dim(2);
  double num = 0, den = 0;
  for (int64_t h = 0; h < H; ++h) {
    double pa = 0, pb = 0;
    for (int64_t p = 0; p < T; ++p) {
      pa += ctx.f32()[p * H + h] / double(T);
      pb += ctx.f32()[(T + p) * H + h] / double(T);
    }
    num += (pa - pb) * (pa - pb);
    den += pa * pa;
  }
  return std::sqrt(num / den);
}

TEST(TextEncoderTraining, LearnsToTellTheCaptionsApartAndSavesAWholeModel) {
  ScopedNumThreads one(1);
  TempDir tmp;
  TrainOptions o;
  o.method = "text-encoder";
  o.model = tiny_model();
  o.data_dir = make_dataset(tmp.path).string();
  o.data.resolution = 64;
  o.data.buckets = false;
  o.output = (tmp.path / "te.safetensors").string();
  o.batch_size = 2;
  o.max_steps = 40;
  o.learning_rate = 3e-3;
  o.seed = 5;
  std::vector<float> losses;
  TrainSummary s = train(o, [&](const StepReport& r) { losses.push_back(r.loss); });
  ASSERT_EQ(s.steps, o.max_steps);
  // Two pairs: chance is ln 2 = 0.69; the trained encoder matches each caption to its picture.
  EXPECT_NEAR(losses.front(), std::log(2.0), 0.25);
  EXPECT_LT(losses.back(), 0.1) << "first loss " << losses.front();
  // The saved file is a whole model whose text encoder changed (and nothing else trained).
  Checkpoint file = load_checkpoint(o.output);
  EXPECT_TRUE(file.tensors.count("model.diffusion_model.out.2.weight"));
  EXPECT_FALSE(file.tensors.count("contrastive.image_proj"));
  const double before = context_distance("", "a red square", "a blue circle");
  const double after = context_distance(o.output, "a red square", "a blue circle");
  EXPECT_GT(after, before * 1.5) << "pooled contexts differ by " << before << " before, " << after << " after";

  // Bad input: buckets (images of several sizes) cannot feed the one linear image tower.
  TrainOptions bad = o;
  bad.data.buckets = true;
  bad.output = (tmp.path / "bad.safetensors").string();
  EXPECT_THROW(train(bad, [](const StepReport&) {}), std::exception);
}

}  // namespace
}  // namespace pigment::training
