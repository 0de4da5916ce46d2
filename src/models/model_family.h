// The Stable Diffusion model families pigment knows: which family a checkpoint belongs to (from its keys and
// shapes), the diffusers configs of the full-size published models, and the configs of a single file inferred
// from its shapes (a single file records no config: what the shapes cannot tell comes from the family).
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace pigment {

enum class Family { SD1, SD2, SDXL };
const char* family_name(Family f);  // "sd1", "sd2", "sdxl"

// What the weights say about a checkpoint.
struct Detection {
  Family family = Family::SD1;
  bool inpaint = false;     // 9 UNet input channels (latent + mask + masked-image latent)
  int64_t in_channels = 0;  // 0 when the checkpoint has no UNet
  int64_t context_dim = 0;  // UNet cross-attention width, 0 when unknown
  bool single_file = true;  // LDM/SGM keys (else diffusers names)
  std::string evidence;     // which keys decided, for messages
};

// From tensor names and shapes: a single file (model.diffusion_model.*, cond_stage_model.*, conditioner.*) or
// diffusers names with component prefixes (unet.*, text_encoder.*) or a bare UNet state dict.
// sd1: OpenAI CLIP (cond_stage_model.transformer) or context 768; sd2: OpenCLIP (cond_stage_model.model) or
// context 1024; sdxl: label_emb / conditioner.embedders.1 or context 2048. Throws naming `source` otherwise.
Detection detect_family(const std::map<std::string, Tensor>& tensors, const std::string& source);
std::optional<Detection> try_detect_family(const std::map<std::string, Tensor>& tensors);
// "sd1", "sd2 (inpainting)", ...
std::string detection_str(const Detection& d);

// Prediction type ("epsilon" | "v_prediction" | "sample", x0). `user` ("", "v", "eps", "epsilon", "v_prediction",
// "sample", "x0") wins; then
// safetensors metadata (modelspec.prediction_type, modelspec.architecture ending in "-v", a global_step of 875000
// = SD2 512-base); then for SD2 the file name: a "v"/"vpred" token or "768" → v, "512"/"base"/"eps" → epsilon.
// SD2 inpainting defaults to epsilon, other SD2 files to v (as diffusers does without a global step); SD1 and
// SDXL to epsilon.
std::string infer_prediction_type(const Detection& d, const std::string& path,
                                  const std::map<std::string, std::string>& metadata, const std::string& user = "");
// Normalises a --prediction value; throws on anything else.
std::string normalize_prediction_type(const std::string& value);

// A full-size published model, as diffusers configs per component.
struct FamilyPreset {
  std::string name;  // sd15, sd21, sd21-v, sdxl
  std::string description;
  Family family;
  std::string prediction_type;
  std::string pipeline_class;       // model_index.json _class_name
  std::string modelspec_architecture;  // SAI model spec name, written into single files
  nlohmann::json unet, vae, text_encoder, text_encoder_2;  // text_encoder_2 null unless SDXL
  nlohmann::json scheduler;
  // The text tower as the original single file stores it. SD2: the whole OpenCLIP ViT-H text tower (24 layers and
  // text_projection), of which diffusers keeps 23 layers and no projection. Else equal to text_encoder.
  nlohmann::json text_encoder_file;
  // pigment's own families: the single file carries its configs and its tokenizer in its metadata
  // (kMetaConfigPrefix + component, kMetaTokenizerMerges), because the shapes and the family alone do not say them.
  bool self_describing = false;
};
// Metadata keys of a self-describing single file: "pigment.config.unet" (a diffusers config as JSON) etc., and the
// byte-level BPE merges (merges.txt text) of its tokenizer.
inline constexpr const char* kMetaConfigPrefix = "pigment.config.";
inline constexpr const char* kMetaTokenizerMerges = "pigment.tokenizer.merges";
inline constexpr const char* kMetaFamily = "pigment.family";
const FamilyPreset& family_preset(const std::string& name);  // throws listing the known names
std::vector<std::string> family_preset_names();
// The preset a detected family starts from (sd21-v for SD2 with v-prediction, sd21 for SD2 epsilon).
const FamilyPreset& default_preset(Family f, const std::string& prediction_type);

// Configs of a single file: the family preset, with everything its shapes tell (channels, levels, layers per
// block, attention per level, transformer depth, context width, in/out channels, text tower sizes). Head counts
// and norm groups are not in the shapes: they stay the family's (heads scaled as channels/64 for SD2/SDXL when the
// channels differ from the preset's, groups 32). Components absent from the file are null.
struct SingleFileConfigs {
  nlohmann::json unet, vae, text_encoder, text_encoder_2;
  std::string text_encoder_prefix, text_encoder_2_prefix;  // file prefixes (file_prefix::*)
  bool text_encoder_open_clip = false;                     // OpenCLIP layout (SD2) for text_encoder
};
SingleFileConfigs infer_single_file_configs(const std::map<std::string, Tensor>& tensors, const Detection& d,
                                            const std::string& prediction_type);

// Multi-line description for `pigment inspect` (family, prediction, per-component tensor and parameter counts);
// "family: unknown (...)" when the tensors are not a Stable Diffusion model.
std::string describe_checkpoint_family(const std::map<std::string, Tensor>& tensors, const std::string& path,
                                       const std::map<std::string, std::string>& metadata);

}  // namespace pigment
