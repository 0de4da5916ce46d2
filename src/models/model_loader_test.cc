#include "models/model_loader.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "models/checkpoint_layout.h"
#include "models/random_init.h"

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

TEST(ModelLoader, LegacyClipKeysWithoutTextModel) {
  Checkpoint ck = load_checkpoint((golden() / "models/sd1_single_file.safetensors").string());
  NamedTensors renamed;
  const std::string p = "cond_stage_model.transformer.text_model.";
  for (const auto& [k, t] : ck.tensors)
    renamed.emplace_back(k.rfind(p, 0) == 0 ? "cond_stage_model.transformer." + k.substr(p.size()) : k, t);
  fs::path tmp = fs::temp_directory_path() / ("pigment_loader_legacy_" + std::to_string(::getpid()) + ".safetensors");
  write_safetensors(tmp.string(), renamed);
  LoadedModel m = load_model(tmp.string(), sd1_overrides());
  fs::remove(tmp);
  EXPECT_TRUE(m.unused_keys.empty());
  EXPECT_TRUE(m.component("text_encoder").weights().has("text_model.final_layer_norm.weight"));
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

nlohmann::json read_json(const fs::path& p) {
  std::ifstream f(p);
  return nlohmann::json::parse(f);
}

fs::path temp_path(const std::string& name) {
  return fs::temp_directory_path() / ("pigment_loader_test_" + std::to_string(::getpid()) + "_" + name);
}

// SD2 single files hold the whole OpenCLIP text tower; diffusers (and pigment) keep all but its last layer and no
// projection. Without a hint in the name or metadata an SD2 file is v-prediction, as diffusers assumes.
TEST(ModelLoader, Sd2SingleFileDropsTheLastTextLayer) {
  nlohmann::json unet = read_json(golden() / "models/unet_sd2/config.json"),
                 vae = read_json(golden() / "models/vae/config.json"),
                 te_file = read_json(golden() / "models/clip_proj/config.json");  // 5 layers + projection
  fs::path file = temp_path("sd2.safetensors");
  InitOptions o;
  o.dtype = DType::F32;
  write_random_tensors(file.string(),
                       {unet_layout(unet), vae_layout(vae), open_clip_layout(te_file, file_prefix::kSd2OpenClip)}, o,
                       false);
  LoadOptions lo;
  lo.configs = {{"unet", unet}, {"vae", vae}, {"text_encoder", {{"num_attention_heads", 4}}}};
  LoadedModel m = load_model(file.string(), lo);
  fs::remove(file);
  EXPECT_EQ(m.family(), Family::SD2);
  EXPECT_EQ(m.prediction_type, "v_prediction");
  EXPECT_EQ(m.scheduler_config["prediction_type"], "v_prediction");
  const auto& te = m.component("text_encoder");
  EXPECT_EQ(te.config["num_hidden_layers"], 4);
  EXPECT_EQ(te.config["hidden_act"], "gelu");
  EXPECT_EQ(te.config["architectures"], nlohmann::json({"CLIPTextModel"}));
  EXPECT_TRUE(te.weights().has("text_model.encoder.layers.3.self_attn.q_proj.weight"));
  EXPECT_FALSE(te.weights().has("text_model.encoder.layers.4.self_attn.q_proj.weight"));
  EXPECT_FALSE(te.weights().has("text_projection.weight"));
  // The dropped layer and the projection are reported, not silently used.
  EXPECT_EQ(m.unused_keys.size(), 12u + 1u);
}

// A diffusers pipeline folder: model_index.json, one folder per component, the scheduler's prediction type.
TEST(ModelLoader, DiffusersPipelineFolder) {
  fs::path dir = temp_path("pipe");
  const std::pair<const char*, const char*> parts[] = {{"unet", "unet_sd1"}, {"vae", "vae"}, {"text_encoder", "clip_sd1"}};
  InitOptions o;
  o.dtype = DType::F16;
  for (const auto& [name, src] : parts) {
    nlohmann::json config = read_json(golden() / "models" / src / "config.json");
    fs::create_directories(dir / name);
    std::ofstream(dir / name / "config.json") << config.dump();
    Layout l = std::string(name) == "unet" ? unet_layout(config, "", name)
               : std::string(name) == "vae" ? vae_layout(config, "", name)
                                            : openai_clip_layout(config, "", name);
    const char* file = std::string(name) == "text_encoder" ? "model.safetensors" : "diffusion_pytorch_model.safetensors";
    write_random_tensors((dir / name / file).string(), {l}, o, true);
  }
  fs::create_directories(dir / "scheduler");
  std::ofstream(dir / "scheduler" / "scheduler_config.json") << R"({"_class_name": "DDIMScheduler", "prediction_type": "v_prediction"})";
  std::ofstream(dir / "model_index.json") << R"({"_class_name": "StableDiffusionPipeline"})";
  LoadedModel m = load_model(dir.string());
  EXPECT_EQ(m.format, "diffusers");
  EXPECT_EQ(m.family(), Family::SD1);  // quick_gelu text encoder, convolutional projections
  EXPECT_EQ(m.prediction_type, "v_prediction");
  EXPECT_EQ(m.scheduler_config["_class_name"], "DDIMScheduler");
  EXPECT_EQ(m.components.size(), 3u);
  EXPECT_EQ(m.component("vae").tensors->at("encoder.mid_block.attentions.0.to_q.weight").dtype(), DType::F16);
  // A weights file that does not match its config names the file and the tensor.
  nlohmann::json bad = read_json(golden() / "models/unet_sd1/config.json");
  bad["cross_attention_dim"] = 48;
  std::ofstream(dir / "unet" / "config.json") << bad.dump();
  try {
    load_model(dir.string());
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    std::string w = e.what();
    EXPECT_NE(w.find("unet/diffusion_pytorch_model.safetensors: tensor '"), std::string::npos) << w;
    EXPECT_NE(w.find("attn2.to_k.weight' has shape [32, 32], expected [32, 48]"), std::string::npos) << w;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace pigment
