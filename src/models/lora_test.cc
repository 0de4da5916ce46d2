#include "models/lora.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "models/unet.h"
#include "models/unet_layers.h"

namespace pigment {
namespace {

std::string golden_dir() {
  const char* env = std::getenv("PIGMENT_SHARED_DIR");
  return (std::filesystem::path(env ? env : "../shared") / "golden").string();
}

Tensor pattern(Shape shape, float phase) {
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = 0.5f * std::sin(0.37f * float(i) + phase);
  return t;
}

float max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  float m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a.f32()[i] - b.f32()[i]));
  return m;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A model with one linear "blk.proj" [6, 5] and one stride-2 3x3 conv "blk.conv" [4, 3, 3, 3].
TensorMap tiny_model() {
  return {{"blk.proj.weight", pattern({6, 5}, 0.1f)},     {"blk.proj.bias", pattern({6}, 0.2f)},
          {"blk.conv.weight", pattern({4, 3, 3, 3}, 0.3f)}, {"blk.conv.bias", pattern({4}, 0.4f)}};
}

// A kohya file for tiny_model with rank r, alpha a and its own values.
std::map<std::string, Tensor> kohya_file(int64_t r, float alpha, float phase) {
  return {{"lora_unet_blk_proj.lora_down.weight", pattern({r, 5}, phase)},
          {"lora_unet_blk_proj.lora_up.weight", pattern({6, r}, phase + 1)},
          {"lora_unet_blk_proj.alpha", Tensor::full({}, alpha)},
          {"lora_unet_blk_conv.lora_down.weight", pattern({r, 3, 3, 3}, phase + 2)},
          {"lora_unet_blk_conv.lora_up.weight", pattern({4, r, 1, 1}, phase + 3)},
          {"lora_unet_blk_conv.alpha", Tensor::full({}, alpha)}};
}

// kohya names SDXL UNet modules by the SGM checkpoint's keys; they bind to the same layers as the diffusers names.
TEST(Lora, SgmNamedSdxlModulesBindThroughTheLayout) {
  std::ifstream f(std::filesystem::path(golden_dir()) / "models" / "unet_sdxl" / "config.json");
  const auto names = unet_original_module_names(nlohmann::json::parse(f));
  const std::string q = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q";
  EXPECT_EQ(names.at("input_blocks.4.1.transformer_blocks.0.attn1.to_q"), q);
  EXPECT_EQ(names.at("middle_block.1.proj_in"), "mid_block.attentions.0.proj_in");
  EXPECT_EQ(names.at("input_blocks.0.0"), "conv_in");
  EXPECT_EQ(names.at("out.2"), "conv_out");

  TensorMap unet = {{q + ".weight", pattern({32, 32}, 0.1f)}};
  std::map<std::string, const TensorMap*> comps{{"unet", &unet}};
  const ModuleAliases aliases = {{"unet", names}};
  auto file = [](const std::string& module) {
    return LoraFile::from_tensors({{"lora_unet_" + module + ".lora_down.weight", pattern({2, 32}, 0)},
                                   {"lora_unet_" + module + ".lora_up.weight", pattern({32, 2}, 1)}},
                                  "f.safetensors");
  };
  ResolvedLora sgm = resolve_lora(file("input_blocks_4_1_transformer_blocks_0_attn1_to_q"), comps, aliases);
  ResolvedLora diffusers = resolve_lora(file("down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q"), comps, aliases);
  ASSERT_EQ(sgm.modules.size(), 1u);
  ASSERT_EQ(diffusers.modules.size(), 1u);
  EXPECT_EQ(sgm.modules[0].module, q);
  EXPECT_EQ(diffusers.modules[0].module, q);
  EXPECT_TRUE(sgm.unmatched.empty());
  // Without the aliases the SGM name matches nothing.
  EXPECT_NE(error_of([&] { resolve_lora(file("input_blocks_4_1_transformer_blocks_0_attn1_to_q"), comps); }), "");
}

TEST(Lora, StackingTwoEqualsMergingByHand) {
  TensorMap base = tiny_model();
  std::map<std::string, const TensorMap*> comps{{"unet", &base}};
  auto a = std::make_shared<const ResolvedLora>(resolve_lora(LoraFile::from_tensors(kohya_file(2, 1.f, 0), "a"), comps));
  auto b = std::make_shared<const ResolvedLora>(resolve_lora(LoraFile::from_tensors(kohya_file(3, 6.f, 5), "b"), comps));
  auto merged = merge_loras(base, "unet", {{a, 0.7f}, {b, -0.3f}});
  // By hand: W + 0.7·(1/2)·up_a@down_a − 0.3·(6/3)·up_b@down_b, element by element.
  auto fa = kohya_file(2, 1.f, 0), fb = kohya_file(3, 6.f, 5);
  for (std::string layer : {"blk_proj", "blk_conv"}) {
    std::string w = layer == "blk_proj" ? "blk.proj.weight" : "blk.conv.weight";
    Tensor expect = base.at(w).clone();
    int64_t out = expect.dim(0), cols = expect.numel() / out;
    for (auto [file, rank, factor] : {std::tuple{&fa, 2, 0.7f * 0.5f}, std::tuple{&fb, 3, -0.3f * 2.f}}) {
      const Tensor& up = file->at("lora_unet_" + layer + ".lora_up.weight");
      const Tensor& down = file->at("lora_unet_" + layer + ".lora_down.weight");
      for (int64_t o = 0; o < out; ++o)
        for (int64_t c = 0; c < cols; ++c) {
          double s = 0;
          for (int k = 0; k < rank; ++k) s += double(up.f32()[o * rank + k]) * down.f32()[k * cols + c];
          expect.f32()[o * cols + c] += float(factor * s);
        }
    }
    EXPECT_LT(max_abs_diff(merged->at(w), expect), 1e-5f) << w;
  }
  // The base map is untouched: the merged copy holds new tensors.
  EXPECT_NE(merged->at("blk.proj.weight").raw(), base.at("blk.proj.weight").raw());
  EXPECT_EQ(merged->at("blk.proj.bias").raw(), base.at("blk.proj.bias").raw());
}

