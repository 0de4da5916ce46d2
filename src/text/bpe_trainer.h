// Learns a byte-level BPE from captions, in the format of CLIP's merges.txt, so that ClipTokenizer::from_merges()
// turns the result into a tokenizer: the 256 byte symbols, the same with "</w>", one token per merge, then
// <|startoftext|> and <|endoftext|>. What pigment's own model tokenizes with (`pigment tokenizer train`).
//
// The words are exactly what ClipTokenizer splits (ClipTokenizer::word_symbols: ftfy clean-up, white space, lower
// case, CLIP's split pattern, bytes_to_unicode symbols, "</w>" on a word's last symbol). Training is the classic
// algorithm: count the words, then repeatedly merge the most frequent adjacent pair of symbols (counted over every
// occurrence of every word, each occurrence merged left to right as the tokenizer does), until num_merges merges
// exist or no pair occurs min_pair_count times. Ties go to the pair whose left symbol, then right symbol, is
// byte-wise smallest, so the result depends on the texts alone (not on their order or the machine). Pair counts are
// updated incrementally, only in the words that hold the merged pair.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pigment {

struct BpeTrainStats {
  int64_t texts = 0, words = 0;  // texts read, words in them
  int64_t distinct_words = 0;
  int merges = 0;                // merges made (<= num_merges)
  int64_t last_count = 0;        // how often the last merged pair occurred
};

// The largest number of merges ClipTokenizer reads (CLIP's table size).
inline constexpr int kMaxClipMerges = 48894;

// merges.txt text: a "#version: 0.2" line, then "left right" per merge in rank order, each line ending in '\n'.
std::string train_clip_bpe(const std::vector<std::string>& texts, int num_merges, int min_pair_count = 2,
                           BpeTrainStats* stats = nullptr);

// Every non-empty line of a UTF-8 text file is one caption (a trailing '\r' is dropped). Throws naming the file.
std::vector<std::string> read_caption_lines(const std::string& path);
// The captions of a training folder (kohya layout, searched recursively, in path order): every line of every .txt
// file — pigment's emoji data set writes several captions per image, one per line. An error if the folder holds no
// .txt file.
std::vector<std::string> read_caption_folder(const std::string& folder);

}  // namespace pigment
