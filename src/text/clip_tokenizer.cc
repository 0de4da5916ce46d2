#include "text/clip_tokenizer.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "io/gzip.h"
#include "text/clip_builtin.h"
#include "text/fix_text.h"
#include "text/html_entities.h"
#include "text/tokenizer_files.h"
#include "text/unicode_text.h"

namespace pigment {
namespace {

constexpr const char* kStartOfText = "<|startoftext|>";
constexpr const char* kEndOfText = "<|endoftext|>";
// transformers reads at most this many merges (49152 - 256 - 2): the size of CLIP's table.
constexpr size_t kMaxMerges = 48894;

std::string read_file(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  PIG_CHECK(f, path, ": cannot open ", what);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The regex module matches case-insensitively by simple case folding: only U+017F (long s) folds onto one of the
// ASCII letters these literals use, once the text is lower-case.
bool same_letter(char32_t text, char32_t ascii) { return text == ascii || (ascii == U's' && text == 0x17F); }

bool literal_at(const std::u32string& s, size_t i, std::u32string_view lit) {
  if (s.size() - i < lit.size()) return false;
  for (size_t k = 0; k < lit.size(); ++k)
    if (!same_letter(s[i + k], lit[k])) return false;
  return true;
}

// CLIP's split pattern over lower-cased, cleaned text; returns the matched words in order.
std::vector<std::u32string> split_words(const std::u32string& s) {
  static const std::u32string_view kSpecials[] = {U"<|startoftext|>", U"<|endoftext|>"};
  static const std::u32string_view kContractions[] = {U"'s", U"'t", U"'re", U"'ve", U"'m", U"'ll", U"'d"};
  std::vector<std::u32string> words;
  size_t i = 0, n = s.size();
  while (i < n) {
    size_t len = 0;
    for (auto lit : kSpecials)
      if (!len && literal_at(s, i, lit)) len = lit.size();
    if (!len && s[i] == U'\'')
      for (auto lit : kContractions)
        if (!len && literal_at(s, i, lit)) len = lit.size();
    if (!len) {
      char32_t c = s[i];
      if (is_letter(c)) {
        len = 1;
        while (i + len < n && is_letter(s[i + len])) ++len;
      } else if (is_number(c)) {
        len = 1;
      } else if (!is_unicode_space(c)) {
        len = 1;
        while (i + len < n && !is_unicode_space(s[i + len]) && !is_letter(s[i + len]) && !is_number(s[i + len])) ++len;
      } else {
        ++i;  // white space separates words and is dropped
        continue;
      }
    }
    words.push_back(s.substr(i, len));
    i += len;
  }
  return words;
}

// Reads vocab.json ({"token": id, ...}) without building a JSON tree: it is 49408 entries.
struct VocabReader : nlohmann::json_sax<nlohmann::json> {
  explicit VocabReader(std::unordered_map<std::string, int>& vocab) : vocab_(vocab) {}
  std::string error;
  int max_id = -1;

  bool null() override { return value("null"); }
  bool boolean(bool) override { return value("a boolean"); }
  bool number_integer(number_integer_t v) override { return id(v); }
  bool number_unsigned(number_unsigned_t v) override {
    return v > number_unsigned_t(INT_MAX) ? value("a too large number") : id(int64_t(v));
  }
  bool number_float(number_float_t, const string_t&) override { return value("a fractional number"); }
  bool string(string_t&) override { return value("a string"); }
  bool binary(binary_t&) override { return value("binary data"); }
  bool start_object(std::size_t) override {
    if (depth_++ == 0) return true;
    return value("an object");
  }
  bool key(string_t& k) override {
    key_ = k;
    return true;
  }
  bool end_object() override {
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override { return depth_ == 0 ? top("an array") : value("an array"); }
  bool end_array() override { return true; }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
    error = "invalid JSON at byte " + std::to_string(position) + ": " + e.what();
    return false;
  }

 private:
  bool top(const char* what) {
    error = std::string("expected a JSON object mapping tokens to ids, found ") + what;
    return false;
  }
  bool value(const char* what) {
    if (depth_ == 0) return top(what);
    error = "token '" + key_ + "' has " + what + " as its id, expected a non-negative integer";
    return false;
  }
  bool id(int64_t v) {
    if (depth_ == 0) return top("a number");
    if (v < 0 || v > INT_MAX) return value("a negative or too large number");
    vocab_[key_] = int(v);
    max_id = std::max(max_id, int(v));
    return true;
  }
  std::unordered_map<std::string, int>& vocab_;
  std::string key_;
  int depth_ = 0;
};

}  // namespace

ClipTokenizer ClipTokenizer::load(const TokenizerLocation& where) { return open(find_tokenizer_files(where)); }

ClipTokenizer ClipTokenizer::open(const TokenizerFiles& files, bool pad_from_config) {
  if (files.builtin()) return builtin();
  if (files.openai_gz()) return from_bpe_gz(files.merges);
  ClipTokenizer t = from_files(files.vocab, files.merges);
  if (!pad_from_config) return t;
  // special_tokens_map.json wins over tokenizer_config.json, as in transformers.
  std::filesystem::path dir = std::filesystem::path(files.vocab).parent_path();
  for (const char* name : {"special_tokens_map.json", "tokenizer_config.json"}) {
    std::filesystem::path p = dir / name;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(p, ec)) continue;
    nlohmann::json cfg;
    try {
      cfg = nlohmann::json::parse(read_file(p.string(), "the tokenizer config"));
    } catch (const nlohmann::json::exception& e) {
      fail(p.string(), ": invalid JSON: ", e.what());
    }
    if (!cfg.is_object() || !cfg.contains("pad_token") || cfg["pad_token"].is_null()) continue;
    const auto& pad = cfg["pad_token"];
    if (pad.is_string())
      t.set_pad_token(pad.get<std::string>());
    else if (pad.is_object() && pad.contains("content") && pad["content"].is_string())
      t.set_pad_token(pad["content"].get<std::string>());
    else
      fail(p.string(), ": pad_token must be a string or an object with 'content'");
    break;
  }
  return t;
}

ClipTokenizer ClipTokenizer::builtin() {
  static const ClipTokenizer prototype = from_merges(builtin_clip_merges(), "the built-in CLIP tokenizer");
  return prototype;
}

ClipTokenizer ClipTokenizer::from_bpe_gz(const std::string& path) { return from_merges(gunzip_file(path), path); }

ClipTokenizer ClipTokenizer::from_merges(std::string_view merges, const std::string& source) {
  ClipTokenizer t;
  t.source_ = source;
  const auto pairs = t.read_merges(merges, source);
  return from_pairs(pairs, std::move(t));
}

ClipTokenizer ClipTokenizer::bytes_only() {
  ClipTokenizer t;
  t.source_ = "the byte-level vocabulary without merges";
  return from_pairs({}, std::move(t));
}

ClipTokenizer ClipTokenizer::from_pairs(const std::vector<std::pair<std::string_view, std::string_view>>& pairs,
                                        ClipTokenizer t) {
  t.init_byte_symbols();
  // bytes_to_unicode's symbols in its order, which is ascending code point order.
  std::vector<std::string> symbols;
  for (int b = 0; b < 256; ++b) symbols.push_back(t.byte_to_symbol_[b]);
  std::sort(symbols.begin(), symbols.end(), [](const std::string& a, const std::string& b) {
    return utf8_to_u32(a) < utf8_to_u32(b);
  });
  std::vector<std::string>& tokens = t.id_to_token_;
  tokens.reserve(512 + pairs.size() + 2);
  tokens = symbols;
  for (const auto& s : symbols) tokens.push_back(s + "</w>");
  for (const auto& [left, right] : pairs) tokens.push_back(std::string(left) + std::string(right));
  tokens.push_back(kStartOfText);
  tokens.push_back(kEndOfText);
  t.vocab_.reserve(tokens.size() * 2);
  for (size_t id = 0; id < tokens.size(); ++id) t.vocab_[tokens[id]] = int(id);  // a later duplicate wins, as dict()
  t.init_special_tokens(t.source_);
  return t;
}

void ClipTokenizer::set_pad_token(const std::string& token) {
  int id = token_to_id(token);
  PIG_CHECK(id >= 0, "tokenizer ", source_, ": pad token '", token, "' is not in the vocabulary");
  bool known = std::any_of(added_.begin(), added_.end(), [&](const auto& a) { return a.first == token; });
  if (!known) added_.emplace_back(token, id);
  pad_id_ = id;
}

ClipTokenizer ClipTokenizer::from_files(const std::string& vocab_json, const std::string& merges_txt) {
  ClipTokenizer t;
  t.source_ = vocab_json;

  VocabReader reader(t.vocab_);
  const std::string vocab_text = read_file(vocab_json, "the tokenizer vocabulary");
  t.vocab_.reserve(65536);
  bool parsed = nlohmann::json::sax_parse(vocab_text, &reader);
  PIG_CHECK(parsed && reader.error.empty(), vocab_json, ": ",
            reader.error.empty() ? std::string("invalid JSON") : reader.error);
  PIG_CHECK(!t.vocab_.empty(), vocab_json, ": expected a JSON object mapping tokens to ids, found no entries");
  int max_id = reader.max_id;
  t.id_to_token_.assign(size_t(max_id) + 1, std::string());
  for (const auto& [token, id] : t.vocab_) t.id_to_token_[size_t(id)] = token;
  t.init_special_tokens(vocab_json);

  const std::string merges = read_file(merges_txt, "the BPE merges");
  t.read_merges(merges, merges_txt);
  t.init_byte_symbols();
  return t;
}

void ClipTokenizer::init_special_tokens(const std::string& name) {
  for (const char* special : {kStartOfText, kEndOfText}) {
    PIG_CHECK(vocab_.count(special), name, ": no '", special, "' entry; not a CLIP vocabulary");
    added_.emplace_back(special, vocab_[special]);
  }
  bos_id_ = vocab_[kStartOfText];
  eos_id_ = vocab_[kEndOfText];
  pad_id_ = eos_id_;
}

std::vector<std::pair<std::string_view, std::string_view>> ClipTokenizer::read_merges(std::string_view merges,
                                                                                      const std::string& name) {
  std::vector<std::pair<std::string_view, std::string_view>> pairs;
  pairs.reserve(kMaxMerges);
  merge_ranks_.reserve(kMaxMerges * 2);
  size_t line_no = 0, rank = 0, pos = 0;
  while (pos < merges.size() && rank < kMaxMerges) {
    size_t end = merges.find('\n', pos);
    if (end == std::string::npos) end = merges.size();
    std::string_view line(merges.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    // "#version: 0.2" (merges.txt) or "\"bpe_simple_vocab_16e6.txt#version: 0.2" (OpenAI's file).
    if (line_no == 1 && ((!line.empty() && line[0] == '#') || line.find("#version") != std::string_view::npos))
      continue;
    // Fields separated by white space, as Python's str.split().
    std::vector<std::string_view> fields;
    for (size_t i = 0; i < line.size();) {
      while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
      size_t j = i;
      while (j < line.size() && !std::isspace(static_cast<unsigned char>(line[j]))) ++j;
      if (j > i) fields.push_back(line.substr(i, j - i));
      i = j;
    }
    if (fields.empty()) continue;  // blank line (the file's trailing newline)
    PIG_CHECK(fields.size() == 2, name, ":", line_no, ": expected two symbols separated by a space, got '",
              std::string(line), "'");
    std::string key(fields[0]);
    key += ' ';
    key += fields[1];
    merge_ranks_[std::move(key)] = int(rank++);
    pairs.emplace_back(fields[0], fields[1]);
  }
  PIG_CHECK(rank > 0, name, ": no merges found (expected lines such as 'i n' after a '#version' header)");
  return pairs;
}

void ClipTokenizer::init_byte_symbols() {
  // GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the rest for U+0100 onwards.
  int next = 0;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    char32_t sym = printable ? char32_t(b) : char32_t(256 + next++);
    byte_to_symbol_[b].clear();
    append_utf8(byte_to_symbol_[b], sym);
    symbol_to_byte_[byte_to_symbol_[b]] = static_cast<unsigned char>(b);
  }
}

int ClipTokenizer::vocab_size() const {
  int base = std::max(int(vocab_.size()), int(id_to_token_.size()));
  int extra = 0;
  for (const auto& [word, id] : added_)
    if (id >= base) ++extra;
  return base + extra;
}

int ClipTokenizer::add_token(const std::string& word) {
  PIG_CHECK(!word.empty(), "tokenizer ", source_, ": cannot add an empty token");
  for (const auto& [w, id] : added_)
    if (w == word) return id;
  PIG_CHECK(!vocab_.count(word), "tokenizer ", source_, ": token '", word,
            "' is already in the vocabulary; choose another trigger word (for example '<", word, ">')");
  int id = vocab_size();
  added_.emplace_back(word, id);
  return id;
}

int ClipTokenizer::token_to_id(std::string_view token) const {
  for (const auto& [w, id] : added_)
    if (w == token) return id;
  auto it = vocab_.find(std::string(token));
  return it == vocab_.end() ? -1 : it->second;
}

std::string ClipTokenizer::id_to_token(int id) const {
  for (const auto& [w, i] : added_)
    if (i == id) return w;
  if (id >= 0 && size_t(id) < id_to_token_.size()) return id_to_token_[size_t(id)];
  return "";
}

// Added tokens are cut out of the raw text first: at each position the earliest-starting, then longest, match.
std::vector<ClipTokenizer::Piece> ClipTokenizer::split_added(std::string_view text) const {
  std::vector<Piece> pieces;
  size_t start = 0, i = 0;
  while (i < text.size()) {
    int best = -1;
    size_t best_len = 0;
    for (size_t k = 0; k < added_.size(); ++k) {
      const std::string& w = added_[k].first;
      if (w.size() > best_len && text.compare(i, w.size(), w) == 0) {
        best = int(k);
        best_len = w.size();
      }
    }
    if (best < 0) {
      ++i;
      continue;
    }
    if (i > start) pieces.push_back({std::string(text.substr(start, i - start)), -1});
    pieces.push_back({added_[size_t(best)].first, added_[size_t(best)].second});
    i += best_len;
    start = i;
  }
  if (start < text.size()) pieces.push_back({std::string(text.substr(start)), -1});
  return pieces;
}

void ClipTokenizer::bpe(const std::string& word, std::vector<std::string>& out) const {
  {
    std::lock_guard<std::mutex> lock(cache_.mutex);
    auto it = cache_.words.find(word);
    if (it != cache_.words.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<std::string> symbols = initial_symbols(word);
  while (symbols.size() > 1) {
    int best_rank = INT_MAX;
    size_t best = 0;
    for (size_t k = 0; k + 1 < symbols.size(); ++k) {
      auto it = merge_ranks_.find(symbols[k] + " " + symbols[k + 1]);
      if (it != merge_ranks_.end() && it->second < best_rank) {
        best_rank = it->second;
        best = k;
      }
    }
    if (best_rank == INT_MAX) break;
    const std::string first = symbols[best], second = symbols[best + 1];
    std::vector<std::string> merged;
    merged.reserve(symbols.size());
    for (size_t k = 0; k < symbols.size();) {
      if (k + 1 < symbols.size() && symbols[k] == first && symbols[k + 1] == second) {
        merged.push_back(first + second);
        k += 2;
      } else {
        merged.push_back(symbols[k++]);
      }
    }
    symbols = std::move(merged);
  }
  {
    std::lock_guard<std::mutex> lock(cache_.mutex);
    cache_.words.emplace(word, symbols);
  }
  out.insert(out.end(), symbols.begin(), symbols.end());
}

// One symbol per byte-level character; "</w>" marks the end of the word.
std::vector<std::string> ClipTokenizer::initial_symbols(const std::string& word) {
  std::vector<std::string> symbols;
  for (char32_t c : utf8_to_u32(word)) {
    symbols.emplace_back();
    append_utf8(symbols.back(), c);
  }
  if (!symbols.empty()) symbols.back() += "</w>";
  return symbols;
}

std::vector<std::string> ClipTokenizer::piece_words(std::string_view text) const {
  std::u32string clean;
  switch (cleanup_) {
    case TextCleanup::kFtfy: clean = python_lower(clip_whitespace_clean(ftfy_fix_text(utf8_to_u32(text)))); break;
    case TextCleanup::kBasic: clean = bert_basic_clean(utf8_to_u32(text)); break;
    case TextCleanup::kOpenai:
      clean = python_lower(
          clip_whitespace_clean(python_html_unescape(python_html_unescape(ftfy_fix_text(utf8_to_u32(text))))));
      break;
  }
  std::vector<std::string> words;
  for (const std::u32string& w : split_words(clean)) {
    std::string utf8 = u32_to_utf8(w);
    if (utf8 == kStartOfText || utf8 == kEndOfText) {  // the pattern keeps them whole; they are vocabulary entries
      words.push_back(std::move(utf8));
      continue;
    }
    std::string symbols;
    for (unsigned char b : utf8) symbols += byte_to_symbol_[b];
    words.push_back(std::move(symbols));
  }
  return words;
}

void ClipTokenizer::tokenize_piece(std::string_view text, std::vector<std::string>& out) const {
  for (const std::string& w : piece_words(text)) {
    if (w == kStartOfText || w == kEndOfText)
      out.push_back(w);
    else
      bpe(w, out);
  }
}

std::vector<std::vector<std::string>> ClipTokenizer::word_symbols(std::string_view text) const {
  std::vector<std::vector<std::string>> out;
  for (const Piece& p : split_added(text)) {
    if (p.added_id >= 0) continue;
    for (const std::string& w : piece_words(p.text))
      if (w != kStartOfText && w != kEndOfText) out.push_back(initial_symbols(w));
  }
  return out;
}

std::vector<std::string> ClipTokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> out;
  for (const Piece& p : split_added(text)) {
    if (p.added_id >= 0)
      out.push_back(p.text);
    else
      tokenize_piece(p.text, out);
  }
  return out;
}

std::vector<int> ClipTokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  std::vector<std::string> tokens;
  for (const Piece& p : split_added(text)) {
    if (p.added_id >= 0) {
      ids.push_back(p.added_id);
      continue;
    }
    tokens.clear();
    tokenize_piece(p.text, tokens);
    for (const auto& t : tokens) {
      auto it = vocab_.find(t);
      ids.push_back(it == vocab_.end() ? eos_id_ : it->second);  // unknown -> unk, which is <|endoftext|> for CLIP
    }
  }
  return ids;
}

std::vector<int> ClipTokenizer::encode_with_special(std::string_view text) const {
  std::vector<int> ids = encode(text);
  ids.insert(ids.begin(), bos_id_);
  ids.push_back(eos_id_);
  return ids;
}

std::vector<int> ClipTokenizer::encode_padded(std::string_view text, int max_length, int pad_id) const {
  PIG_CHECK(max_length >= 2, "tokenizer: max_length ", max_length, " leaves no room for the start and end tokens");
  std::vector<int> body = encode(text);
  if (body.size() > size_t(max_length - 2)) body.resize(size_t(max_length - 2));
  std::vector<int> ids;
  ids.reserve(size_t(max_length));
  ids.push_back(bos_id_);
  ids.insert(ids.end(), body.begin(), body.end());
  ids.push_back(eos_id_);
  ids.resize(size_t(max_length), pad_id < 0 ? pad_id_ : pad_id);
  return ids;
}

std::string ClipTokenizer::decode(const std::vector<int>& ids, bool skip_special) const {
  std::string out, run;
  auto flush = [&] {
    std::string bytes;
    for (char32_t c : utf8_to_u32(run)) {
      std::string sym;
      append_utf8(sym, c);
      auto it = symbol_to_byte_.find(sym);
      bytes += it == symbol_to_byte_.end() ? sym : std::string(1, char(it->second));
    }
    out += bytes;
    run.clear();
  };
  for (int id : ids) {
    if (skip_special && (id == bos_id_ || id == eos_id_)) continue;
    std::string tok = id_to_token(id);
    bool added = std::any_of(added_.begin(), added_.end(), [&](const auto& a) { return a.second == id; });
    if (added && id != bos_id_ && id != eos_id_) {
      flush();
      out += tok + " ";
      continue;
    }
    if (tok.size() >= 4 && tok.compare(tok.size() - 4, 4, "</w>") == 0) {  // "</w>" only ever ends a token
      tok.resize(tok.size() - 4);
      tok.push_back(' ');
    }
    run += tok;
  }
  flush();
  // Bytes that do not form valid UTF-8 become U+FFFD (errors="replace").
  std::string text = u32_to_utf8(utf8_to_u32(out));
  size_t b = text.find_first_not_of(' '), e = text.find_last_not_of(' ');
  return b == std::string::npos ? "" : text.substr(b, e - b + 1);
}

}  // namespace pigment