TEST(Lora, MergedEqualsRuntimeOnLinearAndStridedConv) {
  TensorMap base = tiny_model();
  std::map<std::string, const TensorMap*> comps{{"unet", &base}};
  auto a = std::make_shared<const ResolvedLora>(resolve_lora(LoraFile::from_tensors(kohya_file(2, 1.f, 0), "a"), comps));
  auto b = std::make_shared<const ResolvedLora>(resolve_lora(LoraFile::from_tensors(kohya_file(3, 6.f, 5), "b"), comps));
  std::vector<LoraUse> uses{{a, 0.7f}, {b, -0.3f}};
  auto merged_map = std::make_shared<const TensorMap>(*merge_loras(base, "unet", uses));
  auto base_map = std::make_shared<const TensorMap>(base);
  Weights wm(merged_map, "merged"), wb(base_map, "base");
  LoraRuntime rt("unet", uses);
  UNetHooks hooks;
  hooks.layer_delta = [&](const std::string& n, const Tensor& x, Tensor& y) { rt.apply(n, x, y); };

  Tensor x = pattern({2, 7, 5}, 0.9f);
  Tensor merged = Linear(wm.sub("blk"), "proj", 5, 6)(x, {});
  Tensor runtime = Linear(wb.sub("blk"), "proj", 5, 6)(x, hooks);
  EXPECT_LT(max_abs_diff(merged, runtime), 1e-5f);

  Tensor img = pattern({1, 3, 8, 8}, 1.3f);
  auto p = ops::Conv2dParams::same(1, 2);
  Tensor cm = Conv2d(wm.sub("blk"), "conv", 3, 4, 3, p)(img, {});
  Tensor cr = Conv2d(wb.sub("blk"), "conv", 3, 4, 3, p)(img, hooks);
  EXPECT_EQ(cm.shape(), (Shape{1, 4, 4, 4}));
  EXPECT_LT(max_abs_diff(cm, cr), 1e-5f);
}

TEST(Lora, KeyFormatsAndReports) {
  TensorMap base = tiny_model();
  std::map<std::string, const TensorMap*> comps{{"unet", &base}};
  // diffusers, PEFT and old attention-processor names all reach the same layer; no alpha means factor 1.
  const std::pair<const char*, const char*> pairs[] = {
      {"unet.blk.proj.lora.down.weight", "unet.blk.proj.lora.up.weight"},
      {"base_model.model.blk.proj.lora_A.weight", "base_model.model.blk.proj.lora_B.weight"},
      {"unet.blk.processor.proj_lora.down.weight", "unet.blk.processor.proj_lora.up.weight"}};
  for (auto [down, up] : pairs) {
    ResolvedLora r = resolve_lora(LoraFile::from_tensors({{down, pattern({2, 5}, 0)}, {up, pattern({6, 2}, 1)}}, "f"),
                                  comps);
    ASSERT_EQ(r.modules.size(), 1u) << down;
    EXPECT_EQ(r.modules[0].module, "blk.proj");
    EXPECT_EQ(r.modules[0].factor, 1.f);
  }
  // A key that matches nothing is reported, the rest applies.
  auto f = kohya_file(2, 1.f, 0);
  f["lora_unet_nowhere.lora_down.weight"] = pattern({2, 5}, 0);
  f["lora_unet_nowhere.lora_up.weight"] = pattern({6, 2}, 0);
  ResolvedLora r = resolve_lora(LoraFile::from_tensors(f, "f"), comps);
  EXPECT_EQ(r.modules.size(), 2u);
  ASSERT_EQ(r.unmatched.size(), 1u);
  EXPECT_EQ(r.unmatched[0], "unet:nowhere");
  // Another family: the shapes do not fit.
  auto wrong = kohya_file(2, 1.f, 0);
  wrong["lora_unet_blk_proj.lora_down.weight"] = pattern({2, 9}, 0);
  EXPECT_NE(error_of([&] { resolve_lora(LoraFile::from_tensors(wrong, "sdxl.safetensors"), comps); })
                .find("another model family"),
            std::string::npos);
  // Nothing fits at all.
  std::map<std::string, Tensor> none{{"lora_te2_x.lora_down.weight", pattern({2, 5}, 0)},
                                     {"lora_te2_x.lora_up.weight", pattern({6, 2}, 0)}};
  EXPECT_NE(error_of([&] { resolve_lora(LoraFile::from_tensors(none, "x.safetensors"), comps); }).find("none of"),
            std::string::npos);
  // Half a pair, LyCORIS, and a file with no LoRA keys are one-line errors.
  EXPECT_NE(error_of([&] { LoraFile::from_tensors({{"lora_unet_a.lora_down.weight", pattern({2, 5}, 0)}}, "h"); })
                .find("lacks its up"),
            std::string::npos);
  EXPECT_NE(error_of([&] { LoraFile::from_tensors({{"lora_unet_a.hada_w1_a", pattern({2, 5}, 0)}}, "l"); })
                .find("lacks its hada_w1_b"),
            std::string::npos);
  EXPECT_NE(error_of([&] { LoraFile::from_tensors({{"weight", pattern({2, 5}, 0)}}, "n"); }).find("no LoRA"),
            std::string::npos);
}

