// The tiny SD1 pipeline of the golden models (unet_sd1, clip_sd1, vae, the sd1 scheduler, the CLIP tokenizer), as
// the adapter runners (lora, controlnet pipeline) need it.
#pragma once
#include <fstream>
#include <memory>

#include "golden.h"
#include "pipelines/stable_diffusion.h"
#include "text/tokenizer_files.h"

namespace pigment::golden {

inline ModelComponent golden_component(const fs::path& dir, const std::string& name) {
  // A folder with one config.json is a single-component diffusers folder to the model loader.
  LoadedModel m = load_model(dir.string());
  ModelComponent c = m.components.begin()->second;
  c.name = name;
  return c;
}

// models/pipelines.json: which folder of models/ holds each component of a pipeline kind ("sd1", "sd1_controlnet").
inline nlohmann::json golden_pipelines(const Case& c) {
  std::ifstream pj(c.models_dir() / "pipelines.json");
  PIG_CHECK(pj, (c.models_dir() / "pipelines.json").string(), ": cannot open");
  return nlohmann::json::parse(pj);
}

// "unet_sd1" of `"unet": "unet_sd1"`, "clip_sd1" of `"text_encoder": "clip_sd1 (CLIPTextModel)"`.
inline fs::path golden_folder(const Case& c, const std::string& kind, const std::string& component) {
  const nlohmann::json p = golden_pipelines(c);
  PIG_CHECK(p.contains(kind) && p[kind].contains(component), "models/pipelines.json: no ", kind, ".", component);
  std::string s = p[kind][component].get<std::string>();
  return c.models_dir() / s.substr(0, s.find(' '));
}

// The tiny SD1 pipeline: its components and scheduler config as pipelines.json's "sd1" entry lists them.
inline LoadedModel golden_sd1(const Case& c) {
  LoadedModel model;
  model.path = c.models_dir().string();
  model.format = "diffusers";
  model.detection.family = Family::SD1;
  for (const char* name : {"unet", "text_encoder", "vae"})
    model.components[name] = golden_component(golden_folder(c, "sd1", name), name);
  model.scheduler_config = golden_pipelines(c)["sd1"]["scheduler"];
  model.prediction_type = model.scheduler_config.value("prediction_type", "epsilon");
  return model;
}

inline ClipTokenizer golden_tokenizer(const Case& c) {
  TokenizerLocation where;
  where.path = c.tokenizer_dir().string();
  where.search_hf_cache = false;
  return ClipTokenizer::load(where);
}

}  // namespace pigment::golden
