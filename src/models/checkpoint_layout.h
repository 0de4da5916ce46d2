// The one table between the original single-file layouts (LDM / SGM checkpoints: model.diffusion_model.*,
// first_stage_model.*, cond_stage_model.*, conditioner.embedders.*) and pigment's naming, which is the
// diffusers / transformers naming per component (unet.*, vae.*, text_encoder.*, text_encoder_2.*).
//
// The table is not a list of keys: it is generated from a component's diffusers config (block counts, layers
// per block, attention per level, transformer depth per level, ...), so it holds for any model of the family.
// The same walk gives every parameter's name and shape, which is what validation and random init need.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/weights.h"

namespace pigment {

// How a file tensor becomes a pigment tensor.
enum class KeyTransform : uint8_t {
  Same,       // same data, same shape
  Reshape,    // same data, other shape: VAE attention [C,C,1,1] conv weights ↔ [C,C] linears
  FusedPart,  // rows [part·n, (part+1)·n) of a fused tensor: OpenCLIP in_proj_weight/bias → q, k, v
  Transpose,  // 2-D transpose: OpenCLIP text_projection [hidden, proj] (x @ P) → text_projection.weight [proj, hidden]
};

struct LayoutEntry {
  std::string component;  // "unet", "vae", "text_encoder", "text_encoder_2"
  std::string name;       // diffusers / transformers name inside the component: "conv_in.weight"
  Shape shape;            // shape in pigment naming
  std::string file_key;   // key in the single file
  Shape file_shape;       // shape of the file tensor (the whole fused tensor for FusedPart)
  KeyTransform transform = KeyTransform::Same;
  int part = 0, parts = 1;  // FusedPart only

  std::string full_name() const { return component + "." + name; }
};
using Layout = std::vector<LayoutEntry>;

// Key prefixes of the single-file layouts.
namespace file_prefix {
inline constexpr const char* kUNet = "model.diffusion_model.";
inline constexpr const char* kVae = "first_stage_model.";
inline constexpr const char* kSd1Clip = "cond_stage_model.transformer.";      // OpenAI CLIP (SD1)
inline constexpr const char* kSd2OpenClip = "cond_stage_model.model.";        // OpenCLIP ViT-H (SD2)
inline constexpr const char* kSdxlClip = "conditioner.embedders.0.transformer.";  // CLIP-L (SDXL)
inline constexpr const char* kSdxlOpenClip = "conditioner.embedders.1.model.";    // OpenCLIP bigG (SDXL)
}  // namespace file_prefix

// UNet2DConditionModel ↔ LDM/SGM openaimodel UNet. Throws naming the config key for unsupported variants
// (class embeddings, scale-shift time conditioning, ...).
Layout unet_layout(const nlohmann::json& unet_config, const std::string& prefix = file_prefix::kUNet,
                   const std::string& component = "unet");
// AutoencoderKL ↔ LDM first-stage autoencoder.
Layout vae_layout(const nlohmann::json& vae_config, const std::string& prefix = file_prefix::kVae,
                  const std::string& component = "vae");
// CLIPTextModel(WithProjection) ↔ the OpenAI/transformers layout under `prefix` (names are the same).
// `prefix` should end with "text_model."'s parent, e.g. "cond_stage_model.transformer.".
Layout openai_clip_layout(const nlohmann::json& clip_config, const std::string& prefix,
                          const std::string& component = "text_encoder");
// CLIPTextModel(WithProjection) ↔ OpenCLIP text tower (resblocks, fused in_proj, text_projection as x @ P).
Layout open_clip_layout(const nlohmann::json& clip_config, const std::string& prefix,
                        const std::string& component = "text_encoder");

// Every parameter of a component in diffusers / transformers naming (module order), from its config.
struct ParamSpec {
  std::string name;
  Shape shape;
};
std::vector<ParamSpec> layout_params(const Layout& layout);
int64_t param_count(const std::vector<ParamSpec>& params);

// Tensors of one component, renamed: `file` holds the single file's tensors (any extra keys are ignored).
// Views where possible (Same, Reshape, FusedPart), a copy for Transpose; dtypes stay as in the file.
// A missing key or a wrong shape throws naming `source`, the file key and the pigment name.
TensorMap apply_layout(const Layout& layout, const std::map<std::string, Tensor>& file, const std::string& source);

// The single-file tensors a layout reads: key → shape, in first-use order (fused tensors appear once).
std::vector<std::pair<std::string, Shape>> layout_file_tensors(const Layout& layout);

// A byte-level 2-D transpose that keeps the dtype ([R, C] → [C, R]).
Tensor transpose2d(const Tensor& t);

}  // namespace pigment
