#include "text/bpe_trainer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <queue>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "text/clip_tokenizer.h"

namespace pigment {
namespace {

using PairKey = uint64_t;
PairKey pair_key(int a, int b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
int pair_left(PairKey k) { return int(k >> 32); }
int pair_right(PairKey k) { return int(k & 0xffffffffu); }

struct Word {
  std::vector<int> symbols;
  int64_t count = 0;
};

class Trainer {
 public:
  int symbol_id(const std::string& s) {
    auto [it, added] = ids_.emplace(s, int(names_.size()));
    if (added) names_.push_back(s);
    return it->second;
  }

  void add_word(const std::vector<std::string>& symbols) {
    std::string key;
    for (const auto& s : symbols) key += s;  // symbols come from the word's bytes, so their concatenation is unique
    auto [it, added] = word_index_.emplace(std::move(key), int(words_.size()));
    if (added) {
      Word w;
      for (const auto& s : symbols) w.symbols.push_back(symbol_id(s));
      words_.push_back(std::move(w));
    }
    ++words_[size_t(it->second)].count;
  }

  int64_t distinct_words() const { return int64_t(words_.size()); }

  void count_pairs() {
    for (size_t w = 0; w < words_.size(); ++w) {
      const Word& word = words_[w];
      for (size_t k = 0; k + 1 < word.symbols.size(); ++k) {
        PairKey p = pair_key(word.symbols[k], word.symbols[k + 1]);
        counts_[p] += word.count;
        auto& where = where_[p];
        if (where.empty() || where.back() != int(w)) where.push_back(int(w));
      }
    }
    for (const auto& [p, c] : counts_) heap_.push({c, pair_left(p), pair_right(p)});
  }

  // The most frequent pair still present (ties: smallest left, then right symbol); false when none occurs
  // min_count times.
  bool best_pair(int64_t min_count, int& left, int& right, int64_t& count) {
    while (!heap_.empty()) {
      Entry e = heap_.top();
      auto it = counts_.find(pair_key(e.left, e.right));
      if (it == counts_.end() || it->second != e.count) {  // stale: the count changed after this entry was pushed
        heap_.pop();
        continue;
      }
      if (e.count < min_count) return false;
      heap_.pop();
      left = e.left, right = e.right, count = e.count;
      return true;
    }
    return false;
  }

  // Replaces every occurrence of (left, right), left to right in each word, by the joined symbol.
  void merge(int left, int right) {
    const PairKey merged_pair = pair_key(left, right);
    const int joined = symbol_id(names_[size_t(left)] + names_[size_t(right)]);
    std::vector<int> holders = std::move(where_[merged_pair]);
    where_.erase(merged_pair);
    std::unordered_set<PairKey> touched;
    std::vector<int> next;
    for (int w : holders) {
      Word& word = words_[size_t(w)];
      const std::vector<int>& s = word.symbols;
      bool present = false;
      for (size_t k = 0; k + 1 < s.size() && !present; ++k) present = s[k] == left && s[k + 1] == right;
      if (!present) continue;  // a stale holder: an earlier merge took the pair away
      next.clear();
      for (size_t k = 0; k < s.size();) {
        if (k + 1 < s.size() && s[k] == left && s[k + 1] == right) {
          next.push_back(joined);
          k += 2;
        } else {
          next.push_back(s[k++]);
        }
      }
      for (size_t k = 0; k + 1 < s.size(); ++k) {
        PairKey p = pair_key(s[k], s[k + 1]);
        counts_[p] -= word.count;
        touched.insert(p);
      }
      for (size_t k = 0; k + 1 < next.size(); ++k) {
        PairKey p = pair_key(next[k], next[k + 1]);
        counts_[p] += word.count;
        touched.insert(p);
        // Pairs without the new symbol were in this word before, so it is already listed as their holder.
        if (next[k] == joined || next[k + 1] == joined) {
          auto& where = where_[p];
          if (where.empty() || where.back() != w) where.push_back(w);
        }
      }
      word.symbols.swap(next);
    }
    for (PairKey p : touched) {
      auto it = counts_.find(p);
      if (it->second <= 0)
        counts_.erase(it);
      else
        heap_.push({it->second, pair_left(p), pair_right(p)});
    }
  }

  const std::string& name(int id) const { return names_[size_t(id)]; }

 private:
  struct Entry {
    int64_t count;
    int left, right;
  };
  // priority_queue keeps the largest on top: "less" means a larger count loses, or an equal count with the
  // byte-wise larger pair.
  struct Lower {
    const Trainer* t;
    bool operator()(const Entry& a, const Entry& b) const {
      if (a.count != b.count) return a.count < b.count;
      const std::string &al = t->names_[size_t(a.left)], &bl = t->names_[size_t(b.left)];
      if (al != bl) return al > bl;
      return t->names_[size_t(a.right)] > t->names_[size_t(b.right)];
    }
  };

  std::vector<std::string> names_;
  std::unordered_map<std::string, int> ids_;
  std::vector<Word> words_;
  std::unordered_map<std::string, int> word_index_;
  std::unordered_map<PairKey, int64_t> counts_;
  std::unordered_map<PairKey, std::vector<int>> where_;  // words that hold (or held) the pair, each listed once
  std::priority_queue<Entry, std::vector<Entry>, Lower> heap_{Lower{this}};
};

}  // namespace

std::string train_clip_bpe(const std::vector<std::string>& texts, int num_merges, int min_pair_count,
                           BpeTrainStats* stats) {
  PIG_CHECK(num_merges >= 1 && num_merges <= kMaxClipMerges, "BPE training: the number of merges must be from 1 to ",
            kMaxClipMerges, " (CLIP's table size), got ", num_merges);
  PIG_CHECK(min_pair_count >= 1, "BPE training: the minimum pair count must be at least 1, got ", min_pair_count);
  const ClipTokenizer splitter = ClipTokenizer::bytes_only();
  Trainer t;
  BpeTrainStats s;
  for (const std::string& text : texts) {
    ++s.texts;
    for (const auto& word : splitter.word_symbols(text)) {
      t.add_word(word);
      ++s.words;
    }
  }
  s.distinct_words = t.distinct_words();
  t.count_pairs();

  std::string out = "#version: 0.2\n";
  int left = 0, right = 0;
  int64_t count = 0;
  while (s.merges < num_merges && t.best_pair(min_pair_count, left, right, count)) {
    out += t.name(left);
    out += ' ';
    out += t.name(right);
    out += '\n';
    t.merge(left, right);
    ++s.merges;
    s.last_count = count;
  }
  PIG_CHECK(s.merges > 0, "BPE training: no pair of symbols occurs ", min_pair_count, " times in the ", s.texts,
            " text(s) given; nothing to learn");
  if (stats) *stats = s;
  return out;
}

std::vector<std::string> read_caption_lines(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  PIG_CHECK(f, path, ": cannot open the caption file");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(f, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") != std::string::npos) lines.push_back(line);
  }
  PIG_CHECK(!f.bad(), path, ": read error");
  return lines;
}

std::vector<std::string> read_caption_folder(const std::string& folder) {
  namespace fs = std::filesystem;
  std::error_code ec;
  PIG_CHECK(fs::is_directory(folder, ec), folder, ": not a folder");
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(folder, fs::directory_options::follow_directory_symlink, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->is_regular_file() && it->path().extension() == ".txt") files.push_back(it->path());
  PIG_CHECK(!ec, folder, ": cannot list the folder: ", ec.message());
  PIG_CHECK(!files.empty(), folder, ": no caption (.txt) files found");
  std::sort(files.begin(), files.end());
  std::vector<std::string> captions;
  for (const auto& f : files) {
    std::vector<std::string> lines = read_caption_lines(f.string());
    captions.insert(captions.end(), std::make_move_iterator(lines.begin()), std::make_move_iterator(lines.end()));
  }
  return captions;
}

}  // namespace pigment
