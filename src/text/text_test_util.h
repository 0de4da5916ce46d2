// Shared by the text unit tests: the CLIP tokenizer files of ../shared/clip-tokenizer (PIGMENT_SHARED_DIR).
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>

#include "text/clip_tokenizer.h"
#include "text/tokenizer_files.h"

namespace pigment::testing {

inline std::string clip_tokenizer_dir() {
  const char* env = std::getenv("PIGMENT_SHARED_DIR");
  return (std::filesystem::path(env ? env : "../shared") / "clip-tokenizer").string();
}

inline bool have_clip_tokenizer() { return std::filesystem::exists(clip_tokenizer_dir() + "/vocab.json"); }

// SD1 tokenizer (pad <|endoftext|>), loaded once.
inline const ClipTokenizer& sd1_tokenizer() {
  static const ClipTokenizer tok = [] {
    TokenizerLocation where;
    where.path = clip_tokenizer_dir();
    return ClipTokenizer::load(where);
  }();
  return tok;
}

}  // namespace pigment::testing

#define REQUIRE_CLIP_TOKENIZER()                                                                   \
  if (!::pigment::testing::have_clip_tokenizer())                                                  \
  GTEST_FAIL() << "CLIP tokenizer files not found in " << ::pigment::testing::clip_tokenizer_dir() \
               << " (set PIGMENT_SHARED_DIR)"
