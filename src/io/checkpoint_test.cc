#include "io/checkpoint.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "io/pickle_test_writer.h"
#include "io/safetensors.h"

namespace pigment {
namespace {

namespace fs = std::filesystem;
using testing::PickleWriter;

std::string golden(const std::string& rel) {
  const char* s = std::getenv("PIGMENT_SHARED_DIR");
  return std::string(s ? s : "../shared") + "/golden/" + rel;
}

void write(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f << bytes;
}

std::string error_of(const std::string& path) {
  try {
    load_checkpoint(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("pigment_ckpt_test_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(CheckpointTest, DetectsFormatsByContent) {
  auto st = load_checkpoint(golden("ti/embeddings/other-style.safetensors"));
  EXPECT_EQ(st.format, "safetensors");
  EXPECT_EQ(st.tensors.at("emb_params").shape(), (Shape{4, 32}));
  auto pt = load_checkpoint(golden("ti/embeddings/my-concept.pt"));
  EXPECT_EQ(pt.format, "pytorch");
  EXPECT_EQ(pt.tensors.at("string_to_param.*").shape(), (Shape{3, 32}));
  EXPECT_EQ(pt.metadata.at("name"), "my-concept");
  // A safetensors header of 640 bytes starts with 0x80 0x02, like a pickle: still safetensors.
  std::string header = R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  header.resize(640, ' ');
  std::string bytes("\x80\x02\0\0\0\0\0\0", 8);
  write(dir_ / "pickle_like.safetensors", bytes + header + std::string(4, '\0'));
  EXPECT_EQ(load_checkpoint((dir_ / "pickle_like.safetensors").string()).tensors.size(), 1u);
  // A .ckpt that is really safetensors still loads.
  fs::copy_file(golden("ti/embeddings/other-style.safetensors"), dir_ / "renamed.ckpt");
  EXPECT_EQ(load_checkpoint((dir_ / "renamed.ckpt").string()).format, "safetensors");
}

TEST_F(CheckpointTest, SingleComponentFolder) {
  auto c = load_checkpoint(golden("models/unet_sd1"));
  EXPECT_EQ(c.format, "diffusers");
  EXPECT_TRUE(c.tensors.count("conv_in.weight"));
  ASSERT_TRUE(c.configs.count(""));
  EXPECT_NE(c.configs.at("").find("UNet2DConditionModel"), std::string::npos);
  auto clip = load_checkpoint(golden("models/clip_sd1"));  // model.safetensors
  EXPECT_TRUE(clip.tensors.count("text_model.embeddings.token_embedding.weight"));
}

TEST_F(CheckpointTest, PipelineFolderWithVariantsShardsAndBin) {
  Tensor a = Tensor::from_vector({2}, {1, 2});
  Tensor b = Tensor::from_vector({1}, {3});
  write(dir_ / "model_index.json",
        R"({"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"],
            "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"], "safety_checker": [null, null],
            "scheduler": ["diffusers", "PNDMScheduler"], "tokenizer": ["transformers", "CLIPTokenizer"]})");
  // unet: full precision and an fp16 variant; the full one wins.
  write(dir_ / "unet/config.json", R"({"_class_name": "UNet2DConditionModel"})");
  write_safetensors((dir_ / "unet/diffusion_pytorch_model.safetensors").string(), {{"conv_in.weight", a}});
  write_safetensors((dir_ / "unet/diffusion_pytorch_model.fp16.safetensors").string(),
                    {{"conv_in.weight", a.to(DType::F16)}});
  // vae: only an fp16 variant.
  write(dir_ / "vae/config.json", "{}");
  write_safetensors((dir_ / "vae/diffusion_pytorch_model.fp16.safetensors").string(),
                    {{"decoder.w", b.to(DType::F16)}});
  // text_encoder: sharded safetensors.
  write(dir_ / "text_encoder/config.json", "{}");
  write_safetensors((dir_ / "text_encoder/model-00001-of-00002.safetensors").string(), {{"x", a}});
  write_safetensors((dir_ / "text_encoder/model-00002-of-00002.safetensors").string(), {{"y", b}});
  write(dir_ / "text_encoder/model.safetensors.index.json",
        R"({"metadata": {}, "weight_map": {"x": "model-00001-of-00002.safetensors",
                                           "y": "model-00002-of-00002.safetensors"}})");
  // text_encoder_2: a PyTorch .bin.
  PickleWriter w;
  w.proto().ordered_dict().str("text_projection.weight").tensor("FloatStorage", "0", 2, 0, {2}, {1}).setitem().stop();
  write(dir_ / "text_encoder_2/config.json", "{}");
  write(dir_ / "text_encoder_2/pytorch_model.bin",
        testing::make_torch_zip(w.bytes(), {{"0", testing::raw_bytes(std::vector<float>{5, 6})}}));
  write(dir_ / "scheduler/scheduler_config.json", R"({"_class_name": "PNDMScheduler"})");
  write(dir_ / "tokenizer/vocab.json", "{}");

