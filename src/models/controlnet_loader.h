// Opens a ControlNet from any of its common forms: a diffusers folder (config.json + weights), a single file with
// diffusers names (controlnet_cond_embedding.*, controlnet_down_blocks.*), or an original ControlNet file
// (control_model.* : the UNet encoder in LDM naming plus input_hint_block, zero_convs and middle_block_out), renamed
// through the checkpoint_layout table. Single files carry no config: the base model's UNet config gives the
// architecture, and the conditioning embedding's widths are read from the tensors.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "models/controlnet.h"

namespace pigment {

ControlNet load_controlnet(const std::string& path, const nlohmann::json& base_unet_config);

}  // namespace pigment
