#include "pipelines/pass_conditioning.h"

#include <algorithm>

#include "ops/ops.h"

namespace pigment {

PassConditioning::PassConditioning(const StableDiffusion& sd, const GenerateRequest& r, int total_steps)
    : sd_(sd),
      r_(r),
      positive_(r.prompt, total_steps, r.a1111_syntax, true),
      negative_(r.negative_prompt, total_steps, r.a1111_syntax, false) {
  composable_ = positive_.parts().size() > 1;
  guided_ = r.cfg_scale > 1.0 || composable_;
}

const PromptEmbeds& PassConditioning::embeds(const std::string& text) {
  auto it = encoded_.find(text);
  if (it == encoded_.end()) it = encoded_.emplace(text, sd_.encode_prompt(text, r_)).first;
  return it->second;
}

PromptEmbeds PassConditioning::uncond_embeds(const std::string& text) {
  if (sd_.family() == Family::SDXL && r_.negative_prompt.empty() && r_.zero_uncond_if_empty) {
    const PromptEmbeds& c = embeds(positive_.at_step(1)[0].first);
    return {Tensor::zeros(c.context.shape()), Tensor::zeros(c.pooled.shape())};
  }
  return embeds(text);
}

void PassConditioning::report(const std::function<void(const std::string&, const Tensor&)>& see) {
  const PromptEmbeds& c = embeds(positive_.at_step(1)[0].first);
  see("prompt_embeds", c.context);
  if (c.pooled.defined()) see("pooled_prompt_embeds", c.pooled);
  if (guided_) {
    PromptEmbeds u = uncond_embeds(negative_.at_step(1)[0].first);
    see("negative_prompt_embeds", u.context);
    if (u.pooled.defined()) see("negative_pooled_prompt_embeds", u.pooled);
  }
}

Tensor PassConditioning::pad_to(const Tensor& context, int64_t tokens) {
  if (context.dim(1) == tokens) return context;
  Tensor empty = embeds("").context;
  std::vector<Tensor> pieces{context};
  for (int64_t n = context.dim(1); n < tokens; n += empty.dim(1)) pieces.push_back(empty);
  Tensor out = ops::concat(pieces, 1);
  PIG_CHECK(out.dim(1) == tokens, "prompt chunk counts do not line up");
  return out;
}

ConditioningBatch PassConditioning::at_step(int step) {
  std::vector<PromptEmbeds> batch;
  if (guided_) batch.push_back(uncond_embeds(negative_.at_step(step)[0].first));
  ConditioningBatch out;
  for (const auto& [text, weight] : positive_.at_step(step)) {
    batch.push_back(embeds(text));
    out.weights.push_back(weight);
  }
  int64_t tokens = 0;
  for (const auto& e : batch) tokens = std::max(tokens, e.context.dim(1));
  std::vector<Tensor> contexts, pooled;
  for (const auto& e : batch) {
    contexts.push_back(pad_to(e.context, tokens));
    if (e.pooled.defined()) pooled.push_back(e.pooled);
  }
  out.rows = int64_t(batch.size());
  out.context = out.rows == 1 ? contexts[0] : ops::concat(contexts, 0);
  if (!pooled.empty()) out.pooled = pooled.size() == 1 ? pooled[0] : ops::concat(pooled, 0);
  return out;
}

}  // namespace pigment
