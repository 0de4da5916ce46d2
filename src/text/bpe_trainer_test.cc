#include "text/bpe_trainer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "text/clip_tokenizer.h"

namespace pigment {
namespace {

namespace fs = std::filesystem;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Captions in the style of pigment's emoji data set: English names, Chinese names, keyword lists.
std::vector<std::string> emoji_like_captions() {
  const std::vector<std::string> base = {
      "red apple",        "红苹果",          "apple, fruit, red",   "水果，红，红苹果，苹果",
      "green apple",      "青苹果",          "apple, fruit, green", "green apple, food fruit, food & drink",
      "grinning face",    "嘿嘿",            "face, grin",          "grinning face, smileys & emotion",
      "woman technologist: medium skin tone", "女技术员: 中等肤色", "woman technologist",
      "man technologist", "男技术员",        "technologist, coder, developer, woman",
      "flag: japan",      "旗: 日本",        "flag: france",        "旗: 法国",
      "red heart",        "红心",            "heart, red, love",    "dog face",
      "狗脸",             "dog, face, pet",  "cat face",            "猫脸",
  };
  std::vector<std::string> texts;
  for (int r = 0; r < 5; ++r) texts.insert(texts.end(), base.begin(), base.end());
  return texts;
}

std::vector<std::string> merge_lines(const std::string& merges) {
  std::vector<std::string> lines;
  std::istringstream in(merges);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

TEST(BpeTrainer, WordSymbolsAreTheTokenizersSplit) {
  const ClipTokenizer bytes = ClipTokenizer::bytes_only();
  EXPECT_EQ(bytes.vocab_size(), 512 + 2);
  using W = std::vector<std::string>;
  const auto words = bytes.word_symbols("  Red   APPLE!! <|endoftext|>");
  ASSERT_EQ(words.size(), 3u);
  EXPECT_EQ(words[0], (W{"r", "e", "d</w>"}));
  EXPECT_EQ(words[1], (W{"a", "p", "p", "l", "e</w>"}));
  EXPECT_EQ(words[2], (W{"!", "!</w>"}));
  // One symbol per UTF-8 byte: 红 is E7 BA A2, which bytes_to_unicode maps to ç, º and ¢.
  const auto zh = bytes.word_symbols("红");
  ASSERT_EQ(zh.size(), 1u);
  EXPECT_EQ(zh[0], (W{"ç", "º", "¢</w>"}));
  // Without merges, encoding is one token per byte, and decoding gives the text back.
  EXPECT_EQ(bytes.encode("红苹果").size(), std::string("红苹果").size());
  EXPECT_EQ(bytes.decode(bytes.encode("红苹果")), "红苹果");
}

TEST(BpeTrainer, MergesTheMostFrequentPairFirst) {
  // "ab" three times, "cd" once: only a+b</w> occurs twice or more.
  EXPECT_EQ(train_clip_bpe({"ab ab", "ab cd"}, 10), "#version: 0.2\na b</w>\n");
  // min_pair_count 1 takes c+d</w> as well.
  EXPECT_EQ(train_clip_bpe({"ab ab", "ab cd"}, 10, 1), "#version: 0.2\na b</w>\nc d</w>\n");
  // Equal counts: the byte-wise smaller pair first, whatever the order of the texts.
  EXPECT_EQ(train_clip_bpe({"cd ab", "ab cd"}, 10), "#version: 0.2\na b</w>\nc d</w>\n");
  EXPECT_EQ(train_clip_bpe({"ab cd", "cd ab"}, 10), "#version: 0.2\na b</w>\nc d</w>\n");
  // "aaaa" twice: a+a occurs 4 times (two places per word), merged left to right into [aa, a, a</w>]; then a+a</w>
  // and aa+a tie at 2 and the byte-wise smaller left symbol wins.
  BpeTrainStats st;
  const std::string m = train_clip_bpe({"aaaa aaaa"}, 10, 2, &st);
  EXPECT_EQ(m, "#version: 0.2\na a\na a</w>\naa aa</w>\n");
  EXPECT_EQ(st.merges, 3);
  EXPECT_EQ(st.words, 2);
  EXPECT_EQ(st.distinct_words, 1);
  EXPECT_EQ(st.last_count, 2);
  const ClipTokenizer t = ClipTokenizer::from_merges(m, "test");
  EXPECT_EQ(t.tokenize("aaaa"), std::vector<std::string>{"aaaa</w>"});
  EXPECT_EQ(t.tokenize("aaa"), (std::vector<std::string>{"aa", "a</w>"}));
}

TEST(BpeTrainer, StopsAtTheRequestedNumberOfMerges) {
  BpeTrainStats st;
  const std::string m = train_clip_bpe(emoji_like_captions(), 7, 2, &st);
  const auto lines = merge_lines(m);
  ASSERT_EQ(lines.size(), 8u);
  EXPECT_EQ(lines[0], "#version: 0.2");
  EXPECT_EQ(st.merges, 7);
  for (size_t i = 1; i < lines.size(); ++i)
    EXPECT_EQ(std::count(lines[i].begin(), lines[i].end(), ' '), 1) << lines[i];
  // Asked for many: stops when no pair occurs twice.
  train_clip_bpe(emoji_like_captions(), 40000, 2, &st);
  EXPECT_LT(st.merges, 40000);
  EXPECT_GE(st.last_count, 2);
}

TEST(BpeTrainer, TrainedTokenizerRoundTripsEnglishAndChinese) {
  const std::string merges = train_clip_bpe(emoji_like_captions(), 300);
  const ClipTokenizer t = ClipTokenizer::from_merges(merges, "trained");
  // CLIP's vocabulary layout: 512 byte symbols, one token per merge, then the two special tokens.
  const int n_merges = int(merge_lines(merges).size()) - 1;
  EXPECT_EQ(t.vocab_size(), 512 + n_merges + 2);
  EXPECT_EQ(t.bos_id(), 512 + n_merges);
  EXPECT_EQ(t.eos_id(), 512 + n_merges + 1);
  // Decoding gives the cleaned text (lower case, words joined by single spaces, as CLIP's decode does: punctuation
  // is a word of its own). Texts outside the training captions too: every byte has a token.
  const ClipTokenizer clip = ClipTokenizer::builtin();
  for (const std::string text : {"red apple", "红苹果", "woman technologist: medium skin tone", "Green  APPLE",
                                 "水果，红，红苹果，苹果", "a purple dragon 紫色的龙 🐉", "flag: japan"}) {
    const std::vector<int> ids = t.encode(text);
    const std::string back = t.decode(ids);
    EXPECT_EQ(back, clip.decode(clip.encode(text))) << text;
    for (int id : ids) EXPECT_TRUE(id >= 0 && id < t.bos_id()) << text;
  }
  EXPECT_EQ(t.decode(t.encode("red apple")), "red apple");
  EXPECT_EQ(t.decode(t.encode("红苹果")), "红苹果");
  EXPECT_EQ(t.decode(t.encode("Green  APPLE")), "green apple");
  EXPECT_EQ(t.decode(t.encode("woman technologist: medium skin tone")), "woman technologist : medium skin tone");
  EXPECT_EQ(t.decode(t.encode_with_special("red apple")), "red apple");
}

TEST(BpeTrainer, FrequentWordsBecomeOneToken) {
  const ClipTokenizer t = ClipTokenizer::from_merges(train_clip_bpe(emoji_like_captions(), 300), "trained");
  for (const std::string word : {"apple", "red", "face", "technologist", "flag"})
    EXPECT_EQ(t.tokenize(word), std::vector<std::string>{word + "</w>"}) << word;
  EXPECT_EQ(t.encode("red apple").size(), 2u);
  // Chinese names take far fewer tokens than their UTF-8 bytes.
  for (const std::string zh : {"红苹果", "青苹果", "狗脸", "女技术员"}) {
    EXPECT_LT(t.encode(zh).size() * 2, zh.size()) << zh;
  }
  EXPECT_EQ(t.encode("红苹果").size(), 1u);
}

TEST(BpeTrainer, IsDeterministic) {
  std::vector<std::string> texts = emoji_like_captions();
  const std::string a = train_clip_bpe(texts, 200);
  EXPECT_EQ(train_clip_bpe(texts, 200), a);
  std::reverse(texts.begin(), texts.end());
  EXPECT_EQ(train_clip_bpe(texts, 200), a);
  // Fewer merges give a prefix of the same list.
  const std::string b = train_clip_bpe(texts, 50);
  EXPECT_EQ(a.compare(0, b.size(), b), 0);
}

TEST(BpeTrainer, ManyCaptionsQuickly) {
  // 20000 captions of random syllables (a fixed LCG), 2000 merges: well under a second in a Release build.
  std::vector<std::string> texts;
  const char* syl[] = {"ka", "ri", "mo", "ne", "su", "to", "pa", "li", "红", "苹", "果", "狗", "脸", "心"};
  uint32_t x = 12345;
  auto next = [&] { return (x = x * 1103515245u + 12345u) >> 16; };
  for (int i = 0; i < 20000; ++i) {
    std::string caption;
    for (int w = 0, nw = 1 + int(next() % 4); w < nw; ++w) {
      if (w) caption += ' ';
      for (int s = 0, ns = 1 + int(next() % 4); s < ns; ++s) caption += syl[next() % 14];
    }
    texts.push_back(caption);
  }
  BpeTrainStats st;
  const std::string m = train_clip_bpe(texts, 2000, 2, &st);
  EXPECT_EQ(st.texts, 20000);
  EXPECT_GT(st.merges, 100);
  const ClipTokenizer t = ClipTokenizer::from_merges(m, "random");
  for (int i = 0; i < 50; ++i) EXPECT_EQ(t.decode(t.encode(texts[size_t(i)])), texts[size_t(i)]);
}

TEST(BpeTrainer, RefusesBadArguments) {
  EXPECT_NE(error_of([] { train_clip_bpe({"red apple"}, 0); }).find("from 1 to 48894"), std::string::npos);
  EXPECT_NE(error_of([] { train_clip_bpe({"red apple"}, 50000); }).find("from 1 to 48894"), std::string::npos);
  EXPECT_NE(error_of([] { train_clip_bpe({"red apple"}, 10); }).find("nothing to learn"), std::string::npos);
  EXPECT_NE(error_of([] { train_clip_bpe({}, 10); }).find("nothing to learn"), std::string::npos);
}

TEST(BpeTrainer, ReadsCaptionFolders) {
  const fs::path dir = fs::temp_directory_path() / ("pigment_bpe_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "train" / "sub");
  std::ofstream(dir / "train" / "1f34e.txt") << "red apple\r\n红苹果\n\n  \napple, fruit, red";
  std::ofstream(dir / "train" / "1f34e.png") << "not read";
  std::ofstream(dir / "train" / "sub" / "b.txt") << "dog face\n";
  std::ofstream(dir / "metadata.jsonl") << "{\"name\": \"not a caption\"}\n";
  EXPECT_EQ(read_caption_folder(dir.string()),
            (std::vector<std::string>{"red apple", "红苹果", "apple, fruit, red", "dog face"}));
  EXPECT_EQ(read_caption_lines((dir / "train" / "sub" / "b.txt").string()), std::vector<std::string>{"dog face"});
  fs::create_directories(dir / "empty");
  EXPECT_NE(error_of([&] { read_caption_folder((dir / "empty").string()); }).find("no caption (.txt) files"),
            std::string::npos);
  EXPECT_NE(error_of([&] { read_caption_folder((dir / "none").string()); }).find("not a folder"), std::string::npos);
  EXPECT_NE(error_of([&] { read_caption_lines((dir / "none.txt").string()); }).find("cannot open"),
            std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace pigment
