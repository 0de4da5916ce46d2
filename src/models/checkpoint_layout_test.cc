#include "models/checkpoint_layout.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "io/safetensors.h"
#include "models/model_family.h"

namespace pigment {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

fs::path shared_dir() {
  const char* env = std::getenv("PIGMENT_SHARED_DIR");
  return env && *env ? fs::path(env) : fs::path("../shared");
}

json read(const fs::path& p) {
  std::ifstream f(p);
  EXPECT_TRUE(f) << p;
  return json::parse(f);
}

// Checks a layout against a golden key_map: every diffusers key is produced with the right file key and both
// shapes, and the layout names nothing else.
void check_against_key_map(const Layout& layout, const json& key_map, const std::string& component,
                           std::set<std::string>& file_keys_used) {
  std::map<std::string, const LayoutEntry*> by_name;
  for (const auto& e : layout) {
    EXPECT_TRUE(by_name.emplace(e.full_name(), &e).second) << "duplicate " << e.full_name();
    file_keys_used.insert(e.file_key);
  }
  int checked = 0;
  for (const auto& [name, v] : key_map.items()) {
    if (name.rfind(component + ".", 0) != 0) continue;
    ++checked;
    auto it = by_name.find(name);
    ASSERT_NE(it, by_name.end()) << "layout lacks " << name;
    const LayoutEntry& e = *it->second;
    if (v.is_null()) {
      // Not 1:1 in the file: OpenCLIP fused q/k/v, and the transposed projection.
      if (name.find("self_attn.") != std::string::npos) {
        EXPECT_EQ(e.transform, KeyTransform::FusedPart) << name;
        bool weight = name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
        EXPECT_NE(e.file_key.find(weight ? ".attn.in_proj_weight" : ".attn.in_proj_bias"), std::string::npos) << name;
        int want = name.find("q_proj") != std::string::npos ? 0 : name.find("k_proj") != std::string::npos ? 1 : 2;
        EXPECT_EQ(e.part, want) << name;
        EXPECT_EQ(e.file_shape[0], 3 * e.shape[0]) << name;
      } else {
        EXPECT_EQ(name, "text_encoder_2.text_projection.weight");
        EXPECT_EQ(e.transform, KeyTransform::Transpose);
        EXPECT_EQ(e.file_key, "conditioner.embedders.1.model.text_projection");
      }
      continue;
    }
    EXPECT_EQ(e.file_key, v["key"].get<std::string>()) << name;
    EXPECT_EQ(e.shape, v["shape_diffusers"].get<Shape>()) << name;
    EXPECT_EQ(e.file_shape, v["shape_single_file"].get<Shape>()) << name;
  }
  EXPECT_EQ(checked, int(layout.size())) << component << ": the layout has entries the key map does not list";
}

void check_file_covered(const fs::path& file, const std::set<std::string>& used) {
  auto st = SafeTensors::open(file.string());
  for (const auto& e : st.entries()) EXPECT_TRUE(used.count(e.name)) << file << ": no layout entry reads " << e.name;
}

TEST(CheckpointLayout, Sd1MatchesGoldenKeyMap) {
  fs::path g = shared_dir() / "golden";
  json km = read(g / "singlefile/sd1/case.json")["key_map"];
  ASSERT_EQ(km.size(), 926u);
  std::set<std::string> used;
  check_against_key_map(unet_layout(read(g / "models/unet_sd1/config.json")), km, "unet", used);
  check_against_key_map(vae_layout(read(g / "models/vae/config.json")), km, "vae", used);
  check_against_key_map(openai_clip_layout(read(g / "models/clip_sd1/config.json"), file_prefix::kSd1Clip), km,
                        "text_encoder", used);
  check_file_covered(g / "models/sd1_single_file.safetensors", used);
}

TEST(CheckpointLayout, SdxlMatchesGoldenKeyMap) {
  fs::path g = shared_dir() / "golden";
  json km = read(g / "singlefile/sdxl/case.json")["key_map"];
  ASSERT_EQ(km.size(), 945u);
  std::set<std::string> used;
  check_against_key_map(unet_layout(read(g / "models/unet_sdxl/config.json")), km, "unet", used);
  check_against_key_map(vae_layout(read(g / "models/vae/config.json")), km, "vae", used);
  check_against_key_map(openai_clip_layout(read(g / "models/clip_sd1/config.json"), file_prefix::kSdxlClip), km,
                        "text_encoder", used);
  check_against_key_map(
      open_clip_layout(read(g / "models/clip_proj/config.json"), file_prefix::kSdxlOpenClip, "text_encoder_2"), km,
      "text_encoder_2", used);
  check_file_covered(g / "models/sdxl_single_file_fp16.safetensors", used);
}

// Parameter counts of the published models (diffusers / transformers named_parameters()).
TEST(CheckpointLayout, FullSizeParameterCounts) {
  const auto& sd15 = family_preset("sd15");
  Layout u = unet_layout(sd15.unet);
  EXPECT_EQ(u.size(), 686u);
  EXPECT_EQ(param_count(layout_params(u)), 859520964);
  EXPECT_EQ(param_count(layout_params(vae_layout(sd15.vae))), 83653863);
  EXPECT_EQ(param_count(layout_params(openai_clip_layout(sd15.text_encoder, file_prefix::kSd1Clip))), 123060480);

  const auto& sd21 = family_preset("sd21");
  EXPECT_EQ(param_count(layout_params(unet_layout(sd21.unet))), 865910724);
  // The single file holds the whole ViT-H text tower; diffusers keeps 23 layers.
  EXPECT_EQ(param_count(layout_params(open_clip_layout(sd21.text_encoder_file, file_prefix::kSd2OpenClip))),
            354032640);
  EXPECT_EQ(param_count(layout_params(open_clip_layout(sd21.text_encoder, file_prefix::kSd2OpenClip))), 340387840);

  const auto& xl = family_preset("sdxl");
  EXPECT_EQ(param_count(layout_params(unet_layout(xl.unet))), 2567463684);
  EXPECT_EQ(param_count(layout_params(open_clip_layout(xl.text_encoder_2, file_prefix::kSdxlOpenClip))), 694659840);
}

TEST(CheckpointLayout, ApplyLayoutTransformsAndErrors) {
  json clip = {{"architectures", {"CLIPTextModelWithProjection"}},
               {"vocab_size", 5},
               {"hidden_size", 2},
               {"intermediate_size", 3},
               {"num_hidden_layers", 1},
               {"max_position_embeddings", 4},
               {"projection_dim", 2}};
  Layout l = open_clip_layout(clip, "m.");
  std::map<std::string, Tensor> file;
  for (const auto& [key, shape] : layout_file_tensors(l)) {
    Tensor t = Tensor::empty(shape, DType::F16);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<uint16_t>()[i] = uint16_t(i);
    file[key] = t;
  }
  TensorMap m = apply_layout(l, file, "test.safetensors");
  // q, k, v are consecutive row blocks of in_proj_weight [6, 2].
  Tensor k = m.at("text_model.encoder.layers.0.self_attn.k_proj.weight");
  EXPECT_EQ(k.shape(), (Shape{2, 2}));
  EXPECT_EQ(k.dtype(), DType::F16);
  EXPECT_EQ(k.data<uint16_t>()[0], 4);
  EXPECT_EQ(m.at("text_model.encoder.layers.0.self_attn.v_proj.bias").data<uint16_t>()[1], 5);
  // text_projection [hidden, proj] → weight [proj, hidden]
  Tensor p = m.at("text_projection.weight");
  EXPECT_EQ(p.data<uint16_t>()[1], 2);
  EXPECT_EQ(p.data<uint16_t>()[2], 1);

  file.erase("m.ln_final.weight");
  try {
    apply_layout(l, file, "test.safetensors");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("test.safetensors: missing tensor 'm.ln_final.weight'"), std::string::npos);
  }
  file["m.ln_final.weight"] = Tensor::zeros({3}, DType::F16);
  try {
    apply_layout(l, file, "test.safetensors");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has shape [3], expected [2]"), std::string::npos) << e.what();
  }
}

TEST(CheckpointLayout, UnsupportedConfigsNameTheKey) {
  json c = family_preset("sd15").unet;
  c["class_embed_type"] = "projection";
  EXPECT_THROW(unet_layout(c), Error);
  c = family_preset("sd15").unet;
  c["down_block_types"][0] = "SimpleCrossAttnDownBlock2D";
  try {
    unet_layout(c);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("SimpleCrossAttnDownBlock2D"), std::string::npos);
  }
}

}  // namespace
}  // namespace pigment
