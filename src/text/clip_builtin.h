// The CLIP BPE table built into pigment: OpenAI CLIP's 48894 merges (data/clip_merges.txt.gz, MIT licence in
// data/CLIP-LICENSE), compressed into the binary at build time (cmake/embed_file.cmake). The vocabulary follows from
// the merges (ClipTokenizer::from_merges), so a single-file checkpoint needs no tokenizer files at all.
#pragma once
#include <string_view>

namespace pigment {

// merges.txt as Hugging Face ships it ("#version: 0.2" and one "left right" line per merge), decompressed once.
std::string_view builtin_clip_merges();

}  // namespace pigment
