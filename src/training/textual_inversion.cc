#include "training/textual_inversion.h"

#include <filesystem>

#include "io/file_hash.h"
#include "io/safetensors.h"
#include "io/torch_save.h"
#include "ops/ops.h"
#include "pipelines/stable_diffusion.h"
#include "training/caption_encoder.h"
#include "training/trainer.h"

namespace pigment::training {

namespace {

namespace fs = std::filesystem;

class TextualInversionMethod : public Method {
 public:
  TextualInversionMethod(const StableDiffusion& model, const TrainOptions& o)
      : token_(o.token_string), text_(model) {
    PIG_CHECK(o.num_vectors >= 1 && o.num_vectors <= 75, "--num-vectors-per-token must be in [1, 75], got ",
              o.num_vectors);
    PIG_CHECK(!token_.empty() && token_.find(' ') == std::string::npos, "--token-string must be one word, got '",
              token_, "'");
    PIG_CHECK(text_.size() == 1 || fs::path(o.output).extension() != ".pt",
              "textual inversion: SDXL embeddings are saved as .safetensors (clip_l and clip_g), not A1111's .pt: "
              "name --output FILE.safetensors");
    // The vectors start as the init word's token embeddings, repeated to the vector count (kohya's rule), in each
    // encoder's own table (SDXL: clip_l and clip_g; both tokenizers share the vocabulary).
    const std::vector<int> init = text_.token_ids(o.init_word);
    PIG_CHECK(!init.empty(), "--init-word '", o.init_word, "' has no tokens");
    std::vector<int64_t> rows;
    for (int i = 0; i < o.num_vectors; ++i) rows.push_back(init[size_t(i) % init.size()]);
    for (size_t i = 0; i < text_.size(); ++i)
      vectors_.push_back(ops::embedding(text_.encoder(i).token_embedding(), rows).to(DType::F32));
    text_.add_word(embedding(false));
    if (fs::is_regular_file(o.model.model)) {  // A1111 records the base model's short hash and name
      sd_checkpoint_ = model_short_hash(o.model.model);
      sd_checkpoint_name_ = fs::path(o.model.model).stem().string();
    }
  }

  // One tensor per encoder, by the name its file gives it: A1111's emb_params, or SDXL's clip_l / clip_g.
  std::vector<Param> params() override {
    std::vector<Param> p;
    for (const auto& [name, t] : named_vectors()) p.push_back({name, t, Tensor()});
    return p;
  }

  bool apply_to(StableDiffusion& model) const override {
    model.set_embeddings({embedding(true)});
    return true;
  }
  void remove_from(StableDiffusion& model) const override { model.set_embeddings({}); }

  PromptEmbeds encode_captions(const std::vector<std::string>& captions) const override {
    std::vector<std::string> texts;
    for (const auto& caption : captions)  // a caption that does not name the word gets it in front: every step trains it
      texts.push_back(caption.find(token_) == std::string::npos ? token_ + " " + caption : caption);
    CaptionEncoder::Inputs in;
    for (size_t i = 0; i < vectors_.size(); ++i) in.extra_rows[i] = &vectors_[i];
    return text_.encode(texts, in);
  }

  // A1111's embedding, the file stem being the word people type: a .pt as A1111's trainer writes it
  // (string_to_token {'*': 265}, string_to_param {'*': [n, D]}, name, step, sd_checkpoint, sd_checkpoint_name),
  // anything else a .safetensors with emb_params [n, D] (SDXL: clip_l [n, 768] and clip_g [n, 1280], the layout
  // A1111 and ComfyUI read for SDXL).
  void save(const std::string& path, const std::map<std::string, std::string>& metadata) const override {
    const fs::path p(path);
    if (p.extension() == ".pt") {
      using pickle::Object;
      auto it = metadata.find("ss_max_train_steps");
      auto str_or_none = [](const std::string& s) { return s.empty() ? Object::none() : Object::str(s); };
      Object root = Object::dict();
      root.set("string_to_token", Object::dict().set("*", Object::integer(265)));
      root.set("string_to_param", Object::dict().set("*", Object::tensor(vectors_[0].clone())));
      root.set("name", Object::str(p.stem().string()));
      root.set("step", Object::integer(it == metadata.end() ? 0 : std::stoll(it->second)));
      root.set("sd_checkpoint", str_or_none(sd_checkpoint_));
      root.set("sd_checkpoint_name", str_or_none(sd_checkpoint_name_));
      torch_save(path, root, p.stem().string().empty() ? "archive" : p.stem().string());
      return;
    }
    std::map<std::string, std::string> meta = metadata;
    meta["name"] = token_;
    write_safetensors(path, named_vectors(), meta);
  }

 private:
  NamedTensors named_vectors() const {
    if (vectors_.size() == 1) return {{"emb_params", vectors_[0]}};
    return {{"clip_l", vectors_[0]}, {"clip_g", vectors_[1]}};
  }
  // The word as an embedding (its vectors shared, or cloned for a model that outlives the step).
  Embedding embedding(bool clone) const {
    Embedding e;
    e.name = token_;
    e.vectors = clone ? vectors_[0].clone() : vectors_[0];
    if (vectors_.size() > 1) e.vectors_2 = clone ? vectors_[1].clone() : vectors_[1];
    return e;
  }

  std::string token_, sd_checkpoint_, sd_checkpoint_name_;
  CaptionEncoder text_;
  std::vector<Tensor> vectors_;  // per text encoder, [n, D] float32, trained
};

}  // namespace

std::unique_ptr<Method> make_textual_inversion_method(const StableDiffusion& model, const TrainOptions& o) {
  return std::make_unique<TextualInversionMethod>(model, o);
}

}  // namespace pigment::training
