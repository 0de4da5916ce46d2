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

inline LoadedModel golden_sd1(const Case& c) {
  LoadedModel model;
  model.path = c.models_dir().string();
  model.format = "diffusers";
  model.detection.family = Family::SD1;
  for (auto [name, folder] : {std::pair<const char*, const char*>{"unet", "unet_sd1"},
                              {"text_encoder", "clip_sd1"}, {"vae", "vae"}})
    model.components[name] = golden_component(c.models_dir() / folder, name);
  std::ifstream pj(c.models_dir() / "pipelines.json");
  model.scheduler_config = nlohmann::json::parse(pj)["sd1"]["scheduler"];
  model.prediction_type = "epsilon";
  return model;
}

inline ClipTokenizer golden_tokenizer(const Case& c) {
  TokenizerLocation where;
  where.path = c.tokenizer_dir().string();
  where.search_hf_cache = false;
  return ClipTokenizer::load(where);
}

}  // namespace pigment::golden
