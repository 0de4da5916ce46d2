// Where a CLIP tokenizer's vocabulary and merges come from, in this order:
//   1. a path the user gave (--tokenizer): a folder holding vocab.json + merges.txt (or a diffusers model folder with
//      them in tokenizer/, or OpenAI's bpe_simple_vocab_16e6.txt.gz), one of the two files with its partner beside
//      it, or a .gz file in OpenAI's / open_clip's bpe_simple_vocab_16e6.txt.gz format. A path that holds none of
//      these is an error, not a fall-through;
//   2. the tokenizer/ (or tokenizer_2/) folder of the diffusers model being loaded;
//   3. the CLIP table built into pigment (text/clip_builtin.h), the one every SD 1.x / 2.x / XL encoder uses;
//   4. only when the built-in table is turned off: the Hugging Face hub cache: $HF_HUB_CACHE,
//      $HUGGINGFACE_HUB_CACHE, $HF_HOME/hub, $XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub, in
//      models--openai--clip-vit-large-patch14 (and the tokenizer/ folder of the usual SD 1.5 / 2.1 / XL
//      repositories), snapshot named by refs/main first.
// When nothing is found the error lists every place it looked and names --tokenizer.
#pragma once
#include <string>
#include <vector>

namespace pigment {

struct TokenizerLocation {
  std::string path;                     // user-given file or folder; empty when none
  std::string model_dir;                // diffusers pipeline folder; empty when none
  std::string subfolder = "tokenizer";  // "tokenizer_2" for SDXL's second encoder
  bool builtin = true;          // fall back to the built-in CLIP table
  bool search_hf_cache = true;  // searched only when builtin is off
};

struct TokenizerFiles {
  enum class Origin { kUserPath, kModelDir, kBuiltin, kHfCache };
  std::string vocab;   // vocab.json; empty for a .gz file and for the built-in table
  std::string merges;  // merges.txt, or OpenAI's bpe_simple_vocab_16e6.txt.gz; empty for the built-in table
  Origin origin = Origin::kBuiltin;
  bool builtin() const { return origin == Origin::kBuiltin; }
  bool openai_gz() const { return vocab.empty() && !merges.empty(); }
};

TokenizerFiles find_tokenizer_files(const TokenizerLocation& where);

// The Hugging Face hub cache folders that exist under the environment above, in search order.
std::vector<std::string> hf_hub_cache_dirs();

// Writes the built-in CLIP table as a transformers CLIPTokenizer folder (creating `dir`): vocab.json, merges.txt,
// special_tokens_map.json and tokenizer_config.json, padding with `pad_token` ("<|endoftext|>" for SD1 and SDXL's
// first encoder, "!" for SD2 and SDXL's second). Throws naming the file that cannot be written.
void write_builtin_tokenizer_files(const std::string& dir, const std::string& pad_token);

}  // namespace pigment