// ---- LyCORIS: LoHa, LoKr, full (diff), LoCon mid, DoRA ----

// Plain loops, independent of the implementation: a [n, k] · b [k, m].
std::vector<double> naive_matmul(const Tensor& a, const Tensor& b) {
  int64_t n = a.dim(0), k = a.dim(1), m = b.numel() / b.dim(0);
  std::vector<double> out(size_t(n * m), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j)
      for (int64_t r = 0; r < k; ++r) out[size_t(i * m + j)] += double(a.f32()[i * k + r]) * b.f32()[r * m + j];
  return out;
}

// Σ_ab t[a, b, s]·wa[a, p]·wb[b, q] as [p, q, s] (A1111's make_weight_cp), by loops.
std::vector<double> naive_tucker(const Tensor& t, const Tensor& wa, const Tensor& wb) {
  int64_t r = t.dim(0), r2 = t.dim(1), taps = t.dim(2) * t.dim(3), p = wa.dim(1), q = wb.dim(1);
  std::vector<double> out(size_t(p * q * taps), 0.0);
  for (int64_t i = 0; i < p; ++i)
    for (int64_t j = 0; j < q; ++j)
      for (int64_t s = 0; s < taps; ++s)
        for (int64_t a = 0; a < r; ++a)
          for (int64_t b = 0; b < r2; ++b)
            out[size_t((i * q + j) * taps + s)] +=
                double(t.f32()[(a * r2 + b) * taps + s]) * wa.f32()[a * p + i] * wb.f32()[b * q + j];
  return out;
}

std::map<std::string, const TensorMap*> unet_of(const TensorMap& m) { return {{"unet", &m}}; }

// merge_loras(base, w) − base for one weight, as doubles.
std::vector<double> merged_delta(const TensorMap& base, const LoraFile& f, const std::string& key, float w) {
  auto r = std::make_shared<const ResolvedLora>(resolve_lora(f, unet_of(base)));
  auto merged = merge_loras(base, "unet", {{r, w}});
  std::vector<double> d;
  for (int64_t i = 0; i < base.at(key).numel(); ++i)
    d.push_back(double(merged->at(key).f32()[i]) - base.at(key).f32()[i]);
  return d;
}

void expect_near(const std::vector<double>& got, const std::vector<double>& want, double tol, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], tol) << what << " element " << i;
}

TEST(Lycoris, SmallLoHaAndLoKrByHand) {
  TensorMap base{{"l.weight", Tensor::zeros({2, 2})}};
  // LoHa rank 1, alpha 2: (w1a·w1b) = [[3, 4], [6, 8]], (w2a·w2b) = [[2, 1], [1, 0.5]], ⊙ = [[6, 4], [6, 4]], ×2.
  LoraFile loha = LoraFile::from_tensors({{"lora_unet_l.hada_w1_a", Tensor::from_vector({2, 1}, {1, 2})},
                                          {"lora_unet_l.hada_w1_b", Tensor::from_vector({1, 2}, {3, 4})},
                                          {"lora_unet_l.hada_w2_a", Tensor::from_vector({2, 1}, {1, 0.5f})},
                                          {"lora_unet_l.hada_w2_b", Tensor::from_vector({1, 2}, {2, 1})},
                                          {"lora_unet_l.alpha", Tensor::full({}, 2.f)}},
                                         "loha");
  EXPECT_EQ(loha.entries[0].kind, LoraKind::LoHa);
  expect_near(merged_delta(base, loha, "l.weight", 0.5f), {6, 4, 6, 4}, 1e-6, "LoHa");
  // LoKr, both halves full: [[1, 2]] ⊗ [[1], [3]] = [[1, 2], [3, 6]]; alpha is ignored (no factored half).
  LoraFile lokr = LoraFile::from_tensors({{"lora_unet_l.lokr_w1", Tensor::from_vector({1, 2}, {1, 2})},
                                          {"lora_unet_l.lokr_w2", Tensor::from_vector({2, 1}, {1, 3})},
                                          {"lora_unet_l.alpha", Tensor::full({}, 8.f)}},
                                         "lokr");
  EXPECT_EQ(lokr.entries[0].factor(), 1.f);
  expect_near(merged_delta(base, lokr, "l.weight", 1.f), {1, 2, 3, 6}, 1e-6, "LoKr");
  // LoKr with w2 factored at rank 1 and alpha 3: scale 3/1; w2 = [[1], [3]]·[[2]] = [[2], [6]].
  LoraFile lokr2 = LoraFile::from_tensors({{"lora_unet_l.lokr_w1", Tensor::from_vector({1, 2}, {1, 2})},
                                           {"lora_unet_l.lokr_w2_a", Tensor::from_vector({2, 1}, {1, 3})},
                                           {"lora_unet_l.lokr_w2_b", Tensor::from_vector({1, 1}, {2})},
                                           {"lora_unet_l.alpha", Tensor::full({}, 3.f)}},
                                          "lokr2");
  EXPECT_EQ(lokr2.entries[0].factor(), 3.f);
  expect_near(merged_delta(base, lokr2, "l.weight", 1.f), {6, 12, 18, 36}, 1e-5, "factored LoKr");
}

