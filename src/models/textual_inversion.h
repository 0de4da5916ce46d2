// Textual-inversion embeddings at inference: A1111 .pt (string_to_param['*']), A1111 .safetensors (emb_params),
// diffusers learned_embeds ({token: vector}), SDXL files holding clip_l / clip_g. An embedding of n vectors becomes
// n added tokens "<name>", "<name>_1", ... (as diffusers' load_textual_inversion names them), and a prompt is
// rewritten so that each occurrence of the name stands for all of them (diffusers' maybe_convert_prompt).
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"
#include "text/clip_tokenizer.h"

namespace pigment {

struct Embedding {
  std::string name;   // the trigger text
  std::string path;
  Tensor vectors;     // [n, D] for the first (or only) text encoder, float32
  Tensor vectors_2;   // SDXL: [n, D2] for text_encoder_2 (clip_g); undefined otherwise
  int64_t count() const { return vectors.dim(0); }
};

// Reads an embedding file; `name` defaults to the file stem. A file holding no embedding throws, naming it.
Embedding load_embedding(const std::string& path, const std::string& name = "");
// The embedding file for `name` in `dir` (.pt, .safetensors, .bin, .ckpt), or "" when there is none.
std::string find_embedding_file(const std::string& dir, const std::string& name);
// Every embedding file in `dir`, by stem.
std::vector<std::string> list_embedding_files(const std::string& dir);

// Embeddings registered with one tokenizer and (up to two) text encoders.
class EmbeddingSet {
 public:
  // Adds the tokens of `e` to `tok`; `hidden` / `hidden_2` are the encoders' widths (0: no second encoder) and
  // `vocab_size` the encoders' base table size (the new ids must follow it with no gap).
  void add(const Embedding& e, ClipTokenizer& tok, int64_t vocab_size, int64_t hidden, int64_t hidden_2 = 0);
  // The prompt with each embedding name replaced by "<name> <name>_1 ... <name>_{n-1}".
  std::string expand(const std::string& prompt) const;
  bool empty() const { return names_.empty(); }
  // Token-embedding rows for ids vocab_size.. (first / second encoder).
  const Tensor& extra_rows() const { return rows_; }
  const Tensor& extra_rows_2() const { return rows_2_; }
  const std::vector<Embedding>& embeddings() const { return embeddings_; }

 private:
  std::vector<std::pair<std::string, int64_t>> names_;  // name, vector count
  std::vector<Embedding> embeddings_;
  Tensor rows_, rows_2_;
};

}  // namespace pigment
