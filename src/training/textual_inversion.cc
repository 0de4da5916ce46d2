#include "training/textual_inversion.h"

#include <filesystem>

#include "io/file_hash.h"
#include "io/safetensors.h"
#include "io/torch_save.h"
#include "models/clip_text.h"
#include "ops/ops.h"
#include "pipelines/embedding_set.h"
#include "pipelines/stable_diffusion.h"
#include "training/trainer.h"

namespace pigment::training {

namespace {

namespace fs = std::filesystem;

class TextualInversionMethod : public Method {
 public:
  TextualInversionMethod(const StableDiffusion& model, const TrainOptions& o)
      : token_(o.token_string), tokenizer_(model.tokenizer()) {
    PIG_CHECK(model.family() != Family::SDXL, "textual inversion: SDXL (two text encoders) is not implemented yet");
    PIG_CHECK(o.num_vectors >= 1 && o.num_vectors <= 75, "--num-vectors-per-token must be in [1, 75], got ",
              o.num_vectors);
    PIG_CHECK(!token_.empty() && token_.find(' ') == std::string::npos, "--token-string must be one word, got '",
              token_, "'");
    const ModelComponent& c = model.base_component("text_encoder");
    te_ = ClipTextModel::load(c.model_config(), c.weights());
    const int64_t H = te_.config().hidden_size, V = te_.config().vocab_size;
    // The vectors start as the init word's token embeddings, repeated to the vector count (kohya's rule).
    const std::vector<int> init = tokenizer_.encode(o.init_word);
    PIG_CHECK(!init.empty(), "--init-word '", o.init_word, "' has no tokens");
    std::vector<int64_t> rows;
    for (int i = 0; i < o.num_vectors; ++i) rows.push_back(init[size_t(i) % init.size()]);
    vectors_ = ops::embedding(te_.token_embedding(), rows).clone();
    Embedding e;
    e.name = token_;
    e.vectors = vectors_;
    set_.add(e, tokenizer_, V, H);
    if (fs::is_regular_file(o.model.model)) {  // A1111 records the base model's short hash and name
      sd_checkpoint_ = model_short_hash(o.model.model);
      sd_checkpoint_name_ = fs::path(o.model.model).stem().string();
    }
  }

  std::vector<Param> params() override { return {{"emb_params", vectors_, Tensor()}}; }

  bool apply_to(StableDiffusion& model) const override {
    Embedding e;
    e.name = token_;
    e.vectors = vectors_.clone();
    model.set_embeddings({e});
    return true;
  }
  void remove_from(StableDiffusion& model) const override { model.set_embeddings({}); }

  Tensor encode_captions(const std::vector<std::string>& captions) const override {
    std::vector<std::vector<int64_t>> ids;
    for (const auto& caption : captions) {
      // A caption that does not name the word gets it in front, so every step trains it.
      std::string text = caption.find(token_) == std::string::npos ? token_ + " " + caption : caption;
      std::vector<int> t = tokenizer_.encode_padded(set_.expand(text));
      ids.emplace_back(t.begin(), t.end());
    }
    ClipOptions opt;
    opt.extra_rows = &vectors_;
    return te_.forward(ids, opt).context;
  }

  // A1111's embedding, the file stem being the word people type: a .pt as A1111's trainer writes it
  // (string_to_token {'*': 265}, string_to_param {'*': [n, D]}, name, step, sd_checkpoint, sd_checkpoint_name),
  // anything else a .safetensors with emb_params [n, D].
  void save(const std::string& path, const std::map<std::string, std::string>& metadata) const override {
    const fs::path p(path);
    if (p.extension() == ".pt") {
      using pickle::Object;
      auto it = metadata.find("ss_max_train_steps");
      auto str_or_none = [](const std::string& s) { return s.empty() ? Object::none() : Object::str(s); };
      Object root = Object::dict();
      root.set("string_to_token", Object::dict().set("*", Object::integer(265)));
      root.set("string_to_param", Object::dict().set("*", Object::tensor(vectors_.clone())));
      root.set("name", Object::str(p.stem().string()));
      root.set("step", Object::integer(it == metadata.end() ? 0 : std::stoll(it->second)));
      root.set("sd_checkpoint", str_or_none(sd_checkpoint_));
      root.set("sd_checkpoint_name", str_or_none(sd_checkpoint_name_));
      torch_save(path, root, p.stem().string().empty() ? "archive" : p.stem().string());
      return;
    }
    std::map<std::string, std::string> meta = metadata;
    meta["name"] = token_;
    write_safetensors(path, {{"emb_params", vectors_}}, meta);
  }

 private:
  std::string token_, sd_checkpoint_, sd_checkpoint_name_;
  ClipTokenizer tokenizer_;
  EmbeddingSet set_;
  ClipTextModel te_;
  Tensor vectors_;
};

}  // namespace

std::unique_ptr<Method> make_textual_inversion_method(const StableDiffusion& model, const TrainOptions& o) {
  return std::make_unique<TextualInversionMethod>(model, o);
}

}  // namespace pigment::training
