#include "text/prompt_chunks.h"

#include <gtest/gtest.h>

#include "text/text_test_util.h"

namespace pigment {
namespace {

using testing::sd1_tokenizer;
constexpr int kBos = 49406, kEos = 49407, kA = 320, kPhotograph = 8853, kComma = 267;

std::string repeat(const std::string& word, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += word + " ";
  return s;
}

// The ids between bos and the first eos.
std::vector<int> body(const PromptChunk& c) {
  std::vector<int> out;
  for (size_t i = 1; i < c.ids.size() && c.ids[i] != kEos; ++i) out.push_back(c.ids[i]);
  return out;
}

TEST(PromptChunks, ShortPromptIsOneWeightedChunk) {
  REQUIRE_CLIP_TOKENIZER();
  auto r = chunk_prompt(sd1_tokenizer(), "(a) photograph");
  ASSERT_EQ(r.chunks.size(), 1u);
  const auto& c = r.chunks[0];
  ASSERT_EQ(c.ids.size(), 77u);
  ASSERT_EQ(c.weights.size(), 77u);
  EXPECT_EQ(c.ids[0], kBos);
  EXPECT_EQ(body(c), (std::vector<int>{kA, kPhotograph}));
  EXPECT_EQ(c.ids[76], kEos);
  EXPECT_EQ(c.weights[0], 1.0);
  EXPECT_EQ(c.weights[1], 1.1);
  EXPECT_EQ(c.weights[2], 1.0);
  EXPECT_EQ(c.weights[3], 1.0);
  EXPECT_EQ(r.token_count, 2);
}

TEST(PromptChunks, EmptyPrompt) {
  REQUIRE_CLIP_TOKENIZER();
  auto r = chunk_prompt(sd1_tokenizer(), "");
  ASSERT_EQ(r.chunks.size(), 1u);
  EXPECT_EQ(r.chunks[0].ids, empty_prompt_chunk(sd1_tokenizer()).ids);
  EXPECT_EQ(r.token_count, 0);
}

TEST(PromptChunks, BreakStartsANewChunk) {
  REQUIRE_CLIP_TOKENIZER();
  auto r = chunk_prompt(sd1_tokenizer(), "a BREAK photograph");
  ASSERT_EQ(r.chunks.size(), 2u);
  EXPECT_EQ(body(r.chunks[0]), (std::vector<int>{kA}));
  EXPECT_EQ(body(r.chunks[1]), (std::vector<int>{kPhotograph}));
  EXPECT_EQ(r.token_count, 76);  // a closed chunk counts as 75
}

TEST(PromptChunks, LongPromptsSpanChunks) {
  REQUIRE_CLIP_TOKENIZER();
  auto r = chunk_prompt(sd1_tokenizer(), repeat("a", 80));
  ASSERT_EQ(r.chunks.size(), 2u);
  EXPECT_EQ(body(r.chunks[0]), std::vector<int>(75, kA));
  EXPECT_EQ(body(r.chunks[1]), std::vector<int>(5, kA));
  EXPECT_EQ(r.token_count, 80);
}

TEST(PromptChunks, CommaBackOff) {
  REQUIRE_CLIP_TOKENIZER();
  std::string prompt = repeat("a", 70) + ", " + repeat("photograph", 10);
  auto r = chunk_prompt(sd1_tokenizer(), prompt);
  ASSERT_EQ(r.chunks.size(), 2u);
  std::vector<int> first(70, kA);
  first.push_back(kComma);
  EXPECT_EQ(body(r.chunks[0]), first);  // the four words after the comma moved on
  EXPECT_EQ(body(r.chunks[1]), std::vector<int>(10, kPhotograph));
  EXPECT_EQ(r.token_count, 85);

  ChunkOptions off;
  off.comma_backtrack = 0;
  auto r2 = chunk_prompt(sd1_tokenizer(), prompt, off);
  ASSERT_EQ(r2.chunks.size(), 2u);
  EXPECT_EQ(body(r2.chunks[0]).size(), 75u);
  EXPECT_EQ(body(r2.chunks[1]), std::vector<int>(6, kPhotograph));

  // A comma further back than the limit does not move anything.
  auto r3 = chunk_prompt(sd1_tokenizer(), repeat("a", 50) + ", " + repeat("photograph", 30));
  EXPECT_EQ(body(r3.chunks[0]).size(), 75u);
}

TEST(PromptChunks, Sd2PadsWithZeroAfterEos) {
  REQUIRE_CLIP_TOKENIZER();
  ChunkOptions sd2;
  sd2.pad_id = 0;
  auto r = chunk_prompt(sd1_tokenizer(), "a", sd2);
  ASSERT_EQ(r.chunks.size(), 1u);
  EXPECT_EQ(std::vector<int>(r.chunks[0].ids.begin(), r.chunks[0].ids.begin() + 4),
            (std::vector<int>{kBos, kA, kEos, 0}));
  EXPECT_EQ(r.chunks[0].ids[76], 0);
  EXPECT_EQ(empty_prompt_chunk(sd1_tokenizer(), sd2).ids[2], 0);
}

TEST(PromptChunks, EmbeddingsStayInOneChunk) {
  REQUIRE_CLIP_TOKENIZER();
  ClipTokenizer tok = sd1_tokenizer();
  int t0 = tok.add_token("<t>");
  tok.add_token("<t>_1");
  tok.add_token("<t>_2");
  ChunkOptions opt;
  opt.group_length = [&](const std::vector<int>& ids, size_t pos) { return ids[pos] == t0 ? 3 : 1; };
  auto r = chunk_prompt(tok, repeat("a", 73) + "(<t> <t>_1 <t>_2:1.5)", opt);
  ASSERT_EQ(r.chunks.size(), 2u);
  EXPECT_EQ(body(r.chunks[0]), std::vector<int>(73, kA));
  EXPECT_EQ(body(r.chunks[1]), (std::vector<int>{t0, t0 + 1, t0 + 2}));
  EXPECT_EQ(r.chunks[1].weights[1], 1.5);
  EXPECT_EQ(r.chunks[1].weights[3], 1.5);
  EXPECT_EQ(r.chunks[1].weights[4], 1.0);
}

}  // namespace
}  // namespace pigment
