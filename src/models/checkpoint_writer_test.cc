#include "models/checkpoint_writer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>

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

struct TempFile {
  fs::path path;
  explicit TempFile(const std::string& name)
      : path(fs::temp_directory_path() / ("pigment_writer_" + std::to_string(::getpid()) + "_" + name)) {}
  ~TempFile() { fs::remove(path); }
};

// Every tensor of every component of `a` is in `b` with the same bits, and the configs are the same.
void expect_same_components(const LoadedModel& a, const LoadedModel& b) {
  ASSERT_EQ(a.components.size(), b.components.size());
  for (const auto& [name, c] : a.components) {
    ASSERT_TRUE(b.has(name)) << name;
    const TensorMap& ta = *c.tensors;
    const TensorMap& tb = *b.component(name).tensors;
    EXPECT_EQ(ta.size(), tb.size()) << name;
    EXPECT_EQ(c.config, b.component(name).config) << name;
    int mismatches = 0;
    for (const auto& [k, t] : ta) {
      auto it = tb.find(k);
      if (it == tb.end()) {
        ADD_FAILURE() << name << "." << k << " missing after the round trip";
        continue;
      }
      if (!same_bits(t, it->second) && ++mismatches <= 5) ADD_FAILURE() << name << "." << k << " differs";
    }
    EXPECT_EQ(mismatches, 0) << name;
  }
}

LoadOptions sd1_overrides() {
  LoadOptions o;
  o.config_paths = {{"unet", (golden() / "models/unet_sd1").string()},
                    {"vae", (golden() / "models/vae").string()},
                    {"text_encoder", (golden() / "models/clip_sd1").string()}};
  return o;
}

TEST(CheckpointWriter, Sd1RoundTripIsBitExactInFloat32) {
  const std::string src = (golden() / "models/sd1_single_file.safetensors").string();
  LoadedModel m = load_model(src, sd1_overrides());
  TempFile out("sd1.safetensors");
  SingleFileWriteOptions o;
  o.dtype = DType::F32;
  o.metadata = modelspec_metadata(m.family(), m.prediction_type, "round trip");
  SingleFileWriteReport r = write_single_file_checkpoint(out.path.string(), m.family(), m.components, o);
  LoadedModel back = load_model(out.path.string(), sd1_overrides());
  EXPECT_EQ(back.family(), Family::SD1);
  EXPECT_EQ(back.prediction_type, m.prediction_type);
  EXPECT_TRUE(back.unused_keys.empty());
  expect_same_components(m, back);
  // The file itself equals the original, key for key.
  Checkpoint a = load_checkpoint(src), b = load_checkpoint(out.path.string());
  EXPECT_EQ(int64_t(b.tensors.size()), r.tensors);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& [k, t] : a.tensors) {
    ASSERT_TRUE(b.tensors.count(k)) << k;
    EXPECT_TRUE(same_bits(t, b.tensors.at(k))) << k;
  }
  EXPECT_EQ(b.metadata.at("modelspec.architecture"), "stable-diffusion-v1");
}

TEST(CheckpointWriter, HalfPrecisionsRoundToNearest) {
  LoadedModel m = load_model((golden() / "models/sd1_single_file.safetensors").string(), sd1_overrides());
  for (DType dt : {DType::F16, DType::BF16}) {
    TempFile out("sd1_half.safetensors");
    SingleFileWriteOptions o;
    o.dtype = dt;
    write_single_file_checkpoint(out.path.string(), m.family(), m.components, o);
    LoadedModel back = load_model(out.path.string(), sd1_overrides());
    for (const auto& [name, c] : m.components)
      for (const auto& [k, t] : *c.tensors) {
        const Tensor& got = back.component(name).tensors->at(k);
        ASSERT_EQ(got.dtype(), dt) << k;
        ASSERT_TRUE(same_bits(got, t.to(dt))) << name << "." << k << " in " << dtype_name(dt);
      }
  }
}

