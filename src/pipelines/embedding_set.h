// Textual-inversion embeddings registered with a tokenizer and the text encoders: the link between
// models/textual_inversion.h (the files) and text/clip_tokenizer.h (the added tokens). An embedding of n vectors adds
// the tokens "<name>", "<name>_1", ... and n rows of token embeddings; prompts are rewritten so that the name stands
// for all of them (diffusers' load_textual_inversion and maybe_convert_prompt).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "models/textual_inversion.h"
#include "text/clip_tokenizer.h"

namespace pigment {

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