// A model with linear and (strided) conv layers for every LyCORIS kind.
TensorMap lyco_model() {
  return {{"blk.hada.weight", pattern({6, 5}, 0.1f)},        {"blk.hada.bias", pattern({6}, 0.2f)},
          {"blk.kron.weight", pattern({6, 6}, 0.3f)},        {"blk.kron.bias", pattern({6}, 0.4f)},
          {"blk.full.weight", pattern({6, 5}, 0.5f)},        {"blk.full.bias", pattern({6}, 0.6f)},
          {"blk.dora.weight", pattern({6, 5}, 0.7f)},        {"blk.dora.bias", pattern({6}, 0.8f)},
          {"blk.plain.weight", pattern({6, 5}, 0.9f)},       {"blk.plain.bias", pattern({6}, 1.0f)},
          {"blk.hconv.weight", pattern({4, 3, 3, 3}, 1.1f)}, {"blk.hconv.bias", pattern({4}, 1.2f)},
          {"blk.kconv.weight", pattern({4, 3, 3, 3}, 1.3f)}, {"blk.kconv.bias", pattern({4}, 1.4f)},
          {"blk.mconv.weight", pattern({4, 3, 3, 3}, 1.5f)}, {"blk.mconv.bias", pattern({4}, 1.6f)}};
}

// One file with a module of each kind (LoRA, LoRA+DoRA, LoHa, Tucker LoHa, LoKr, Tucker LoKr, LoCon mid, diff).
std::map<std::string, Tensor> mixed_file() {
  return {
      {"lora_unet_blk_plain.lora_down.weight", pattern({2, 5}, 2.0f)},
      {"lora_unet_blk_plain.lora_up.weight", pattern({6, 2}, 2.1f)},
      {"lora_unet_blk_plain.alpha", Tensor::full({}, 1.f)},
      {"lora_unet_blk_dora.lora_down.weight", pattern({2, 5}, 2.2f)},
      {"lora_unet_blk_dora.lora_up.weight", pattern({6, 2}, 2.3f)},
      {"lora_unet_blk_dora.alpha", Tensor::full({}, 3.f)},
      {"lora_unet_blk_dora.dora_scale", Tensor::from_vector({1, 5}, {0.9f, 1.1f, 1.3f, 0.7f, 1.0f})},
      {"lora_unet_blk_hada.hada_w1_a", pattern({6, 2}, 2.4f)},
      {"lora_unet_blk_hada.hada_w1_b", pattern({2, 5}, 2.5f)},
      {"lora_unet_blk_hada.hada_w2_a", pattern({6, 2}, 2.6f)},
      {"lora_unet_blk_hada.hada_w2_b", pattern({2, 5}, 2.7f)},
      {"lora_unet_blk_hada.alpha", Tensor::full({}, 1.f)},
      {"lora_unet_blk_hconv.hada_w1_a", pattern({2, 4}, 2.8f)},
      {"lora_unet_blk_hconv.hada_w1_b", pattern({2, 3}, 2.9f)},
      {"lora_unet_blk_hconv.hada_t1", pattern({2, 2, 3, 3}, 3.0f)},
      {"lora_unet_blk_hconv.hada_w2_a", pattern({2, 4}, 3.1f)},
      {"lora_unet_blk_hconv.hada_w2_b", pattern({2, 3}, 3.2f)},
      {"lora_unet_blk_hconv.hada_t2", pattern({2, 2, 3, 3}, 3.3f)},
      {"lora_unet_blk_hconv.alpha", Tensor::full({}, 4.f)},
      {"lora_unet_blk_kron.lokr_w1", pattern({2, 3}, 3.4f)},
      {"lora_unet_blk_kron.lokr_w2_a", pattern({3, 1}, 3.5f)},
      {"lora_unet_blk_kron.lokr_w2_b", pattern({1, 2}, 3.6f)},
      {"lora_unet_blk_kron.alpha", Tensor::full({}, 0.5f)},
      {"lora_unet_blk_kconv.lokr_w1_a", pattern({2, 1}, 3.7f)},
      {"lora_unet_blk_kconv.lokr_w1_b", pattern({1, 1}, 3.8f)},
      {"lora_unet_blk_kconv.lokr_w2_a", pattern({2, 2}, 3.9f)},
      {"lora_unet_blk_kconv.lokr_w2_b", pattern({2, 3}, 4.0f)},
      {"lora_unet_blk_kconv.lokr_t2", pattern({2, 2, 3, 3}, 4.1f)},
      {"lora_unet_blk_kconv.alpha", Tensor::full({}, 1.f)},
      {"lora_unet_blk_mconv.lora_down.weight", pattern({2, 3, 1, 1}, 4.2f)},
      {"lora_unet_blk_mconv.lora_mid.weight", pattern({2, 2, 3, 3}, 4.3f)},
      {"lora_unet_blk_mconv.lora_up.weight", pattern({4, 2, 1, 1}, 4.4f)},
      {"lora_unet_blk_mconv.alpha", Tensor::full({}, 1.f)},
      {"lora_unet_blk_full.diff", pattern({6, 5}, 4.5f)},
      {"lora_unet_blk_full.diff_b", pattern({6}, 4.6f)},
  };
}

