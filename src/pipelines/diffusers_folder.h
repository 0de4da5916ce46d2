// Completing a diffusers pipeline folder that pigment writes (pigment init --diffusers) so that diffusers'
// from_pretrained loads it as it is: the tokenizer folders, from the CLIP table built into pigment.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "models/model_family.h"

namespace pigment {

// The tokenizer subfolders of a family's diffusers pipeline and their pad tokens: tokenizer/ ("<|endoftext|>" for
// SD1 and SDXL, "!" for SD2) and, for SDXL, tokenizer_2/ ("!").
std::vector<std::pair<std::string, std::string>> diffusers_tokenizers(Family family);

// Writes those folders into `dir` (vocab.json, merges.txt, special_tokens_map.json, tokenizer_config.json) and names
// them in dir/model_index.json as ["transformers", "CLIPTokenizer"]. The model_index.json must exist.
void write_diffusers_tokenizers(const std::string& dir, Family family);

}  // namespace pigment
