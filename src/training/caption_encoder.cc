#include "training/caption_encoder.h"

#include "core/error.h"
#include "ops/ops.h"

namespace pigment::training {

std::vector<std::string> CaptionEncoder::component_names(Family family) {
  if (family == Family::SDXL) return {"text_encoder", "text_encoder_2"};
  return {"text_encoder"};
}

CaptionEncoder::CaptionEncoder(const StableDiffusion& model) : family_(model.family()) {
  tokenizers_.push_back(model.tokenizer());
  if (family_ == Family::SDXL) {
    PIG_CHECK(model.tokenizer_2(), "SDXL: the pipeline has no second tokenizer");
    tokenizers_.push_back(*model.tokenizer_2());
  }
  for (const auto& name : component_names(family_)) {
    const ModelComponent& c = model.base_component(name);
    encoders_.push_back(ClipTextModel::load(c.model_config(), c.weights()));
  }
}

void CaptionEncoder::set_encoder(size_t i, const ModelComponent& component) {
  PIG_CHECK(i < encoders_.size(), "CaptionEncoder: no text encoder ", i);
  encoders_[i] = ClipTextModel::load(component.model_config(), component.weights());
}

void CaptionEncoder::add_word(const Embedding& word) {
  const ClipTextConfig& c1 = encoders_[0].config();
  PIG_CHECK(tokenizers_[0].vocab_size() == c1.vocab_size, "textual inversion: the tokenizer has ",
            tokenizers_[0].vocab_size(), " tokens but the text encoder ", c1.vocab_size);
  words_.add(word, tokenizers_[0], c1.vocab_size, c1.hidden_size,
             encoders_.size() > 1 ? encoders_[1].config().hidden_size : 0);
  if (tokenizers_.size() > 1)
    for (int64_t i = 0; i < word.count(); ++i)
      tokenizers_[1].add_token(i == 0 ? word.name : word.name + "_" + std::to_string(i));
}

PromptEmbeds CaptionEncoder::encode(const std::vector<std::string>& captions, const Inputs& inputs) const {
  PromptEmbeds e;
  std::vector<Tensor> contexts;
  for (size_t i = 0; i < encoders_.size(); ++i) {
    std::vector<std::vector<int64_t>> ids;
    for (const auto& caption : captions) {
      const std::vector<int> t = tokenizers_[i].encode_padded(words_.expand(caption));
      ids.emplace_back(t.begin(), t.end());
    }
    ClipOptions opt = conditioning_clip_options(family_, 1);
    opt.hooks = inputs.hooks[i];
    opt.extra_rows = inputs.extra_rows[i];
    ClipOutput out = encoders_[i].forward(ids, opt);
    contexts.push_back(out.context);
    if (i == 1) e.pooled = out.text_embeds;
  }
  e.context = contexts.size() == 1 ? contexts[0] : ops::concat(contexts, -1);
  return e;
}

}  // namespace pigment::training
