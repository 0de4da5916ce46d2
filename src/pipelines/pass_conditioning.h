// The text conditioning of one sampling pass, step by step: AND parts (composable diffusion) and prompt editing give
// each step its texts (pipelines/prompt_schedule.h), each distinct text is encoded once, and a step's texts become
// one UNet batch [uncond, cond_1, ..., cond_k] (or [cond] without guidance) with contexts padded to one length.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "pipelines/prompt_schedule.h"
#include "pipelines/stable_diffusion.h"

namespace pigment {

struct ConditioningBatch {
  Tensor context;               // [B, T, D]
  Tensor pooled;                // [B, P] for SDXL, else undefined
  int64_t rows = 1;             // B
  std::vector<double> weights;  // the AND parts' weights, one per conditional row
};

class PassConditioning {
 public:
  PassConditioning(const StableDiffusion& sd, const GenerateRequest& r, int total_steps);
  // Classifier-free guidance runs (cfg > 1, or several AND parts); composable: several AND parts.
  bool guided() const { return guided_; }
  bool composable() const { return composable_; }
  // The first step's embeddings under the probe's names (prompt_embeds, negative_prompt_embeds, pooled ...).
  void report(const std::function<void(const std::string&, const Tensor&)>& see);
  // The UNet batch of 1-based step `step`.
  ConditioningBatch at_step(int step);

 private:
  const PromptEmbeds& embeds(const std::string& text);
  PromptEmbeds uncond_embeds(const std::string& text);
  // Shorter contexts get encodings of "" appended, as A1111 does.
  Tensor pad_to(const Tensor& context, int64_t tokens);

  const StableDiffusion& sd_;
  const GenerateRequest& r_;
  PromptSchedule positive_, negative_;
  bool composable_ = false, guided_ = false;
  std::map<std::string, PromptEmbeds> encoded_;
};

}  // namespace pigment
