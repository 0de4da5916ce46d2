// A GenerationRequest run on a loaded model, the one path of every front end (`pigment generate`, `pigment qr`,
// `pigment serve`): the adapters the request names set on the model (replacing an earlier request's), the model's
// own checks before any work, the seed chosen, then per image its pipeline request and its infotext.
//   Adapters a = load_adapters(g, folders);                   // before loading a model: bad names fail fast
//   PreparedGeneration p = prepare_generation(sd, g, a, units, recipe);
//   for (int i = 0; i < g.batch_count; ++i) { sd.generate(p.image_request(i), …); p.infotext(i); }
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "imaging/control_preprocess.h"
#include "pipelines/generation_request.h"
#include "pipelines/stable_diffusion.h"

namespace pigment {

struct PreparedGeneration {
  GenerationRequest request;  // as given (prompts with their tags: the infotext records them)
  std::string prompt, negative_prompt;  // without extra-network tags
  std::vector<HypernetworkUse> hypernetworks;
  std::vector<ControlUnit> control;
  uint64_t seed = 0;  // of image 0: request.seed, or the random one chosen
  bool random_seed = false;
  RecipeContext recipe;               // with the adapters' hashes
  std::vector<std::string> warnings;  // ignored tags, LoRA keys that match no layer; one line each

  // The pipeline request of image `index` of the batch (seed + index).
  GenerateRequest image_request(int index) const;
  // Its infotext, as the PNG's "parameters" and the A1111 API's info carry it.
  Infotext infotext(int index) const;
};

// Sets the adapters on `sd` (LoRAs as g.lora_apply says, embeddings; those of an earlier request are removed), picks
// the seed, and checks the first image's request against the model (sizes in latent units, the mask): a bad request
// throws before any sampling.
PreparedGeneration prepare_generation(StableDiffusion& sd, const GenerationRequest& g, const Adapters& adapters,
                                      std::vector<ControlUnit> control = {}, RecipeContext recipe = {});

// One ControlNet unit as A1111's ControlNet extension records it in the infotext ("ControlNet N").
struct ControlRecipe {
  std::string module = "none", model;  // model: its name (file name without extension)
  double weight = 1, threshold_a = 100, threshold_b = 200, start = 0, end = 1;
  ControlResize resize = ControlResize::CropAndResize;
  int control_mode = 0;  // 0 Balanced, 1 My prompt is more important, 2 ControlNet is more important (guess mode)
};
// "Module: canny, Model: …, Weight: 1, Resize Mode: Crop and Resize, …, Control Mode: Balanced"
std::string control_infotext(const ControlRecipe& c);

}  // namespace pigment
