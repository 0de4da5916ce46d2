// Opens any Stable Diffusion checkpoint — a single .safetensors / .ckpt file in the original LDM/SGM layout, or a
// diffusers folder (model_index.json + one folder per component, or one component folder with its config.json) —
// and gives per component the tensors under diffusers / transformers names (views into the file, in the file's
// dtypes) and the component's diffusers config. Model code never sees file layouts.
#pragma once
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/model_config.h"
#include "models/model_family.h"
#include "models/weights.h"

namespace pigment {

struct LoadOptions {
  // "" (infer), "v" / "v_prediction", "eps" / "epsilon".
  std::string prediction;
  // Per-component config overrides, e.g. {"unet": "models/unet_sd1/config.json"} (a file, or a folder holding
  // config.json). The keys an override has replace the inferred ones; a single file records no head counts and
  // no norm groups, so that is how to give them.
  std::map<std::string, std::string> config_paths;
  std::map<std::string, nlohmann::json> configs;  // the same, as JSON (applied after config_paths)
};

struct ModelComponent {
  std::string name;    // unet, vae, text_encoder, text_encoder_2
  std::string source;  // names the file and component in errors
  nlohmann::json config;
  std::shared_ptr<const TensorMap> tensors;  // names inside the component: "conv_in.weight"

  Weights weights() const { return Weights(tensors, source); }
  ModelConfig model_config() const { return ModelConfig(config, source + " config"); }
  int64_t parameter_count() const;
};

struct LoadedModel {
  std::string path;
  std::string format;  // "single-file" or "diffusers"
  Detection detection;
  std::string prediction_type;  // epsilon | v_prediction
  nlohmann::json scheduler_config;  // the folder's scheduler config, or the family's, with prediction_type set
  std::map<std::string, ModelComponent> components;
  std::vector<std::string> unused_keys;  // single-file keys no component reads (EMA copies, buffers, ...)
  // A self-describing file (pigment's own families, model_family.h): its preset name and its tokenizer's BPE merges
  // (merges.txt text); empty otherwise.
  std::string preset_name;
  std::string tokenizer_merges;

  Family family() const { return detection.family; }
  bool has(const std::string& component) const { return components.count(component) != 0; }
  // Throws naming the path and the components present.
  const ModelComponent& component(const std::string& name) const;
};

// Missing tensors and wrong shapes throw naming the file and the tensor.
LoadedModel load_model(const std::string& path, const LoadOptions& options = {});

}  // namespace pigment