TEST(Lycoris, HandComputedDeltasForEveryKind) {
  TensorMap base = lyco_model();
  auto f = mixed_file();
  LoraFile file = LoraFile::from_tensors(f, "mixed");
  ASSERT_EQ(file.entries.size(), 8u);
  const float w = 0.7f;
  auto key = [&](const std::string& m, const std::string& part) { return f.at("lora_unet_blk_" + m + "." + part); };

  // LoHa linear: (w1a·w1b) ⊙ (w2a·w2b) · alpha/rank (1/2).
  auto p1 = naive_matmul(key("hada", "hada_w1_a"), key("hada", "hada_w1_b"));
  auto p2 = naive_matmul(key("hada", "hada_w2_a"), key("hada", "hada_w2_b"));
  std::vector<double> want;
  for (size_t i = 0; i < p1.size(); ++i) want.push_back(w * 0.5 * p1[i] * p2[i]);
  expect_near(merged_delta(base, file, "blk.hada.weight", w), want, 1e-5, "LoHa linear");

  // LoHa conv with Tucker cores: cp(t1, w1a, w1b) ⊙ cp(t2, w2a, w2b) · 4/2.
  auto c1 = naive_tucker(key("hconv", "hada_t1"), key("hconv", "hada_w1_a"), key("hconv", "hada_w1_b"));
  auto c2 = naive_tucker(key("hconv", "hada_t2"), key("hconv", "hada_w2_a"), key("hconv", "hada_w2_b"));
  want.clear();
  for (size_t i = 0; i < c1.size(); ++i) want.push_back(w * 2.0 * c1[i] * c2[i]);
  expect_near(merged_delta(base, file, "blk.hconv.weight", w), want, 1e-5, "Tucker LoHa conv");

  // LoKr linear: w1 [2, 3] ⊗ (w2a·w2b) [3, 2] → [6, 6], scale alpha / rank(w2b) = 0.5.
  auto w2 = naive_matmul(key("kron", "lokr_w2_a"), key("kron", "lokr_w2_b"));
  const Tensor& w1 = key("kron", "lokr_w1");
  want.assign(36, 0.0);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 3; ++k)
        for (int l = 0; l < 2; ++l) want[size_t((i * 3 + k) * 6 + j * 2 + l)] = w * 0.5 * w1.f32()[i * 3 + j] * w2[size_t(k * 2 + l)];
  expect_near(merged_delta(base, file, "blk.kron.weight", w), want, 1e-5, "LoKr linear");

  // LoKr conv: (w1a·w1b) [2, 1] ⊗ cp(t2, w2a, w2b) [2, 3, 3, 3] → [4, 3, 3, 3], scale alpha / rank(w2b) = 1/2.
  auto k1 = naive_matmul(key("kconv", "lokr_w1_a"), key("kconv", "lokr_w1_b"));
  auto k2 = naive_tucker(key("kconv", "lokr_t2"), key("kconv", "lokr_w2_a"), key("kconv", "lokr_w2_b"));
  want.assign(4 * 3 * 9, 0.0);
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 2; ++k)
      for (int l = 0; l < 3; ++l)
        for (int s = 0; s < 9; ++s) want[size_t(((i * 2 + k) * 3 + l) * 9 + s)] = w * 0.5 * k1[size_t(i)] * k2[size_t((k * 3 + l) * 9 + s)];
  expect_near(merged_delta(base, file, "blk.kconv.weight", w), want, 1e-5, "Tucker LoKr conv");

  // LoCon with a mid core: Σ mid[n, m, s]·up[o, n]·down[m, i], alpha/rank(down) = 1/2.
  Tensor up_t = Tensor::empty({2, 4});
  const Tensor& up = key("mconv", "lora_up.weight");
  for (int o = 0; o < 4; ++o)
    for (int n = 0; n < 2; ++n) up_t.f32()[n * 4 + o] = up.f32()[o * 2 + n];
  auto mid = naive_tucker(key("mconv", "lora_mid.weight"), up_t, key("mconv", "lora_down.weight").reshape({2, 3}));
  want.clear();
  for (double v : mid) want.push_back(w * 0.5 * v);
  expect_near(merged_delta(base, file, "blk.mconv.weight", w), want, 1e-5, "LoCon mid");

  // diff: ΔW as is, diff_b on the bias, both times the weight only.
  want.clear();
  for (int64_t i = 0; i < 30; ++i) want.push_back(w * key("full", "diff").f32()[i]);
  expect_near(merged_delta(base, file, "blk.full.weight", w), want, 1e-6, "diff");
  want.clear();
  for (int64_t i = 0; i < 6; ++i) want.push_back(w * key("full", "diff_b").f32()[i]);
  expect_near(merged_delta(base, file, "blk.full.bias", w), want, 1e-6, "diff_b");

  // DoRA: M = W + (3/2)·up·down; W' = M·m_i/‖M[:, i]‖; the merged delta is w·(W' − W).
  auto lr = naive_matmul(key("dora", "lora_up.weight"), key("dora", "lora_down.weight"));
  const Tensor& W = base.at("blk.dora.weight");
  const Tensor& m = key("dora", "dora_scale");
  std::vector<double> M(30), norm(5, 0.0);
  for (int i = 0; i < 30; ++i) M[size_t(i)] = W.f32()[i] + 1.5 * lr[size_t(i)];
  for (int o = 0; o < 6; ++o)
    for (int i = 0; i < 5; ++i) norm[size_t(i)] += M[size_t(o * 5 + i)] * M[size_t(o * 5 + i)];
  want.clear();
  for (int o = 0; o < 6; ++o)
    for (int i = 0; i < 5; ++i)
      want.push_back(w * (M[size_t(o * 5 + i)] * m.f32()[i] / std::sqrt(norm[size_t(i)]) - W.f32()[o * 5 + i]));
  expect_near(merged_delta(base, file, "blk.dora.weight", w), want, 1e-5, "DoRA");
}

