#include "models/model_loader.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "io/checkpoint.h"
#include "io/safetensors.h"

namespace pigment {
namespace {

namespace fs = std::filesystem;

fs::path golden() {
  const char* env = std::getenv("PIGMENT_SHARED_DIR");
  return (env && *env ? fs::path(env) : fs::path("../shared")) / "golden";
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

LoadOptions sd1_overrides() {
  LoadOptions o;
  o.config_paths = {{"unet", (golden() / "models/unet_sd1").string()},
                    {"vae", (golden() / "models/vae").string()},
                    {"text_encoder", (golden() / "models/clip_sd1").string()}};
  return o;
}

TEST(ModelLoader, Sd1SingleFileEqualsDiffusersWeights) {
  LoadedModel m = load_model((golden() / "models/sd1_single_file.safetensors").string(), sd1_overrides());
  EXPECT_EQ(m.format, "single-file");
  EXPECT_EQ(m.family(), Family::SD1);
  EXPECT_EQ(m.prediction_type, "epsilon");
  EXPECT_TRUE(m.unused_keys.empty());
  EXPECT_EQ(m.component("unet").config["norm_num_groups"], 8);
  const std::pair<const char*, const char*> parts[] = {
      {"unet", "models/unet_sd1/diffusion_pytorch_model.safetensors"},
      {"vae", "models/vae/diffusion_pytorch_model.safetensors"},
      {"text_encoder", "models/clip_sd1/model.safetensors"}};
  for (const auto& [name, file] : parts) {
    Checkpoint ref = load_checkpoint((golden() / file).string());
    const TensorMap& got = *m.component(name).tensors;
    size_t n = 0;
    for (const auto& [k, t] : ref.tensors) {
      if (k.find("position_ids") != std::string::npos) continue;
      ++n;
      auto it = got.find(k);
      ASSERT_NE(it, got.end()) << name << "." << k;
      EXPECT_TRUE(same_bits(it->second, t)) << name << "." << k;
    }
    EXPECT_EQ(got.size(), n) << name;
  }
  EXPECT_THROW(m.component("text_encoder_2"), Error);
}

TEST(ModelLoader, DiffusersComponentFolder) {
  LoadedModel m = load_model((golden() / "models/unet_sdxl").string());
  EXPECT_EQ(m.format, "diffusers");
  EXPECT_EQ(m.family(), Family::SDXL);
  ASSERT_TRUE(m.has("unet"));
  EXPECT_EQ(m.component("unet").config["norm_num_groups"], 8);
  EXPECT_TRUE(m.component("unet").weights().has("add_embedding.linear_1.weight"));
}

TEST(ModelLoader, MissingTensorNamesFileAndTensor) {
  Checkpoint ck = load_checkpoint((golden() / "models/sd1_single_file.safetensors").string());
  NamedTensors keep;
  for (const auto& [k, t] : ck.tensors)
    if (k != "model.diffusion_model.out.2.weight") keep.emplace_back(k, t);
  fs::path tmp = fs::temp_directory_path() / ("pigment_loader_test_" + std::to_string(::getpid()) + ".safetensors");
  write_safetensors(tmp.string(), keep);
  try {
    load_model(tmp.string(), sd1_overrides());
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    std::string w = e.what();
    EXPECT_NE(w.find(tmp.string()), std::string::npos) << w;
    EXPECT_NE(w.find("model.diffusion_model.out.2.weight"), std::string::npos) << w;
  }
  fs::remove(tmp);
}

TEST(ModelLoader, WrongConfigIsAShapeError) {
  LoadOptions o = sd1_overrides();
  o.configs["unet"] = {{"cross_attention_dim", 64}};
  try {
    load_model((golden() / "models/sd1_single_file.safetensors").string(), o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("attn2.to_k.weight' has shape [32, 32], expected [32, 64]"), std::string::npos)
        << e.what();
  }
  o = sd1_overrides();
  o.config_paths["text_encoder_2"] = (golden() / "models/clip_proj").string();
  EXPECT_THROW(load_model((golden() / "models/sd1_single_file.safetensors").string(), o), Error);
  EXPECT_THROW(load_model("/nonexistent/model.safetensors"), Error);
}

}  // namespace
}  // namespace pigment
