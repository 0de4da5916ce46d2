// Pipeline behaviour on the tiny golden models (../shared/golden/models): the hires fix, "inpaint only masked" and the
// VAE decoder's precision under Fast.
#include "pipelines/stable_diffusion.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "io/safetensors.h"
#include "imaging/a1111_geometry.h"
#include "imaging/resize.h"
#include "imaging/blur.h"
#include "ops/precision.h"
#include "sampling/rng.h"
#include "text/tokenizer_files.h"

namespace pigment {
namespace {

namespace fs = std::filesystem;

fs::path shared_dir() {
  const char* env = std::getenv("PIGMENT_SHARED_DIR");
  return env ? env : "../shared";
}
fs::path models() { return shared_dir() / "golden" / "models"; }

const StableDiffusion& tiny_sd1() {
  static const StableDiffusion sd = [] {
    PipelineOptions po;
    po.model = (models() / "sd1_single_file.safetensors").string();
    po.tokenizer = (shared_dir() / "clip-tokenizer").string();
    po.load.config_paths = {{"unet", (models() / "unet_sd1").string()},
                            {"vae", (models() / "vae").string()},
                            {"text_encoder", (models() / "clip_sd1").string()}};
    return StableDiffusion::load(po);
  }();
  return sd;
}

ModelComponent component(const fs::path& dir, const std::string& name) {
  // A folder with one config.json is a single-component diffusers folder to the model loader.
  LoadedModel m = load_model(dir.string());
  ModelComponent c = m.components.begin()->second;
  c.name = name;
  return c;
}

// The tiny 9-channel inpainting pipeline, from the golden component folders.
const StableDiffusion& tiny_inpaint() {
  static const StableDiffusion sd = [] {
    LoadedModel m;
    m.path = models().string();
    m.format = "diffusers";
    m.detection.family = Family::SD1;
    m.components["unet"] = component(models() / "unet_inpaint", "unet");
    m.components["vae"] = component(models() / "vae", "vae");
    m.components["text_encoder"] = component(models() / "clip_sd1", "text_encoder");
    std::ifstream f(models() / "pipelines.json");
    m.scheduler_config = nlohmann::json::parse(f)["sd1"]["scheduler"];
    m.prediction_type = "epsilon";
    TokenizerLocation where;
    where.path = (shared_dir() / "clip-tokenizer").string();
    where.search_hf_cache = false;
    return StableDiffusion::create(m, ClipTokenizer::load(where));
  }();
  return sd;
}

struct Outcome {
  std::map<std::string, Tensor> seen;
  std::vector<StepProgress> steps;
  GenerateResult result;
};

Outcome generate_with(const StableDiffusion& sd, const GenerateRequest& r) {
  Outcome out;
  out.result = sd.generate(
      r, [&](const StepProgress& p) { out.steps.push_back(p); },
      [&](const std::string& name, const Tensor& t) { out.seen[name] = t.clone(); });
  return out;
}

bool equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::equal(a.f32(), a.f32() + a.numel(), b.f32());
}

GenerateRequest base_request() {
  GenerateRequest r;
  r.prompt = "a cat";
  r.negative_prompt = "blurry";
  r.width = r.height = 32;
  r.steps = 3;
  r.seed = 5;
  r.sampler = "Euler a";
  return r;
}

TEST(HiresFix, LatentUpscaleThenImg2ImgPassInA1111StepCounting) {
  GenerateRequest r = base_request();
  Outcome plain = generate_with(tiny_sd1(), r);
  GenerateRequest::HiresFix hr;
  hr.scale = 2;
  hr.upscaler = "Latent";
  hr.steps = 2;
  hr.denoising_strength = 0.5;
  r.hires = hr;
  Outcome h = generate_with(tiny_sd1(), r);
  // The first pass is the plain txt2img run.
  ASSERT_TRUE(h.seen.count("final_latents"));
  EXPECT_TRUE(equal(h.seen["final_latents"], plain.result.latents));
  // Its latent upscaled by torch-style bilinear interpolation (A1111 "Latent").
  EXPECT_TRUE(equal(h.seen["hires.upscaled_latents"], interpolate(plain.result.latents, 8, 8, "bilinear", false)));
  // The second pass's noise is the first draw of a new generator on the same seed, at the new size.
  EXPECT_TRUE(equal(h.seen["hires.noise"], make_generator(r.rng, r.seed)->randn({1, 4, 8, 8})));
  // Steps: 3 in pass 1, then exactly hr.steps = 2 (a 4-step schedule of which the last 2 run).
  ASSERT_EQ(h.steps.size(), 5u);
  EXPECT_EQ(h.steps[2].pass, 1);
  EXPECT_EQ(h.steps[2].total, 3);
  EXPECT_EQ(h.steps[3].pass, 2);
  EXPECT_EQ(h.steps[3].passes, 2);
  EXPECT_EQ(h.steps[4].total, 2);
  EXPECT_EQ(h.result.image.width, 64);
  EXPECT_EQ(h.result.image.height, 64);
  EXPECT_EQ(h.result.latents.shape(), (Shape{1, 4, 8, 8}));

  // Hires steps 0 = the first pass's count; the Euler a schedule of int(3 / 0.5) = 6 steps runs its last 3.
  r.hires->steps = 0;
  Outcome h0 = generate_with(tiny_sd1(), r);
  ASSERT_EQ(h0.steps.size(), 6u);
  EXPECT_EQ(h0.steps[5].total, 3);
}

TEST(HiresFix, BothResizeSidesCropTheUpscaledLatent) {
  GenerateRequest r = base_request();
  GenerateRequest::HiresFix hr;
  hr.resize_x = 64;
  hr.resize_y = 48;
  hr.upscaler = "Latent (nearest-exact)";
  hr.steps = 1;
  r.hires = hr;
  Outcome h = generate_with(tiny_sd1(), r);
  // Cover 64x48 with the 1:1 first pass: 64x64 (8x8 latents), then 2 latent rows cropped: 1 above, 1 below.
  Tensor up = interpolate(h.seen["final_latents"], 8, 8, "nearest-exact", false);
  const Tensor& got = h.seen["hires.upscaled_latents"];
  ASSERT_EQ(got.shape(), (Shape{1, 4, 6, 8}));
  for (int64_t c = 0; c < 4; ++c)
    for (int64_t y = 0; y < 6; ++y)
      for (int64_t x = 0; x < 8; ++x)
        ASSERT_EQ(got.f32()[(c * 6 + y) * 8 + x], up.f32()[(c * 8 + y + 1) * 8 + x]);
  EXPECT_EQ(h.result.image.width, 64);
  EXPECT_EQ(h.result.image.height, 48);
}

TEST(HiresFix, ImageUpscalerEncodesTheResizedFirstPass) {
  GenerateRequest r = base_request();
  GenerateRequest::HiresFix hr;
  hr.scale = 1.5;
  hr.upscaler = "Lanczos";
  hr.steps = 1;
  hr.prompt = "a dog";
  r.hires = hr;
  Outcome h = generate_with(tiny_sd1(), r);
  ASSERT_TRUE(h.seen.count("hires.upscaled_latents"));
  EXPECT_EQ(h.seen["hires.upscaled_latents"].shape(), (Shape{1, 4, 6, 6}));
  EXPECT_EQ(h.result.image.width, 48);
  // The second pass encodes its own prompt.
  EXPECT_FALSE(equal(h.seen["prompt_embeds"], h.seen["hires.prompt_embeds"]));
}

TEST(HiresFix, RequestErrors) {
  GenerateRequest r = base_request();
  GenerateRequest::HiresFix hr;
  r.hires = hr;
  r.hires->scale = 0;
  EXPECT_THROW(tiny_sd1().check_request(r), Error);
  r.hires->scale = 9;
  EXPECT_THROW(tiny_sd1().check_request(r), Error);
  r.hires->scale = 2;
  r.hires->denoising_strength = 0;
  EXPECT_THROW(tiny_sd1().check_request(r), Error);
  r.hires->denoising_strength = 0.7;
  r.hires->upscaler = "SwinIR_4x";
  EXPECT_THROW(tiny_sd1().check_request(r), Error);
  r.hires->upscaler = "Latent";
  r.hires->scale = 8;
  r.width = r.height = 1024;  // 8192x8192
  EXPECT_THROW(tiny_sd1().check_request(r), Error);
  r.width = r.height = 32;
  r.init_image = Image{32, 32, 3, std::vector<uint8_t>(32 * 32 * 3, 128)};
  EXPECT_THROW(tiny_sd1().check_request(r), Error);
}

// A 64x48 test picture and a mask with a white 12x12 square at (40, 8).
Image picture() {
  Image img{64, 48, 3, std::vector<uint8_t>(64 * 48 * 3)};
  for (int y = 0; y < 48; ++y)
    for (int x = 0; x < 64; ++x)
      for (int c = 0; c < 3; ++c) img.pixels[(size_t(y) * 64 + x) * 3 + c] = uint8_t((x * 4 + y * 3 + c * 70) % 256);
  return img;
}
Image square_mask() {
  Image m{64, 48, 1, std::vector<uint8_t>(64 * 48, 0)};
  for (int y = 8; y < 20; ++y)
    for (int x = 40; x < 52; ++x) m.pixels[size_t(y) * 64 + x] = 255;
  return m;
}

void expect_only_masked_area_changed(const StableDiffusion& sd) {
  GenerateRequest r = base_request();
  r.init_image = picture();
  r.mask = square_mask();
  r.mask_blur = 2;
  r.strength = 0.8;
  r.inpaint_only_masked = true;
  r.inpaint_padding = 4;
  Outcome o = generate_with(sd, r);
  const Image& out = o.result.image;
  ASSERT_EQ(out.width, 64);
  ASSERT_EQ(out.height, 48);
  // The paste's alpha is the blurred mask: where it is 0 the init image is kept exactly.
  Image alpha = mask_blur_a1111(square_mask(), 2, 2);
  int kept = 0, changed = 0;
  for (int y = 0; y < 48; ++y)
    for (int x = 0; x < 64; ++x)
      for (int c = 0; c < 3; ++c) {
        if (alpha.at(x, y, 0) == 0) {
          ASSERT_EQ(out.at(x, y, c), r.init_image->at(x, y, c)) << x << "," << y;
          ++kept;
        } else if (alpha.at(x, y, 0) == 255 && out.at(x, y, c) != r.init_image->at(x, y, c)) {
          ++changed;
        }
      }
  EXPECT_GT(kept, 0);
  EXPECT_GT(changed, 0);
  // The inpainted crop is the generation size: 32x32 latents of 4x4.
  EXPECT_EQ(o.result.latents.shape(), (Shape{1, 4, 4, 4}));
  EXPECT_EQ(o.result.pixels.shape(), (Shape{1, 3, 48, 64}));

  // An all-black mask has nothing to crop around.
  r.mask = Image{64, 48, 1, std::vector<uint8_t>(64 * 48, 0)};
  EXPECT_THROW(sd.generate(r), Error);
}

TEST(InpaintOnlyMasked, OrdinaryModelRepaintsOnlyTheMaskedArea) { expect_only_masked_area_changed(tiny_sd1()); }
TEST(InpaintOnlyMasked, NineChannelModelRepaintsOnlyTheMaskedArea) { expect_only_masked_area_changed(tiny_inpaint()); }

TEST(MaskedContent, FillThenLatentNothingOrLatentNoiseInTheMaskedLatents) {
  GenerateRequest r = base_request();
  r.init_image = picture();
  r.mask = square_mask();
  r.width = 64;
  r.height = 48;
  r.strength = 0.6;
  r.steps = 1;
  Outcome orig = generate_with(tiny_sd1(), r);
  using MC = GenerateRequest::MaskedContent;
  r.masked_content = MC::Fill;
  Outcome fill = generate_with(tiny_sd1(), r);
  r.masked_content = MC::LatentNothing;
  Outcome nothing = generate_with(tiny_sd1(), r);
  r.masked_content = MC::LatentNoise;
  Outcome noise = generate_with(tiny_sd1(), r);
  // Fill paints the hole from its surroundings before encoding, so the latents change.
  const Tensor &o = orig.seen["image_latents"], &f = fill.seen["image_latents"];
  const Tensor &b = nothing.seen["image_latents"], &n = noise.seen["image_latents"];
  EXPECT_FALSE(equal(o, f));
  // As A1111, latent nothing / latent noise start from the filled image's latents and replace the masked ones
  // by zeros / by noise drawn from the seed.
  Tensor fresh = make_generator(r.rng, r.seed)->randn({1, 4, 6, 8});
  int inside = 0;  // the square covers latent columns 5..6, rows 1..2 (nearest sampling of the mask)
  for (int64_t c = 0; c < 4; ++c)
    for (int64_t y = 0; y < 6; ++y)
      for (int64_t x = 0; x < 8; ++x) {
        const int64_t i = (c * 6 + y) * 8 + x;
        if (x >= 5 && x < 7 && y >= 1 && y < 3) {
          ++inside;
          EXPECT_EQ(b.f32()[i], 0.f);
          EXPECT_EQ(n.f32()[i], fresh.f32()[i]);
        } else {
          EXPECT_EQ(b.f32()[i], f.f32()[i]);
          EXPECT_EQ(n.f32()[i], f.f32()[i]);
        }
      }
  EXPECT_EQ(inside, 16);
}

// With AVX-512 BF16 and no AMX the VAE decoder runs in float32 under Fast (faster there): the float32 pixels. With
// AMX it runs in bf16 (other pixels); without a fast path Fast is float32 anyway.
TEST(StableDiffusion, DecoderPrecisionUnderFast) {
  const StableDiffusion& sd = tiny_sd1();
  Tensor latents = Tensor::empty({1, 4, 8, 8});
  for (int64_t i = 0; i < latents.numel(); ++i) latents.f32()[i] = float((i * 37) % 23) / 11.f - 1.f;
  Image exact, fast;
  {
    ops::ScopedPrecision p(ops::Precision::Fp32);
    exact = sd.decode_latents(latents);
  }
  {
    ops::ScopedPrecision p(ops::Precision::Fast);
    fast = sd.decode_latents(latents);
  }
  if (ops::fast_path() == ops::FastPath::Amx)
    EXPECT_NE(exact.pixels, fast.pixels);
  else
    EXPECT_EQ(exact.pixels, fast.pixels);
}

}  // namespace
}  // namespace pigment
