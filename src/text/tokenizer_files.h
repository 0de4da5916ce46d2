// Where a CLIP tokenizer's vocab.json + merges.txt come from, in this order:
//   1. a path the user gave: a folder holding both files (or a diffusers model folder with them in tokenizer/), or
//      one of the two files with its partner beside it. A path that holds neither is an error, not a fall-through;
//   2. the tokenizer/ (or tokenizer_2/) folder of the diffusers model being loaded;
//   3. the Hugging Face hub cache: $HF_HUB_CACHE, $HUGGINGFACE_HUB_CACHE, $HF_HOME/hub,
//   $XDG_CACHE_HOME/huggingface/hub,
//      ~/.cache/huggingface/hub, in models--openai--clip-vit-large-patch14 (and the tokenizer/ folder of the
//      usual SD 1.5 / 2.1 / XL repositories), snapshot named by refs/main first.
// When nothing is found the error lists every place it looked and what to provide.
#pragma once
#include <string>
#include <vector>

namespace pigment {

struct TokenizerLocation {
  std::string path;                     // user-given file or folder; empty when none
  std::string model_dir;                // diffusers pipeline folder; empty when none
  std::string subfolder = "tokenizer";  // "tokenizer_2" for SDXL's second encoder
  bool search_hf_cache = true;
};

struct TokenizerFiles {
  std::string vocab;   // vocab.json
  std::string merges;  // merges.txt
};

TokenizerFiles find_tokenizer_files(const TokenizerLocation& where);

// The Hugging Face hub cache folders that exist under the environment above, in search order.
std::vector<std::string> hf_hub_cache_dirs();

}  // namespace pigment
