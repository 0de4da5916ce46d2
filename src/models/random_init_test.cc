#include "models/random_init.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "io/checkpoint.h"
#include "models/model_family.h"
#include "models/model_loader.h"

namespace pigment {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

fs::path golden() {
  const char* env = std::getenv("PIGMENT_SHARED_DIR");
  return (env && *env ? fs::path(env) : fs::path("../shared")) / "golden";
}

json read(const fs::path& p) {
  std::ifstream f(p);
  return json::parse(f);
}

class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("pigment_init_test_" + std::to_string(::getpid()))) {
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  fs::path operator/(const std::string& s) const { return path_ / s; }

 private:
  fs::path path_;
};

TEST(RandomInit, ValueRule) {
  EXPECT_EQ(random_init_value(1, "unet.conv_norm_out.weight", {320}, 5), 1.f);
  EXPECT_EQ(random_init_value(1, "unet.conv_norm_out.bias", {320}, 5), 0.f);
  // N(0, 1/fan_in) for weights, deterministic in (seed, name, index).
  Shape s = {64, 16, 3, 3};
  double sum = 0, sq = 0;
  int64_t n = shape_numel(s);
  for (int64_t i = 0; i < n; ++i) {
    float v = random_init_value(3, "unet.conv_in.weight", s, i);
    sum += v;
    sq += double(v) * v;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(std::sqrt(sq / n) * std::sqrt(16.0 * 9), 1.0, 0.05);
  EXPECT_EQ(random_init_value(3, "unet.conv_in.weight", s, 17), random_init_value(3, "unet.conv_in.weight", s, 17));
  EXPECT_NE(random_init_value(3, "unet.conv_in.weight", s, 17), random_init_value(4, "unet.conv_in.weight", s, 17));
  EXPECT_NE(random_init_value(3, "unet.conv_in.weight", s, 17), random_init_value(3, "unet.conv_out.weight", s, 17));
}

// The tiny SDXL configs exercise every transform (fused q/k/v, transposed projection, VAE conv → linear): a random
// single file and a random diffusers-named file of one seed load into the same values, those of the value rule.
TEST(RandomInit, SingleFileAndDiffusersNamesHoldTheSameModel) {
  TempDir tmp;
  json unet = read(golden() / "models/unet_sdxl/config.json"), vae = read(golden() / "models/vae/config.json"),
       te = read(golden() / "models/clip_sd1/config.json"), te2 = read(golden() / "models/clip_proj/config.json");
  std::vector<Layout> layouts = {unet_layout(unet), vae_layout(vae), openai_clip_layout(te, file_prefix::kSdxlClip),
                                 open_clip_layout(te2, file_prefix::kSdxlOpenClip, "text_encoder_2")};
  InitOptions o;
  o.seed = 11;
  o.dtype = DType::BF16;
  fs::path single = tmp / "tiny_xl.safetensors";
  InitReport r = write_random_tensors(single.string(), layouts, o, false);
  EXPECT_EQ(r.components.at("text_encoder_2").tensors, 2 + 5 * 12 + 2 + 1);

  LoadOptions lo;
  lo.configs = {{"unet", unet}, {"vae", vae}, {"text_encoder", te}, {"text_encoder_2", te2}};
  LoadedModel m = load_model(single.string(), lo);
  EXPECT_EQ(m.family(), Family::SDXL);
  EXPECT_TRUE(m.unused_keys.empty());
  for (const auto& l : layouts) {
    fs::path f = tmp / (l.front().component + ".safetensors");
    write_random_tensors(f.string(), {l}, o, true);
    Checkpoint ck = load_checkpoint(f.string());
    const TensorMap& got = *m.component(l.front().component).tensors;
    ASSERT_EQ(got.size(), ck.tensors.size());
    for (const auto& e : l) {
      const Tensor& a = got.at(e.name);
      const Tensor& b = ck.tensors.at(e.name);
      ASSERT_EQ(a.shape(), e.shape) << e.full_name();
      ASSERT_EQ(a.dtype(), DType::BF16);
      std::vector<float> va = a.to_vector(), vb = b.to_vector();
      ASSERT_EQ(va, vb) << e.full_name();
      for (int64_t i : {int64_t(0), a.numel() / 3, a.numel() - 1})
        EXPECT_EQ(va[i], bf16_to_float(float_to_bf16(random_init_value(o.seed, e.full_name(), e.shape, i))))
            << e.full_name() << "[" << i << "]";
    }
  }
}

TEST(RandomInit, RejectsOtherDtypes) {
  TempDir tmp;
  InitOptions o;
  o.dtype = DType::I8;
  EXPECT_THROW(write_random_single_file((tmp / "x.safetensors").string(), o), Error);
  EXPECT_FALSE(fs::exists(tmp / "x.safetensors"));
}

// pigment's own family is one self-describing file: its configs and its tokenizer's merges are in the metadata, the
// text encoder's vocabulary is sized to the merges, and the loader builds the components from them.
TEST(RandomInit, SelfDescribingFamilyCarriesItsConfigsAndTokenizer) {
  TempDir tmp;
  InitOptions o;
  o.family = "pigment-emoji";
  o.tokenizer_merges = "#version: 0.2\nr e\nre d</w>\na p\n";
  const std::string path = (tmp / "emoji.safetensors").string();
  write_random_single_file(path, o);
  LoadedModel m = load_model(path);
  EXPECT_EQ(m.preset_name, "pigment-emoji");
  EXPECT_EQ(m.tokenizer_merges, o.tokenizer_merges);
  EXPECT_EQ(m.component("text_encoder").config.at("vocab_size").get<int64_t>(), 512 + 3 + 2);
  EXPECT_EQ(m.component("text_encoder").tensors->at("text_model.embeddings.token_embedding.weight").dim(0), 517);
  const FamilyPreset& p = family_preset("pigment-emoji");
  EXPECT_EQ(m.component("unet").config.at("block_out_channels"), p.unet.at("block_out_channels"));
  EXPECT_EQ(m.component("unet").config.at("attention_head_dim"), p.unet.at("attention_head_dim"));
  EXPECT_EQ(m.component("vae").config.at("block_out_channels"), p.vae.at("block_out_channels"));
  EXPECT_EQ(m.component("text_encoder").config.at("num_hidden_layers"), p.text_encoder.at("num_hidden_layers"));
  EXPECT_EQ(m.scheduler_config.at("_class_name"), p.scheduler.at("_class_name"));
  // Merges are only for such families; the CLIP families refuse them.
  InitOptions sd;
  sd.tokenizer_merges = o.tokenizer_merges;
  EXPECT_THROW(write_random_single_file((tmp / "sd.safetensors").string(), sd), Error);
  o.tokenizer_merges = "#version: 0.2\nnospace\n";
  EXPECT_THROW(write_random_single_file((tmp / "bad.safetensors").string(), o), Error);
}

}  // namespace
}  // namespace pigment
