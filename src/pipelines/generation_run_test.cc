// The one generation path of the CLI and the server on the tiny golden SD1 model: adapters set and cleared between
// requests, seeds per image, model checks before any work, and the infotext of each image.
#include "pipelines/generation_run.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

namespace pigment {
namespace {

namespace fs = std::filesystem;

fs::path shared_dir() {
  const char* env = std::getenv("PIGMENT_SHARED_DIR");
  return env ? env : "../shared";
}
fs::path models() { return shared_dir() / "golden" / "models"; }

StableDiffusion tiny_sd1() {
  PipelineOptions po;
  po.model = (models() / "sd1_single_file.safetensors").string();
  po.tokenizer = (shared_dir() / "clip-tokenizer").string();
  po.load.config_paths = {{"unet", (models() / "unet_sd1").string()},
                          {"vae", (models() / "vae").string()},
                          {"text_encoder", (models() / "clip_sd1").string()}};
  return StableDiffusion::load(po);
}

GenerationRequest small_request() {
  GenerationRequest g;
  g.gen.prompt = "a cat <lora:lora_kohya:0.5>";
  g.gen.width = g.gen.height = 32;
  g.gen.steps = 2;
  g.seed = 40;
  g.batch_count = 3;
  return g;
}

TEST(GenerationRun, ImagesTakeSuccessiveSeedsAndTheInfotextKeepsTheTags) {
  StableDiffusion sd = tiny_sd1();
  GenerationRequest g = small_request();
  Adapters a = load_adapters(g, {(shared_dir() / "golden" / "lora" / "kohya").string(), "", ""});
  RecipeContext recipe;
  recipe.model_path = "/models/tiny.safetensors";
  recipe.extra = {{"ControlNet 0", "x"}};
  PreparedGeneration p = prepare_generation(sd, g, a, {}, recipe);
  EXPECT_TRUE(sd.has_loras());
  EXPECT_FALSE(p.random_seed);
  EXPECT_EQ(p.image_request(0).seed, 40u);
  EXPECT_EQ(p.image_request(2).seed, 42u);
  EXPECT_EQ(p.image_request(2).prompt.find("<lora"), std::string::npos);  // the tag is gone for the pipeline
  EXPECT_EQ(p.image_request(2).prompt.rfind("a cat", 0), 0u);
  Infotext info = p.infotext(2);
  EXPECT_EQ(info.prompt, "a cat <lora:lora_kohya:0.5>");  // ... and kept in the recipe
  ASSERT_NE(info.find("Seed"), nullptr);
  EXPECT_EQ(*info.find("Seed"), "42");
  ASSERT_NE(info.find("Lora hashes"), nullptr);
  EXPECT_EQ(info.find("Lora hashes")->rfind("lora_kohya: ", 0), 0u);
  EXPECT_NE(info.find("ControlNet 0"), nullptr);
  EXPECT_EQ(*info.find("Model"), "tiny");
}

TEST(GenerationRun, AdaptersOfAnEarlierRequestAreRemoved) {
  StableDiffusion sd = tiny_sd1();
  GenerationRequest g = small_request();
  Embedding e;
  e.name = "my-thing";
  e.vectors = Tensor::zeros({1, 32});
  Adapters a = load_adapters(g, {(shared_dir() / "golden" / "lora" / "kohya").string(), "", ""});
  a.embeddings.push_back(e);
  prepare_generation(sd, g, a);
  EXPECT_TRUE(sd.has_loras());
  EXPECT_TRUE(sd.has_embeddings());
  g.gen.prompt = "a cat";
  prepare_generation(sd, g, load_adapters(g, {}));
  EXPECT_FALSE(sd.has_loras());
  EXPECT_FALSE(sd.has_embeddings());
}

TEST(GenerationRun, ARandomSeedIsChosenOnceAndTheModelChecksComeFirst) {
  StableDiffusion sd = tiny_sd1();
  GenerationRequest g = small_request();
  g.gen.prompt = "a cat";
  g.seed = -1;
  PreparedGeneration p = prepare_generation(sd, g, load_adapters(g, {}));
  EXPECT_TRUE(p.random_seed);
  EXPECT_LE(p.seed, 0xffffffffull);
  EXPECT_EQ(p.image_request(1).seed, p.seed + 1);
  g.gen.width = 36;  // not a multiple of the VAE's scale
  EXPECT_THROW(prepare_generation(sd, g, load_adapters(g, {})), Error);
}

TEST(GenerationRun, ControlNetInfotextAsTheExtensionWritesIt) {
  ControlRecipe c;
  c.module = "canny";
  c.model = "control_sd15_canny";
  c.weight = 0.8;
  c.threshold_a = 50;
  c.end = 0.5;
  c.resize = ControlResize::ResizeAndFill;
  c.control_mode = 2;
  EXPECT_EQ(control_infotext(c),
            "Module: canny, Model: control_sd15_canny, Weight: 0.8, Resize Mode: Resize and Fill, Threshold A: 50, "
            "Threshold B: 200, Guidance Start: 0, Guidance End: 0.5, Pixel Perfect: True, Control Mode: ControlNet "
            "is more important");
  c.module = "none";
  c.control_mode = 0;
  c.resize = ControlResize::CropAndResize;
  EXPECT_EQ(control_infotext(c),
            "Module: none, Model: control_sd15_canny, Weight: 0.8, Resize Mode: Crop and Resize, Guidance Start: 0, "
            "Guidance End: 0.5, Pixel Perfect: True, Control Mode: Balanced");
}

}  // namespace
}  // namespace pigment
