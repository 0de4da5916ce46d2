#include "pipelines/embedding_set.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "text/tokenizer_files.h"

namespace pigment {
namespace {

namespace fs = std::filesystem;

fs::path shared_dir() {
  const char* env = std::getenv("PIGMENT_SHARED_DIR");
  return env ? env : "../shared";
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(EmbeddingSet, GoldenFilesAndPromptRewrite) {
  fs::path emb = shared_dir() / "golden" / "ti" / "embeddings";
  if (!fs::exists(emb / "my-concept.pt")) GTEST_FAIL() << "no golden data";
  Embedding a = load_embedding((emb / "my-concept.pt").string());
  Embedding b = load_embedding((emb / "other-style.safetensors").string());
  EXPECT_EQ(a.name, "my-concept");
  EXPECT_EQ(a.vectors.shape(), (Shape{3, 32}));
  EXPECT_EQ(b.vectors.shape(), (Shape{4, 32}));

  TokenizerLocation where;
  where.path = (shared_dir() / "clip-tokenizer").string();
  where.search_hf_cache = false;
  ClipTokenizer tok = ClipTokenizer::load(where);
  EmbeddingSet set;
  set.add(a, tok, 49408, 32);
  set.add(b, tok, 49408, 32);
  EXPECT_EQ(set.extra_rows().shape(), (Shape{7, 32}));
  EXPECT_EQ(set.expand("(my-concept:1.2) and other-style"),
            "(my-concept my-concept_1 my-concept_2:1.2) and other-style other-style_1 other-style_2 other-style_3");
  EXPECT_EQ(tok.token_to_id("other-style_3"), 49414);
  // The same name twice, or a vector of the wrong width, is refused.
  EXPECT_NE(error_of([&] { set.add(a, tok, 49408, 32); }).find("added twice"), std::string::npos);
  EmbeddingSet other;
  ClipTokenizer tok2 = ClipTokenizer::load(where);
  EXPECT_NE(error_of([&] { other.add(a, tok2, 49408, 768); }).find("another model family"), std::string::npos);
}

}  // namespace
}  // namespace pigment