TEST(Lycoris, MergedEqualsRuntimeForAMixedFile) {
  TensorMap base = lyco_model();
  auto mixed = std::make_shared<const ResolvedLora>(resolve_lora(LoraFile::from_tensors(mixed_file(), "m"), unet_of(base)));
  // Stacked with a plain kohya LoRA on the same layer as the LoHa.
  std::map<std::string, Tensor> second{{"lora_unet_blk_hada.lora_down.weight", pattern({3, 5}, 5.f)},
                                       {"lora_unet_blk_hada.lora_up.weight", pattern({6, 3}, 5.5f)}};
  auto other = std::make_shared<const ResolvedLora>(resolve_lora(LoraFile::from_tensors(second, "o"), unet_of(base)));
  std::vector<LoraUse> uses{{mixed, 0.7f}, {other, -0.4f}};
  auto merged_map = std::make_shared<const TensorMap>(*merge_loras(base, "unet", uses));
  auto base_map = std::make_shared<const TensorMap>(base);
  Weights wm(merged_map, "merged"), wb(base_map, "base");
  LoraRuntime rt("unet", uses);
  UNetHooks hooks;
  hooks.layer_delta = [&](const std::string& n, const Tensor& x, Tensor& y) { rt.apply(n, x, y); };
  UNetHooks none;

  Tensor x = pattern({2, 7, 5}, 0.9f), x6 = pattern({2, 7, 6}, 1.9f);
  for (const char* layer : {"hada", "full", "dora", "plain", "kron"}) {
    const Tensor& in = std::string(layer) == "kron" ? x6 : x;
    int64_t nin = in.dim(2);
    Tensor a = Linear(wm.sub("blk"), layer, nin, 6)(in, none), b = Linear(wb.sub("blk"), layer, nin, 6)(in, hooks);
    EXPECT_LT(max_abs_diff(a, b), 1e-5f) << layer;
    EXPECT_GT(max_abs_diff(a, Linear(wb.sub("blk"), layer, nin, 6)(in, none)), 1e-3f) << layer << " has an effect";
  }
  Tensor img = pattern({1, 3, 8, 8}, 1.3f);
  for (int stride : {1, 2})
    for (const char* layer : {"hconv", "kconv", "mconv"}) {
      auto p = ops::Conv2dParams::same(1, stride);
      Tensor a = Conv2d(wm.sub("blk"), layer, 3, 4, 3, p)(img, none);
      Tensor b = Conv2d(wb.sub("blk"), layer, 3, 4, 3, p)(img, hooks);
      EXPECT_LT(max_abs_diff(a, b), 1e-5f) << layer << " stride " << stride;
      EXPECT_GT(max_abs_diff(a, Conv2d(wb.sub("blk"), layer, 3, 4, 3, p)(img, none)), 1e-3f) << layer;
    }
}

