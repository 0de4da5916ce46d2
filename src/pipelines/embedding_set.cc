#include "pipelines/embedding_set.h"

#include "core/error.h"
#include "ops/ops.h"

namespace pigment {

namespace {

void append_rows(Tensor& rows, const Tensor& add) {
  rows = rows.defined() ? ops::concat({rows, add}, 0) : add.clone();
}

}  // namespace

void EmbeddingSet::add(const Embedding& e, ClipTokenizer& tok, int64_t vocab_size, int64_t hidden,
                       int64_t hidden_2) {
  PIG_CHECK(e.vectors.defined() && e.vectors.dim(1) == hidden, e.path, ": embedding vectors are ",
            e.vectors.defined() ? shape_str(e.vectors.shape()) : std::string("missing"), ", but the text encoder is ",
            hidden, " wide (an embedding for another model family?)");
  if (hidden_2 > 0)
    PIG_CHECK(e.vectors_2.defined() && e.vectors_2.dim(1) == hidden_2, e.path,
              ": SDXL needs clip_g vectors of width ", hidden_2, " (the file has none or another width)");
  for (const auto& [n, count] : names_) PIG_CHECK(n != e.name, e.path, ": embedding '", e.name, "' added twice");
  int64_t expect = vocab_size + (rows_.defined() ? rows_.dim(0) : 0);
  for (int64_t i = 0; i < e.count(); ++i) {
    std::string token = i == 0 ? e.name : e.name + "_" + std::to_string(i);
    int id = tok.add_token(token);
    PIG_CHECK(id == expect + i, e.path, ": token '", token, "' got id ", id, ", expected ", expect + i,
              " (the tokenizer already holds other added tokens)");
  }
  append_rows(rows_, e.vectors);
  if (hidden_2 > 0) append_rows(rows_2_, e.vectors_2);
  names_.emplace_back(e.name, e.count());
  embeddings_.push_back(e);
}

std::string EmbeddingSet::expand(const std::string& prompt) const {
  std::string out = prompt;
  for (const auto& [name, count] : names_) {
    if (count <= 1) continue;
    std::string with = name;
    for (int64_t i = 1; i < count; ++i) with += " " + name + "_" + std::to_string(i);
    std::string next;
    size_t pos = 0;
    for (size_t hit; (hit = out.find(name, pos)) != std::string::npos; pos = hit + name.size()) {
      next += out.substr(pos, hit - pos);
      // "<name>_1" already expanded (or written out) stays as it is.
      bool suffixed = out.compare(hit + name.size(), 1, "_") == 0;
      next += suffixed ? name : with;
    }
    out = next + out.substr(pos);
  }
  return out;
}

}  // namespace pigment
