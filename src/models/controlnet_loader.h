// Opens a ControlNet from any of its common forms: a diffusers folder (config.json + weights), a single file with
// diffusers names (controlnet_cond_embedding.*, controlnet_down_blocks.*), or an original ControlNet file
// (control_model.* : the UNet encoder in LDM naming plus input_hint_block, zero_convs and middle_block_out; the
// control_v11 safetensors have the same keys without the prefix), renamed through the checkpoint_layout table. Single files carry no config: the base model's UNet config gives the
// architecture, and the conditioning embedding's widths are read from the tensors.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/dtype.h"

#include "models/checkpoint_layout.h"
#include "models/controlnet.h"

namespace pigment {

ControlNet load_controlnet(const std::string& path, const nlohmann::json& base_unet_config);

// What load_controlnet builds the ControlNet from: its diffusers config and its tensors by diffusers name (in the
// file's dtype).
struct ControlNetFile {
  nlohmann::json config;
  std::shared_ptr<const TensorMap> tensors;
};
ControlNetFile read_controlnet(const std::string& path, const nlohmann::json& base_unet_config);

// The diffusers config (ControlNetModel) of a ControlNet over a base UNet config, as ControlNetModel.from_unet
// makes it: the UNet's encoder-half fields, no up blocks, the conditioning embedding's input channels and widths.
nlohmann::json controlnet_config_from_unet(const nlohmann::json& base_unet_config, int64_t conditioning_channels = 3,
                                           const std::vector<int64_t>& embedding_widths = {16, 32, 96, 256});

// Writes a ControlNet's tensors (diffusers names, every tensor of controlnet_layout(base_unet_config)) in `dtype`
// (F32, F16 or BF16), atomically. Original: one .safetensors file with the control_model.* keys of
// controlnet_layout (what lllyasviel's scripts, A1111's extension, ComfyUI and load_controlnet read; the
// conditioning embedding must have lllyasviel's widths 16, 32, 96, 256). Diffusers: the folder `path` with
// config.json (controlnet_config_from_unet) and diffusion_pytorch_model.safetensors, replacing an earlier folder.
enum class ControlNetFormat { Original, Diffusers };
void write_controlnet(const std::string& path, ControlNetFormat format, const nlohmann::json& base_unet_config,
                      const std::map<std::string, Tensor>& tensors, DType dtype,
                      const std::map<std::string, std::string>& metadata = {});

// The original single-file layout of a ControlNet for a base UNet config (component "controlnet", diffusers names):
// the UNet's encoder half under `prefix` (time_embed, label_emb for SDXL, input_blocks, middle_block), then
// input_hint_block with lllyasviel's widths 16, 16, 32, 32, 96, 96, 256, one zero_convs.N.0 per skip connection and
// middle_block_out.0. What pigment init writes for a random full-size ControlNet.
Layout controlnet_layout(const nlohmann::json& base_unet_config, const std::string& prefix = "control_model.",
                         int64_t conditioning_channels = 3);

}  // namespace pigment
