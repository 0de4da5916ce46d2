// One entry point for every weights file pigment reads: safetensors, PyTorch zip checkpoints and diffusers
// folders all become a map of named tensors plus metadata. Model code never sees file formats.
#pragma once
#include <map>
#include <string>

#include "core/tensor.h"

namespace pigment {

struct Checkpoint {
  std::string path;
  std::string format;  // "safetensors", "pytorch", "diffusers"
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
  // diffusers folders: component → the text of its config.json ("unet", "vae", "text_encoder", ...), plus
  // "model_index" (model_index.json) and "scheduler" (scheduler_config.json) for a pipeline folder. A single
  // component folder (config.json beside its weights) has its config under "" and unprefixed tensor names.
  std::map<std::string, std::string> configs;
};

// Loads a .safetensors file, a PyTorch zip checkpoint (.ckpt/.pt/.bin; see io/pytorch_zip.h for the naming) or
// a diffusers folder (tensors named "<component>.<key>", e.g. "unet.conv_in.weight"). The format is detected
// from the content, not the extension. Throws pigment::Error with a one-line message naming the file and what
// is wrong.
Checkpoint load_checkpoint(const std::string& path);

}  // namespace pigment
