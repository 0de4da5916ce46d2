// The text conditioning that the methods training through the text encoder(s) record on the tape (a text-encoder
// LoRA, textual inversion, full fine-tuning with --train-text-encoder). Captions are plain text, tokenized and cut to
// 77 tokens as the trainer's frozen path and diffusers' scripts do, then run through the family's encoders by the
// family's rule (pipelines' conditioning_clip_options): SD1/SD2 one context; SDXL both encoders' contexts
// concatenated and encoder 2's projected pooled vector. Each encoder may run with layer hooks (LoRA deltas) and
// added token rows (a textual-inversion word); the encoders are the inference ClipTextModel.
#pragma once
#include <array>
#include <string>
#include <vector>

#include "models/clip_text.h"
#include "models/model_loader.h"
#include "models/textual_inversion.h"
#include "pipelines/embedding_set.h"
#include "pipelines/stable_diffusion.h"
#include "text/clip_tokenizer.h"

namespace pigment::training {

// What each encoder runs with besides the tokens.
struct CaptionInputs {
  std::array<const UNetHooks*, 2> hooks{};    // per encoder (their layer names are alike)
  std::array<const Tensor*, 2> extra_rows{};  // per encoder: rows of the added word's ids
};

class CaptionEncoder {
 public:
  // The model's tokenizer(s) and its loaded text encoder(s) (the base weights, in their file dtype).
  explicit CaptionEncoder(const StableDiffusion& model);

  // The component names of the encoders: {"text_encoder"} or, for SDXL, {"text_encoder", "text_encoder_2"}.
  static std::vector<std::string> component_names(Family family);
  size_t size() const { return encoders_.size(); }
  const ClipTextModel& encoder(size_t i) const { return encoders_.at(i); }
  // Encoder i built on other weights (full fine-tuning's float32 copies).
  void set_encoder(size_t i, const ModelComponent& component);

  // Registers a textual-inversion word with the tokenizer(s): its n tokens follow the vocabulary, and captions naming
  // it stand for all of them. The rows of those ids come with each encode (Inputs::extra_rows), so that the trained
  // tensors themselves are read.
  void add_word(const Embedding& word);
  // Token ids of `text` alone (no start/end tokens), with the first tokenizer (textual inversion's init word).
  std::vector<int> token_ids(const std::string& text) const { return tokenizers_[0].encode(text); }

  using Inputs = CaptionInputs;
  // context [B, 77, D] (+ pooled [B, P] for SDXL).
  PromptEmbeds encode(const std::vector<std::string>& captions, const Inputs& inputs = {}) const;

 private:
  Family family_;
  std::vector<ClipTokenizer> tokenizers_;
  std::vector<ClipTextModel> encoders_;
  EmbeddingSet words_;
};

}  // namespace pigment::training