// SDXL: OpenCLIP bigG's fused in_proj (q, k, v stacked) and transposed text_projection are rebuilt.
TEST(CheckpointWriter, SdxlRoundTripRebuildsFusedAndTransposedTensors) {
  const std::string src = (golden() / "models/sdxl_single_file_fp16.safetensors").string();
  LoadOptions lo;
  lo.config_paths = {{"unet", (golden() / "models/unet_sdxl").string()},
                     {"vae", (golden() / "models/vae").string()},
                     {"text_encoder", (golden() / "models/clip_sd1").string()},
                     {"text_encoder_2", (golden() / "models/clip_proj").string()}};
  LoadedModel m = load_model(src, lo);
  ASSERT_EQ(m.family(), Family::SDXL);
  TempFile out("sdxl.safetensors");
  SingleFileWriteOptions o;
  o.dtype = DType::F16;  // the file's own dtype: the same bits
  write_single_file_checkpoint(out.path.string(), m.family(), m.components, o);
  LoadedModel back = load_model(out.path.string(), lo);
  EXPECT_EQ(back.family(), Family::SDXL);
  expect_same_components(m, back);
  Checkpoint a = load_checkpoint(src), b = load_checkpoint(out.path.string());
  for (const auto& k : m.unused_keys) a.tensors.erase(k);  // buffers no component reads are not written
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& [k, t] : a.tensors) {
    ASSERT_TRUE(b.tensors.count(k)) << k;
    EXPECT_TRUE(same_bits(t, b.tensors.at(k))) << k;
  }
}

// Conversions are streamed in chunks through a reused buffer, fused tensors part after part and the transposed
// projection on its own: the bytes are those of converting each whole file tensor with Tensor::to, in every direction
// (f16 → f32, f16 → bf16 through f32, f32 → f16), also for a tensor of several chunks.
TEST(CheckpointWriter, ConvertedTensorsAreStreamedWithTheBytesOfAWholeConversion) {
  const std::string src = (golden() / "models/sdxl_single_file_fp16.safetensors").string();
  LoadOptions lo;
  lo.config_paths = {{"unet", (golden() / "models/unet_sdxl").string()},
                     {"vae", (golden() / "models/vae").string()},
                     {"text_encoder", (golden() / "models/clip_sd1").string()},
                     {"text_encoder_2", (golden() / "models/clip_proj").string()}};
  LoadedModel m = load_model(src, lo);
  Checkpoint a = load_checkpoint(src);
  for (const auto& k : m.unused_keys) a.tensors.erase(k);
  const int64_t big = (int64_t(1) << 20) * 2 + 12345;  // more than two of the writer's chunks
  std::vector<float> values(static_cast<size_t>(big));
  for (int64_t i = 0; i < big; ++i) values[size_t(i)] = std::sin(0.001f * float(i)) * (1.f + float(i % 977));
  const Tensor big_f32 = Tensor::from_vector({big}, values), big_f16 = big_f32.to(DType::F16);
  for (DType dt : {DType::F32, DType::BF16}) {
    TempFile out("sdxl_converted.safetensors");
    SingleFileWriteOptions o;
    o.dtype = dt;
    o.extra = {{"extra.big_f32", big_f32}, {"extra.big_f16", big_f16}};
    write_single_file_checkpoint(out.path.string(), m.family(), m.components, o);
    Checkpoint b = load_checkpoint(out.path.string());
    ASSERT_EQ(a.tensors.size() + 2, b.tensors.size()) << dtype_name(dt);
    for (const auto& [k, t] : a.tensors) {
      ASSERT_TRUE(b.tensors.count(k)) << k;
      EXPECT_TRUE(same_bits(t.to(dt), b.tensors.at(k))) << k << " in " << dtype_name(dt);
    }
    EXPECT_TRUE(same_bits(big_f32.to(dt), b.tensors.at("extra.big_f32"))) << dtype_name(dt);
    EXPECT_TRUE(same_bits(big_f16.to(dt), b.tensors.at("extra.big_f16"))) << dtype_name(dt);
  }
  // float32 sources (a trained copy) into f16 over several chunks
  TempFile out("sdxl_f16.safetensors");
  SingleFileWriteOptions o;
  o.extra = {{"extra.big_f32", big_f32}};
  write_single_file_checkpoint(out.path.string(), m.family(), m.components, o);
  EXPECT_TRUE(same_bits(big_f16, load_checkpoint(out.path.string()).tensors.at("extra.big_f32")));
}

