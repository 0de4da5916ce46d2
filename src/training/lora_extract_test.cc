// LoRA extraction (kohya's extract_lora_from_models semantics): the SVD, the quantile clamp, which layers are
// taken, exact recovery of a low-rank difference through pigment's LoRA loader, and the rank/error trade-off.
#include "training/lora_extract.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/threading.h"
#include "models/lora.h"
#include "models/unet.h"
#include "ops/ops.h"
#include "training/training_test_util.h"

namespace pigment::training {
namespace {

using namespace testing;

std::vector<double> random_matrix(int64_t m, int64_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<double> d;
  std::vector<double> a(size_t(m * n));
  for (auto& v : a) v = d(g);
  return a;
}

Tensor random_tensor(Shape shape, float scale, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d;
  Tensor t = Tensor::empty(std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = scale * d(g);
  return t;
}

// [out, r] · [r, cols] as a tensor of `shape`.
Tensor product(const Tensor& a, const Tensor& b, const Shape& shape) {
  const int64_t out = a.dim(0), r = a.dim(1), cols = b.numel() / r;
  Tensor t = Tensor::zeros(shape);
  for (int64_t i = 0; i < out; ++i)
    for (int64_t k = 0; k < r; ++k)
      for (int64_t j = 0; j < cols; ++j) t.f32()[i * cols + j] += a.f32()[i * r + k] * b.f32()[k * cols + j];
  return t;
}

double rel_error(const Tensor& a, const Tensor& b) {
  double num = 0, den = 0;
  const Tensor x = a.as_f32(), y = b.as_f32();
  for (int64_t i = 0; i < x.numel(); ++i) {
    num += double(x.f32()[i] - y.f32()[i]) * double(x.f32()[i] - y.f32()[i]);
    den += double(y.f32()[i]) * double(y.f32()[i]);
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

TEST(Svd, ReconstructsWithOrthonormalFactorsAndDescendingValues) {
  for (auto [m, n] : {std::pair<int64_t, int64_t>{7, 5}, {5, 9}, {6, 6}}) {
    const std::vector<double> a = random_matrix(m, n, uint32_t(m * 31 + n));
    const Svd d = svd(a, m, n);
    ASSERT_EQ(d.k, std::min(m, n));
    for (int64_t j = 1; j < d.k; ++j) EXPECT_GE(d.s[size_t(j - 1)], d.s[size_t(j)]);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double v = 0;
        for (int64_t k = 0; k < d.k; ++k) v += d.u[size_t(i * d.k + k)] * d.s[size_t(k)] * d.vt[size_t(k * n + j)];
        EXPECT_NEAR(v, a[size_t(i * n + j)], 1e-10) << m << "x" << n;
      }
    for (int64_t p = 0; p < d.k; ++p)
      for (int64_t q = 0; q < d.k; ++q) {
        double uu = 0, vv = 0;
        for (int64_t i = 0; i < m; ++i) uu += d.u[size_t(i * d.k + p)] * d.u[size_t(i * d.k + q)];
        for (int64_t j = 0; j < n; ++j) vv += d.vt[size_t(p * n + j)] * d.vt[size_t(q * n + j)];
        EXPECT_NEAR(uu, p == q ? 1.0 : 0.0, 1e-10);
        EXPECT_NEAR(vv, p == q ? 1.0 : 0.0, 1e-10);
      }
  }
  EXPECT_THROW(svd({1, 2, 3}, 2, 2), Error);
}

TEST(Svd, QuantileInterpolatesLinearlyAsTorch) {
  EXPECT_DOUBLE_EQ(quantile({4, 1, 3, 2}, 0.5), 2.5);  // torch.quantile(tensor([4., 1, 3, 2]), 0.5) = 2.5
  std::vector<double> v;
  for (int i = 100; i >= 0; --i) v.push_back(i);
  EXPECT_NEAR(quantile(v, 0.99), 99.0, 1e-12);
  EXPECT_NEAR(quantile(v, 0.995), 99.5, 1e-12);
  EXPECT_DOUBLE_EQ(quantile(v, 1.0), 100.0);
  EXPECT_DOUBLE_EQ(quantile(v, 0.0), 0.0);
}

// A full-rank difference: the rank-r pair is the best rank-r approximation (Eckart–Young: the error is the norm of
// the discarded singular values), and the error falls as the rank grows, to zero at full rank.
TEST(LoraExtract, FullRankDifferenceErrorFallsWithRankAsEckartYoung) {
  const Tensor diff = random_tensor({24, 16}, 0.05f, 7);
  std::vector<double> a(diff.f32(), diff.f32() + diff.numel());
  const Svd d = svd(a, 24, 16);
  double previous = 1e9;
  for (int r : {1, 2, 4, 8, 12, 16}) {
    const LowRankPair p = low_rank_pair(diff, r, 1.0);
    ASSERT_EQ(p.rank, r);
    ASSERT_EQ(p.up.shape(), (Shape{24, r}));
    ASSERT_EQ(p.down.shape(), (Shape{r, 16}));
    const double err = rel_error(product(p.up, p.down, diff.shape()), diff);
    double tail = 0, all = 0;
    for (size_t j = 0; j < d.s.size(); ++j) (j >= size_t(r) ? tail : all) += d.s[j] * d.s[j];
    all += tail;
    EXPECT_NEAR(err, std::sqrt(tail / all), 1e-5) << "rank " << r;
    EXPECT_LT(err, previous) << "rank " << r;
    previous = err;
  }
  EXPECT_LT(previous, 1e-6);
  // kohya's default clamp (0.99 quantile of up and down together) cuts the largest 1 % of the values: a little
  // worse than no clamp, never far.
  const double unclamped = rel_error(product(low_rank_pair(diff, 4, 1.0).up, low_rank_pair(diff, 4, 1.0).down,
                                             diff.shape()), diff);
  const LowRankPair c = low_rank_pair(diff, 4, 0.99);
  const double clamped = rel_error(product(c.up, c.down, diff.shape()), diff);
  EXPECT_GE(clamped, unclamped - 1e-9);
  EXPECT_LT(clamped, unclamped + 0.2);
  // The rank never exceeds the layer's smaller side.
  EXPECT_EQ(low_rank_pair(diff, 64, 1.0).rank, 16);
}

TEST(LoraExtract, ConvolutionKernelsAreFlattenedAndReshapedAsKohya) {
  // A rank-2 difference of a 3x3 kernel [8, 6, 3, 3] (rank of the [8, 54] matrix).
  const Tensor a = random_tensor({8, 2}, 0.3f, 1), b = random_tensor({2, 54}, 0.3f, 2);
  const Tensor diff = product(a, b, {8, 6, 3, 3});
  const LowRankPair p = low_rank_pair(diff, 4, 1.0);
  EXPECT_EQ(p.up.shape(), (Shape{8, 4, 1, 1}));
  EXPECT_EQ(p.down.shape(), (Shape{4, 6, 3, 3}));
  EXPECT_LT(rel_error(lora_delta_weight(p.down, p.up), diff), 1e-5);
}

struct TinyModel {
  LoadedModel m = load_model(tiny_model().model, tiny_model().load);
  TensorMap unet = *m.component("unet").tensors, te = *m.component("text_encoder").tensors;
};

// The tuned model: base + a rank-2 difference on every layer the extraction targets.
TensorMap with_low_rank_changes(const TensorMap& base, const std::vector<std::pair<std::string, int>>& targets,
                                float scale, uint32_t seed) {
  TensorMap tuned = base;
  for (const auto& [module, rank] : targets) {
    const Tensor w = base.at(module + ".weight");
    const int64_t out = w.dim(0), cols = w.numel() / out;
    const Tensor a = random_tensor({out, 2}, scale, seed++), b = random_tensor({2, cols}, scale, seed++);
    const Tensor d = product(a, b, w.shape());
    Tensor t = w.as_f32().clone();
    for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] += d.f32()[i];
    tuned[module + ".weight"] = t;
  }
  return tuned;
}

// kohya's layer choice on the tiny SD1: transformer linears and 1x1 projections only, unless a conv rank adds the
// resnets' and resamplers' layers; the text encoder's q/k/v/out and fc1/fc2.
TEST(LoraExtract, TargetsAreKohyasLayers) {
  TinyModel tiny;
  LoraExtractOptions o;
  auto names = [](const std::vector<std::pair<std::string, int>>& v) {
    std::string s;
    for (const auto& [n, r] : v) s += n + "=" + std::to_string(r) + " ";
    return s;
  };
  const auto unet = lora_extract_targets("unet", tiny.unet, o);
  const std::string u = names(unet);
  EXPECT_NE(u.find("attentions.0.transformer_blocks.0.attn1.to_q=4"), std::string::npos) << u;
  EXPECT_NE(u.find("attentions.0.proj_in=4"), std::string::npos) << u;
  EXPECT_NE(u.find("ff.net.0.proj=4"), std::string::npos) << u;
  EXPECT_EQ(u.find("resnets"), std::string::npos) << u;
  EXPECT_EQ(u.find("conv_in"), std::string::npos) << u;
  EXPECT_EQ(u.find("time_embedding"), std::string::npos) << u;
  EXPECT_EQ(u.find("norm"), std::string::npos) << u;
  o.conv_rank = 2;
  const std::string c = names(lora_extract_targets("unet", tiny.unet, o));
  EXPECT_NE(c.find("resnets.0.conv1=2"), std::string::npos) << c;
  EXPECT_NE(c.find("resnets.0.time_emb_proj=4"), std::string::npos) << c;
  EXPECT_NE(c.find("downsamplers.0.conv=2"), std::string::npos) << c;
  EXPECT_EQ(c.find("conv_in"), std::string::npos) << c;
  const std::string t = names(lora_extract_targets("text_encoder", tiny.te, o));
  for (const char* part : {"layers.0.self_attn.q_proj=4", "layers.0.self_attn.out_proj=4", "layers.0.mlp.fc1=4"})
    EXPECT_NE(t.find(part), std::string::npos) << t;
  EXPECT_EQ(t.find("embedding"), std::string::npos) << t;
}

// A rank-2 change of every targeted layer is recovered exactly at rank 4 (no clamping): the file pigment's LoRA
// loader reads, applied to the base, gives the tuned weights and the tuned UNet's prediction.
TEST(LoraExtract, LowRankDifferenceIsRecoveredThroughTheLoraLoader) {
  ScopedNumThreads one(1);
  TinyModel tiny;
  LoraExtractOptions o;
  o.rank = 4;
  o.conv_rank = 4;
  o.clamp_quantile = 1.0;
  const TensorMap tuned_unet = with_low_rank_changes(tiny.unet, lora_extract_targets("unet", tiny.unet, o), 0.1f, 100);
  const TensorMap tuned_te = with_low_rank_changes(tiny.te, lora_extract_targets("text_encoder", tiny.te, o), 0.1f, 9000);
  const ExtractedLora lora =
      extract_lora({{"unet", &tiny.unet}, {"text_encoder", &tiny.te}}, {{"unet", &tuned_unet}, {"text_encoder", &tuned_te}}, o);
  EXPECT_TRUE(lora.text_encoder_different);
  EXPECT_GT(lora.text_encoder_modules, 0);
  EXPECT_GT(lora.unet_modules, 0);
  EXPECT_EQ(lora.metadata.at("ss_network_dim"), "4");
  EXPECT_EQ(lora.metadata.at("ss_network_alpha"), "4.0");

  TempDir tmp;
  const std::string path = (tmp.path / "extracted.safetensors").string();
  write_extracted_lora(path, lora);
  LoraFile file = LoraFile::load(path);
  auto resolved = std::make_shared<ResolvedLora>(
      resolve_lora(file, {{"unet", &tiny.unet}, {"text_encoder", &tiny.te}}));
  EXPECT_TRUE(resolved->unmatched.empty());
  EXPECT_EQ(resolved->modules.size(), size_t(lora.unet_modules + lora.text_encoder_modules));
  const std::vector<LoraUse> uses{{resolved, 1.f}};
  const auto merged_unet = merge_loras(tiny.unet, "unet", uses);
  const auto merged_te = merge_loras(tiny.te, "text_encoder", uses);
  double worst = 0;
  for (const auto& [k, t] : tuned_unet) worst = std::max(worst, rel_error(merged_unet->at(k), t));
  for (const auto& [k, t] : tuned_te) worst = std::max(worst, rel_error(merged_te->at(k), t));
  EXPECT_LT(worst, 1e-5) << "largest relative error of a merged weight";

  // The UNet's prediction with the LoRA equals the tuned UNet's.
  const ModelComponent& uc = tiny.m.component("unet");
  const UNetConfig cfg = UNetConfig::from_json(uc.config.dump(), uc.source);
  const UNet tuned(cfg, Weights(std::make_shared<const TensorMap>(tuned_unet), "tuned"));
  const UNet with_lora(cfg, Weights(merged_unet, "base + lora"));
  const UNet base(cfg, uc.weights());
  const int64_t ch = uc.config.value("in_channels", 4), ctx = uc.config.value("cross_attention_dim", 32);
  const Tensor x = random_tensor({1, ch, 8, 8}, 1.f, 3), c = random_tensor({1, 77, ctx}, 1.f, 4);
  const Tensor yt = tuned.forward(x, {500.f}, c), yl = with_lora.forward(x, {500.f}, c), yb = base.forward(x, {500.f}, c);
  EXPECT_LT(rel_error(yl, yt), 1e-4);
  EXPECT_GT(rel_error(yb, yt), 1e-2) << "the change must matter for the comparison to mean something";
}

// kohya: when no text-encoder layer differs by more than min_diff, the text encoder is left out as a whole.
TEST(LoraExtract, TextEncoderWithinMinDiffIsLeftOut) {
  TinyModel tiny;
  LoraExtractOptions o;
  const TensorMap tuned_unet = with_low_rank_changes(tiny.unet, lora_extract_targets("unet", tiny.unet, o), 0.1f, 5);
  const TensorMap tuned_te = with_low_rank_changes(tiny.te, lora_extract_targets("text_encoder", tiny.te, o), 0.02f, 6);
  const ExtractedLora lora =
      extract_lora({{"unet", &tiny.unet}, {"text_encoder", &tiny.te}}, {{"unet", &tuned_unet}, {"text_encoder", &tuned_te}}, o);
  ASSERT_GT(lora.text_encoder_max_diff, 0);
  o.min_diff = lora.text_encoder_max_diff * 1.01;
  const ExtractedLora unet_only =
      extract_lora({{"unet", &tiny.unet}, {"text_encoder", &tiny.te}}, {{"unet", &tuned_unet}, {"text_encoder", &tuned_te}}, o);
  EXPECT_FALSE(unet_only.text_encoder_different);
  EXPECT_EQ(unet_only.text_encoder_modules, 0);
  EXPECT_EQ(unet_only.unet_modules, lora.unet_modules);
  for (const auto& [k, t] : unet_only.tensors) EXPECT_EQ(k.rfind("lora_te_", 0), std::string::npos) << k;
  o.min_diff = lora.text_encoder_max_diff * 0.99;
  EXPECT_TRUE(extract_lora({{"unet", &tiny.unet}, {"text_encoder", &tiny.te}},
                           {{"unet", &tuned_unet}, {"text_encoder", &tuned_te}}, o)
                  .text_encoder_different);
}

TEST(LoraExtract, BadOptionsAndMismatchedModelsAreErrors) {
  TinyModel tiny;
  LoraExtractOptions o;
  o.rank = 0;
  EXPECT_THROW(extract_lora({{"unet", &tiny.unet}}, {{"unet", &tiny.unet}}, o), Error);
  o.rank = 4;
  o.clamp_quantile = 1.5;
  EXPECT_THROW(extract_lora({{"unet", &tiny.unet}}, {{"unet", &tiny.unet}}, o), Error);
  o.clamp_quantile = 0.99;
  TensorMap other = tiny.unet;
  const std::string key = lora_extract_targets("unet", tiny.unet, o).front().first + ".weight";
  other[key] = Tensor::zeros({3, 3});
  EXPECT_THROW(extract_lora({{"unet", &tiny.unet}}, {{"unet", &other}}, o), Error);
}

}  // namespace
}  // namespace pigment::training