TEST(Lycoris, MalformedFilesAreOneLineErrors) {
  TensorMap base = lyco_model();
  auto load_error = [](std::map<std::string, Tensor> f) { return error_of([&] { LoraFile::from_tensors(f, "bad"); }); };
  auto resolve_error = [&](std::map<std::string, Tensor> f) {
    return error_of([&] { resolve_lora(LoraFile::from_tensors(f, "bad"), unet_of(base)); });
  };
  auto has = [](const std::string& msg, const char* what) {
    EXPECT_NE(msg.find(what), std::string::npos) << "'" << msg << "' lacks '" << what << "'";
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  };
  auto loha = [](Shape w1b) {
    return std::map<std::string, Tensor>{{"lora_unet_blk_hada.hada_w1_a", pattern({6, 2}, 0)},
                                         {"lora_unet_blk_hada.hada_w1_b", pattern(w1b, 0)},
                                         {"lora_unet_blk_hada.hada_w2_a", pattern({6, 2}, 0)},
                                         {"lora_unet_blk_hada.hada_w2_b", pattern({2, 5}, 0)}};
  };
  has(load_error(loha({3, 5})), "hada_w1_a [6, 2] does not fit hada_w1_b [3, 5]");
  has(load_error(loha({2, 4})), "hada_w1_a·hada_w1_b gives [6, 4] but hada_w2_a·hada_w2_b gives [6, 5]");
  auto missing = loha({2, 5});
  missing.erase("lora_unet_blk_hada.hada_w2_b");
  has(load_error(missing), "lacks its hada_w2_b");
  auto tucker_half = loha({2, 5});
  tucker_half["lora_unet_blk_hada.hada_t1"] = pattern({2, 2, 3, 3}, 0);
  has(load_error(tucker_half), "only one of hada_t1 / hada_t2");
  auto bad_rank = loha({2, 5});
  bad_rank["lora_unet_blk_hada.hada_w1_a"] = pattern({6, 2, 1}, 0);
  has(load_error(bad_rank), "hada_w1_a has shape [6, 2, 1], expected 2-D");
  // A LoHa of the right inner shapes for another layer size.
  auto other_family = loha({2, 5});
  other_family["lora_unet_blk_hada.hada_w1_a"] = pattern({8, 2}, 0);
  other_family["lora_unet_blk_hada.hada_w2_a"] = pattern({8, 2}, 0);
  has(resolve_error(other_family), "LoHa for 'blk.hada' (unet): its LoHa ΔW has shape [8, 5] but the model's weight is [6, 5]");
  // LoKr whose Kronecker product does not fit the layer, and one without its second half.
  has(resolve_error({{"lora_unet_blk_kron.lokr_w1", pattern({2, 2}, 0)}, {"lora_unet_blk_kron.lokr_w2", pattern({3, 2}, 0)}}),
      "ΔW has shape [6, 4] but the model's weight is [6, 6]");
  has(load_error({{"lora_unet_blk_kron.lokr_w1", pattern({2, 3}, 0)}, {"lora_unet_blk_kron.lokr_w2_a", pattern({3, 1}, 0)}}),
      "lacks its lokr_w2_b");
  has(load_error({{"lora_unet_blk_kron.lokr_w1_a", pattern({2, 1}, 0)}, {"lora_unet_blk_kron.lokr_w1_b", pattern({2, 3}, 0)},
                  {"lora_unet_blk_kron.lokr_w2", pattern({3, 2}, 0)}}),
      "lokr_w1_a [2, 1] does not fit lokr_w1_b [2, 3]");
  // Mixed kinds in one module, a diff_b without diff, a bias the layer lacks, DoRA per output.
  auto mixed = loha({2, 5});
  mixed["lora_unet_blk_hada.lokr_w1"] = pattern({2, 3}, 0);
  has(load_error(mixed), "mixes LoRA, LoHa, LoKr and diff keys");
  has(load_error({{"lora_unet_blk_full.diff_b", pattern({6}, 0)}}), "lacks its diff weight");
  TensorMap nobias{{"blk.full.weight", pattern({6, 5}, 0)}};
  has(error_of([&] {
        resolve_lora(LoraFile::from_tensors({{"lora_unet_blk_full.diff", pattern({6, 5}, 0)},
                                             {"lora_unet_blk_full.diff_b", pattern({6}, 0)}},
                                            "bad"),
                     unet_of(nobias));
      }),
      "diff_b of shape [6] does not fit the layer's bias (none)");
  auto dora = loha({2, 5});
  dora["lora_unet_blk_hada.dora_scale"] = pattern({6, 1}, 0);
  has(resolve_error(dora), "per-output DoRA magnitudes are not supported");
  // Kinds pigment does not apply are refused by name.
  has(load_error({{"lora_unet_blk_hada.weight", pattern({6}, 0)}, {"lora_unet_blk_hada.on_input", pattern({}, 0)}}),
      "LyCORIS IA3 module");
  has(load_error({{"lora_unet_blk_hada.oft_blocks", pattern({2, 3, 3}, 0)}}), "LyCORIS OFT module");
  has(load_error({{"lora_unet_blk_hada.a1.weight", pattern({2, 5}, 0)}}), "LyCORIS GLoRA module");
  has(load_error({{"unet.blk.hada.lora_magnitude_vector", pattern({6}, 0)}}), "PEFT DoRA magnitude");
  has(load_error({{"lora_unet_blk_hada.hada_w9", pattern({6}, 0)}}), "unrecognised kohya/LyCORIS key");
}

