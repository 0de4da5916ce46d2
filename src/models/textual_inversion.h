// Textual-inversion embeddings at inference: A1111 .pt (string_to_param['*']), A1111 .safetensors (emb_params),
// diffusers learned_embeds ({token: vector}), SDXL files holding clip_l / clip_g. An embedding of n vectors becomes
// n added tokens "<name>", "<name>_1", ... (as diffusers' load_textual_inversion names them), and a prompt is
// rewritten so that each occurrence of the name stands for all of them (diffusers' maybe_convert_prompt). This file
// reads the files; registering the tokens with a tokenizer is pipelines/embedding_set.h (models/ does not depend on
// text/).
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"

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

}  // namespace pigment
