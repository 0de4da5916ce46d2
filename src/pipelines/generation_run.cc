#include "pipelines/generation_run.h"

#include <random>

namespace pigment {

GenerateRequest PreparedGeneration::image_request(int index) const {
  GenerateRequest r = pipeline_request(request, seed + uint64_t(index), prompt, negative_prompt);
  r.hypernetworks = hypernetworks;
  r.control = control;
  return r;
}

Infotext PreparedGeneration::infotext(int index) const {
  return request_infotext(request, seed + uint64_t(index), recipe);
}

PreparedGeneration prepare_generation(StableDiffusion& sd, const GenerationRequest& g, const Adapters& adapters,
                                      std::vector<ControlUnit> control, RecipeContext recipe) {
  PreparedGeneration p;
  p.request = g;
  p.prompt = adapters.prompt;
  p.negative_prompt = adapters.negative_prompt;
  p.hypernetworks = adapters.hypernetworks;
  p.control = std::move(control);
  p.warnings = adapters.warnings;
  if (!adapters.loras.empty() || sd.has_loras()) {
    auto unmatched = sd.set_loras(adapters.loras, g.lora_apply == "runtime" ? LoraApply::Runtime : LoraApply::Merge);
    for (const auto& u : unmatched) p.warnings.push_back("LoRA key matches no layer: " + u);
  }
  if (!adapters.embeddings.empty() || sd.has_embeddings()) sd.set_embeddings(adapters.embeddings);
  p.recipe = std::move(recipe);
  p.recipe.lora_hashes = adapters.lora_hashes;
  p.recipe.ti_hashes = adapters.ti_hashes;
  p.random_seed = g.seed < 0;
  p.seed = g.seed >= 0 ? uint64_t(g.seed) : (uint64_t(std::random_device{}()) & 0xffffffffu);
  sd.check_request(p.image_request(0));
  return p;
}

std::string control_infotext(const ControlRecipe& c) {
  const char* resize = c.resize == ControlResize::JustResize      ? "Just Resize"
                       : c.resize == ControlResize::ResizeAndFill ? "Resize and Fill"
                                                                  : "Crop and Resize";
  std::string v = "Module: " + c.module + ", Model: " + c.model + ", Weight: " + format_number(c.weight) +
                  ", Resize Mode: " + resize;
  if (c.module == "canny")
    v += ", Threshold A: " + format_number(c.threshold_a) + ", Threshold B: " + format_number(c.threshold_b);
  v += ", Guidance Start: " + format_number(c.start) + ", Guidance End: " + format_number(c.end) +
       ", Pixel Perfect: True, Control Mode: " +
       (c.control_mode == 2   ? "ControlNet is more important"
        : c.control_mode == 1 ? "My prompt is more important"
                              : "Balanced");
  return v;
}

}  // namespace pigment