  auto c = load_checkpoint(dir_.string());
  EXPECT_EQ(c.format, "diffusers");
  EXPECT_EQ(c.tensors.size(), 5u);
  EXPECT_EQ(c.tensors.at("unet.conv_in.weight").dtype(), DType::F32);
  EXPECT_EQ(c.tensors.at("vae.decoder.w").dtype(), DType::F16);
  EXPECT_EQ(c.tensors.at("text_encoder.x").to_vector(), (std::vector<float>{1, 2}));
  EXPECT_EQ(c.tensors.at("text_encoder.y").to_vector(), (std::vector<float>{3}));
  EXPECT_EQ(c.tensors.at("text_encoder_2.text_projection.weight").to_vector(), (std::vector<float>{5, 6}));
  EXPECT_NE(c.configs.at("unet").find("UNet2DConditionModel"), std::string::npos);
  EXPECT_NE(c.configs.at("scheduler").find("PNDMScheduler"), std::string::npos);
  EXPECT_NE(c.configs.at("model_index").find("StableDiffusionPipeline"), std::string::npos);
  EXPECT_EQ(c.configs.count("tokenizer"), 0u);

  // A shard that lacks a tensor the index promises, and a component with a config but no weights.
  write(dir_ / "text_encoder/model.safetensors.index.json",
        R"({"weight_map": {"x": "model-00001-of-00002.safetensors", "z": "model-00001-of-00002.safetensors"}})");
  EXPECT_NE(error_of(dir_.string()).find("tensor 'z' is not in shard"), std::string::npos);
  write(dir_ / "text_encoder/model.safetensors.index.json", R"({"weight_map": {"x": "../../etc/passwd"}})");
  EXPECT_NE(error_of(dir_.string()).find("is not a file in this folder"), std::string::npos);
  fs::remove_all(dir_ / "text_encoder");
  fs::remove(dir_ / "vae/diffusion_pytorch_model.fp16.safetensors");
  EXPECT_NE(error_of(dir_.string()).find("has config.json but no weights"), std::string::npos);
}

TEST_F(CheckpointTest, ErrorsNameTheFile) {
  EXPECT_NE(error_of((dir_ / "nope.ckpt").string()).find("nope.ckpt: no such file"), std::string::npos);
  EXPECT_NE(error_of(dir_.string()).find("not a diffusers folder"), std::string::npos);
  write(dir_ / "junk.bin", "hello world, not a checkpoint");
  EXPECT_NE(error_of((dir_ / "junk.bin").string()).find("junk.bin: unrecognised format"), std::string::npos);
  write(dir_ / "empty.safetensors", "");
  EXPECT_NE(error_of((dir_ / "empty.safetensors").string()).find("empty.safetensors: not a safetensors file"),
            std::string::npos);
  write(dir_ / "m/model_index.json", "{not json");
  EXPECT_NE(error_of((dir_ / "m").string()).find("invalid JSON"), std::string::npos);
  write(dir_ / "m/model_index.json", R"({"unet": ["diffusers", "UNet2DConditionModel"]})");
  EXPECT_NE(error_of((dir_ / "m").string()).find("holds no component weights"), std::string::npos);
}

}  // namespace
}  // namespace pigment