TEST(Lora, GoldenKohyaMergedEqualsRuntimeOnTheUNet) {
  std::string dir = golden_dir();
  if (!std::filesystem::exists(dir + "/lora/kohya/lora_kohya.safetensors")) GTEST_FAIL() << "no golden data";
  Weights w = load_diffusers_weights(dir + "/models/unet_sd1");
  UNetConfig cfg = UNetConfig::load(dir + "/models/unet_sd1/config.json");
  std::map<std::string, const TensorMap*> comps{{"unet", &w.all()}};
  auto lora = std::make_shared<const ResolvedLora>(
      resolve_lora(LoraFile::load(dir + "/lora/kohya/lora_kohya.safetensors"), comps));
  std::vector<LoraUse> uses{{lora, 0.7f}, {lora, -0.3f}};
  UNet merged(cfg, Weights(merge_loras(w.all(), "unet", uses), "merged"));
  UNet base(cfg, w);
  LoraRuntime rt("unet", uses);
  UNetExtras e;
  e.hooks.layer_delta = [&](const std::string& n, const Tensor& x, Tensor& y) { rt.apply(n, x, y); };
  Tensor sample = pattern({1, 4, 8, 8}, 0.5f), ctx = pattern({1, 5, 32}, 0.7f);
  Tensor a = merged.forward(sample, {500}, ctx), b = base.forward(sample, {500}, ctx, e);
  EXPECT_LT(max_abs_diff(a, b), 1e-4f);
  EXPECT_GT(max_abs_diff(a, base.forward(sample, {500}, ctx)), 1e-3f);  // the LoRA does something
}

TEST(Lycoris, GoldenUNetMergedEqualsRuntime) {
  std::string dir = golden_dir();
  if (!std::filesystem::exists(dir + "/lora/kohya/lora_kohya.safetensors")) GTEST_FAIL() << "no golden data";
  Weights w = load_diffusers_weights(dir + "/models/unet_sd1");
  UNetConfig cfg = UNetConfig::load(dir + "/models/unet_sd1/config.json");
  // LoHa on every linear and LoKr (Tucker w2) on every conv the kohya file patches, with its module names.
  LoraFile kohya = LoraFile::load(dir + "/lora/kohya/lora_kohya.safetensors");
  std::map<std::string, Tensor> lyco;
  float phase = 0;
  for (const LoraEntry& e : kohya.entries) {
    if (e.component != "unet") continue;
    std::string k = "lora_unet_" + e.key + ".";
    int64_t out = e.up.dim(0), in = e.down.dim(1);
    if (e.down.ndim() == 2) {
      lyco[k + "hada_w1_a"] = pattern({out, 2}, phase += 0.3f);
      lyco[k + "hada_w1_b"] = pattern({2, in}, phase += 0.3f);
      lyco[k + "hada_w2_a"] = pattern({out, 2}, phase += 0.3f);
      lyco[k + "hada_w2_b"] = pattern({2, in}, phase += 0.3f);
    } else {
      ASSERT_EQ(out % 2, 0);
      ASSERT_EQ(in % 2, 0);
      lyco[k + "lokr_w1"] = pattern({2, 2}, phase += 0.3f);
      lyco[k + "lokr_w2_a"] = pattern({2, out / 2}, phase += 0.3f);
      lyco[k + "lokr_w2_b"] = pattern({2, in / 2}, phase += 0.3f);
      lyco[k + "lokr_t2"] = pattern({2, 2, e.down.dim(2), e.down.dim(3)}, phase += 0.3f);
    }
    lyco[k + "alpha"] = Tensor::full({}, 1.f);
  }
  std::map<std::string, const TensorMap*> comps{{"unet", &w.all()}};
  auto lora = std::make_shared<const ResolvedLora>(resolve_lora(LoraFile::from_tensors(lyco, "lyco"), comps));
  EXPECT_TRUE(lora->unmatched.empty());
  std::vector<LoraUse> uses{{lora, 0.3f}};
  UNet merged(cfg, Weights(merge_loras(w.all(), "unet", uses), "merged"));
  UNet base(cfg, w);
  LoraRuntime rt("unet", uses);
  UNetExtras e;
  e.hooks.layer_delta = [&](const std::string& n, const Tensor& x, Tensor& y) { rt.apply(n, x, y); };
  Tensor sample = pattern({1, 4, 8, 8}, 0.5f), ctx = pattern({1, 5, 32}, 0.7f);
  Tensor a = merged.forward(sample, {500}, ctx), b = base.forward(sample, {500}, ctx, e);
  EXPECT_LT(max_abs_diff(a, b), 1e-4f);
  EXPECT_GT(max_abs_diff(a, base.forward(sample, {500}, ctx)), 1e-3f);
}

}  // namespace
}  // namespace pigment