// An SD2-style file as `pigment init` writes one (random_init), at a tiny size: the OpenCLIP text tower has one
// layer more than the loader keeps.
TEST(CheckpointWriter, Sd2KeepsTheDroppedTextLayer) {
  nlohmann::json clip = {{"architectures", {"CLIPTextModel"}}, {"hidden_size", 32}, {"intermediate_size", 37},
                         {"num_hidden_layers", 3},             {"num_attention_heads", 4}, {"hidden_act", "gelu"},
                         {"vocab_size", 49408},                {"max_position_embeddings", 77}};
  LoadOptions lo;
  lo.config_paths = {{"unet", (golden() / "models/unet_sd2").string()}, {"vae", (golden() / "models/vae").string()}};
  LoadedModel unet_only = load_model((golden() / "models/unet_sd2").string());
  LoadedModel vae_only = load_model((golden() / "models/vae").string());
  InitOptions io;
  io.dtype = DType::F32;
  io.seed = 5;
  TempFile src("sd2_init.safetensors");
  write_random_tensors(src.path.string(),
                       {unet_layout(unet_only.component("unet").config), vae_layout(vae_only.component("vae").config),
                        open_clip_layout(clip, file_prefix::kSd2OpenClip)},
                       io, false, modelspec_metadata(Family::SD2, "epsilon", "tiny sd2"));
  LoadedModel m = load_model(src.path.string(), lo);
  ASSERT_EQ(m.family(), Family::SD2);
  ASSERT_EQ(m.component("text_encoder").config["num_hidden_layers"], 2);
  EXPECT_FALSE(m.unused_keys.empty());  // the third layer

  // Without the base file's extra tensors: an identity last layer, and the loaded model is the same.
  TempFile out("sd2.safetensors");
  SingleFileWriteOptions o;
  o.dtype = DType::F32;
  o.metadata = modelspec_metadata(m.family(), m.prediction_type, "tiny sd2");
  write_single_file_checkpoint(out.path.string(), m.family(), m.components, o);
  LoadedModel back = load_model(out.path.string(), lo);
  EXPECT_EQ(back.prediction_type, "epsilon");
  expect_same_components(m, back);
  Checkpoint b = load_checkpoint(out.path.string());
  const std::string last = std::string(file_prefix::kSd2OpenClip) + "transformer.resblocks.2.";
  EXPECT_TRUE(same_bits(b.tensors.at(last + "attn.out_proj.weight"), Tensor::zeros({32, 32})));
  EXPECT_TRUE(same_bits(b.tensors.at(last + "ln_1.weight"), Tensor::full({32}, 1.f)));

  // With them: the original file again, key for key.
  Checkpoint a = load_checkpoint(src.path.string());
  for (const auto& k : m.unused_keys) o.extra[k] = a.tensors.at(k);
  write_single_file_checkpoint(out.path.string(), m.family(), m.components, o);
  b = load_checkpoint(out.path.string());
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& [k, t] : a.tensors) {
    ASSERT_TRUE(b.tensors.count(k)) << k;
    EXPECT_TRUE(same_bits(t, b.tensors.at(k))) << k;
  }
}

TEST(CheckpointWriter, MissingTensorNamesComponentAndTensor) {
  LoadedModel m = load_model((golden() / "models/sd1_single_file.safetensors").string(), sd1_overrides());
  auto unet = std::make_shared<TensorMap>(*m.component("unet").tensors);
  unet->erase("conv_out.weight");
  m.components["unet"].tensors = unet;
  TempFile out("missing.safetensors");
  try {
    write_single_file_checkpoint(out.path.string(), m.family(), m.components);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("conv_out.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("model.diffusion_model.out.2.weight"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(out.path));
  EXPECT_FALSE(fs::exists(out.path.string() + ".tmp"));
}

}  // namespace
}  // namespace pigment
