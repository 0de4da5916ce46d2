#include "models/lora.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

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
                .find("LoHa"),
            std::string::npos);
  EXPECT_NE(error_of([&] { LoraFile::from_tensors({{"weight", pattern({2, 5}, 0)}}, "n"); }).find("no LoRA"),
            std::string::npos);
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

}  // namespace
}  // namespace pigment
