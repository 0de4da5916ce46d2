// Opens a ControlNet from any of its common forms: a diffusers folder (config.json + weights), a single file with
// diffusers names (controlnet_cond_embedding.*, controlnet_down_blocks.*), or an original ControlNet file
// (control_model.* : the UNet encoder in LDM naming plus input_hint_block, zero_convs and middle_block_out; the
// control_v11 safetensors have the same keys without the prefix), renamed through the checkpoint_layout table. Single files carry no config: the base model's UNet config gives the
// architecture, and the conditioning embedding's widths are read from the tensors.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "models/checkpoint_layout.h"
#include "models/controlnet.h"

namespace pigment {

ControlNet load_controlnet(const std::string& path, const nlohmann::json& base_unet_config);

// The original single-file layout of a ControlNet for a base UNet config (component "controlnet", diffusers names):
// the UNet's encoder half under `prefix` (time_embed, label_emb for SDXL, input_blocks, middle_block), then
// input_hint_block with lllyasviel's widths 16, 16, 32, 32, 96, 96, 256, one zero_convs.N.0 per skip connection and
// middle_block_out.0. What pigment init writes for a random full-size ControlNet.
Layout controlnet_layout(const nlohmann::json& base_unet_config, const std::string& prefix = "control_model.",
                         int64_t conditioning_channels = 3);

}  // namespace pigment
