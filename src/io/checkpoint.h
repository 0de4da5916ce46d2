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
};

// Throws pigment::Error with a one-line message naming the file and what is wrong.
Checkpoint load_checkpoint(const std::string& path);

}  // namespace pigment
