// Full-size random-weight checkpoints of the known families (pigment init): real key names and shapes, weights
// drawn from a fixed seed at a scale that keeps activations of order 1. Written tensor by tensor in bounded chunks,
// so memory stays small whatever the model size.
//
// Every value is a function of (seed, pigment name, element index) only, so the single-file and the diffusers
// outputs of one seed hold the same model, and a tensor's values do not depend on the order of writing.
// Rule: weights with 2+ dims ~ N(0, 1/fan_in) (fan_in = product of all but the first dim); embedding tables
// ~ N(0, 1); norm scales (1-D ".weight") = 1; biases = 0.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "core/dtype.h"
#include "models/checkpoint_layout.h"
#include "models/model_family.h"

namespace pigment {

struct InitOptions {
  std::string family = "sd15";  // a family preset name (model_family.h)
  DType dtype = DType::F16;     // F32, F16 or BF16
  uint64_t seed = 0;
  // Self-describing families (pigment-emoji): the tokenizer's BPE merges (merges.txt text) stored in the file; the
  // text encoder's vocabulary is sized to them. Empty: the CLIP vocabulary built into pigment.
  std::string tokenizer_merges;
};

// The preset of `options.family` as written: a self-describing family's text encoder sized to the merges.
FamilyPreset init_preset(const InitOptions& options);

struct InitReport {
  struct Part {
    int64_t tensors = 0, parameters = 0;
  };
  std::map<std::string, Part> components;  // by component name
  uint64_t bytes = 0;                      // data bytes written
};

// The original single-file layout (model.diffusion_model.*, first_stage_model.*, cond_stage_model.* or
// conditioner.embedders.*), with SAI model-spec metadata naming the architecture and prediction type.
InitReport write_random_single_file(const std::string& path, const InitOptions& options);
// A diffusers folder: model_index.json, scheduler/, and per component config.json + weights. The tokenizer folders
// are written by write_diffusers_tokenizers (pipelines/diffusers_folder.h).
InitReport write_random_diffusers(const std::string& dir, const InitOptions& options);

// Random weights for explicit layouts, under their file keys (single-file layout) or, with `diffusers_names`,
// under the pigment names of the layouts' components (without the component prefix: one component per file).
InitReport write_random_tensors(const std::string& path, const std::vector<Layout>& layouts, const InitOptions& options,
                                bool diffusers_names, const std::map<std::string, std::string>& metadata = {});

// The single-file layout of a preset, component by component (what write_random_single_file writes).
std::vector<Layout> preset_single_file_layouts(const std::string& family);

// The value of element `index` of pigment parameter `full_name` ("unet.conv_in.weight") with `shape`.
float random_init_value(uint64_t seed, const std::string& full_name, const Shape& shape, int64_t index);

}  // namespace pigment
