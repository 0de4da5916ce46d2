// CLIP's byte-level BPE tokenizer, as transformers 4.36 CLIPTokenizer (the slow one, with ftfy installed) computes
// it, so that token ids match the reference exactly:
//   1. added tokens (<|startoftext|>, <|endoftext|>, textual-inversion words) are split out of the raw text first,
//      case-sensitively, leftmost and longest match first;
//   2. every other piece: ftfy.fix_text, whitespace collapsed and stripped, Python str.lower();
//   3. split with `<|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`;
//   4. each word's UTF-8 bytes mapped to printable characters (GPT-2's bytes_to_unicode), "</w>" appended to the
//      last one, and the pair of lowest merge rank merged until none is left.
// The vocabulary is read from vocab.json + merges.txt, built from OpenAI's bpe_simple_vocab_16e6.txt.gz, or taken
// from the table built into pigment (see tokenizer_files.h and clip_builtin.h).
#pragma once
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pigment {

struct TokenizerLocation;
struct TokenizerFiles;

class ClipTokenizer {
 public:
  static constexpr int kContextLength = 77;  // bos + 75 tokens + eos
  static constexpr int kSd2PadId = 0;        // "!": what SD2 / OpenCLIP / SDXL encoder-2 tokenizers pad with
  static constexpr const char* kSd2PadToken = "!";

  // Reads a vocab.json / merges.txt pair; throws pigment::Error naming the file and what is wrong.
  static ClipTokenizer from_files(const std::string& vocab_json, const std::string& merges_txt);
  // The vocabulary OpenAI's CLIP builds from its merges alone: the 256 byte symbols (bytes_to_unicode order), the
  // same with "</w>", one token per merge (its two halves joined), then <|startoftext|> and <|endoftext|>. `merges`
  // is merges.txt or the decompressed bpe_simple_vocab_16e6.txt (a first line holding "#version" is a header);
  // `source` names it in messages.
  static ClipTokenizer from_merges(std::string_view merges, const std::string& source);
  // The same vocabulary with no merges at all: every word stays its single bytes. What a BPE trainer starts from
  // (text/bpe_trainer.h).
  static ClipTokenizer bytes_only();
  // OpenAI's / open_clip's bpe_simple_vocab_16e6.txt.gz (gzip-compressed merges, first line a header).
  static ClipTokenizer from_bpe_gz(const std::string& path);
  // The table built into pigment (OpenAI CLIP's, the same as openai/clip-vit-large-patch14's vocab.json +
  // merges.txt); pads with <|endoftext|>. Built once, then copied.
  static ClipTokenizer builtin();
  // Reads what find_tokenizer_files() found. With pad_from_config, the pad token comes from special_tokens_map.json
  // or tokenizer_config.json beside vocab.json, if either exists; otherwise it is <|endoftext|> until
  // set_pad_token().
  static ClipTokenizer open(const TokenizerFiles& files, bool pad_from_config = true);
  // open(find_tokenizer_files(where)): a path the user gave, a diffusers model folder, the built-in table.
  static ClipTokenizer load(const TokenizerLocation& where);

  // Copies are independent (cheaper than reading the files again), e.g. an SD1 and an SD2 tokenizer from one load.

  int bos_id() const { return bos_id_; }  // 49406 for CLIP
  int eos_id() const { return eos_id_; }  // 49407; also SD1's padding
  int pad_id() const { return pad_id_; }  // eos_id() unless set_pad_token() chose another
  // The padding token, as a tokenizer config's pad_token: "<|endoftext|>" (SD1) or "!" (SD2, SDXL encoder 2).
  // transformers registers it as a special token, so it is then also cut out of prompts whole: with "!", every
  // "!" in a prompt becomes id 0 instead of joining neighbouring punctuation ("!!" -> 0 0, not "!!</w>").
  void set_pad_token(const std::string& token);
  // Base vocabulary plus added tokens; the next added token gets this id.
  int vocab_size() const;
  const std::string& source() const { return source_; }

  // How a piece of text is cleaned before it is split into words. kFtfy (the default) is CLIPTokenizer with ftfy
  // installed, the usual Stable Diffusion setup. kBasic is CLIPTokenizer without ftfy, which uses BERT's
  // BasicTokenizer instead: control characters dropped, CJK ideographs set apart, NFC, lower-case, and no HTML
  // decoding, ligature or width fixes. kOpenai is OpenAI CLIP's own SimpleTokenizer (ids_openai of the golden case):
  // ftfy, then Python's html.unescape twice (html_entities.h: HTML 4 names only), white space,
  // lower case.
  enum class TextCleanup { kFtfy, kBasic, kOpenai };
  void set_text_cleanup(TextCleanup cleanup) { cleanup_ = cleanup; }

  // Token strings in the byte-level alphabet ("a</w>", "ðŁĲ¶</w>", "<|endoftext|>").
  std::vector<std::string> tokenize(std::string_view text) const;
  // Ids of the text alone: no bos/eos, no truncation.
  std::vector<int> encode(std::string_view text) const;
  // bos + ids + eos, untruncated (CLIPTokenizer(text).input_ids).
  std::vector<int> encode_with_special(std::string_view text) const;
  // Truncated to bos + the first max_length-2 ids + eos, then padded to max_length with pad_id (negative: pad_id()).
  std::vector<int> encode_padded(std::string_view text, int max_length = kContextLength, int pad_id = -1) const;

  // The words of a text as the merges first see them (steps 1-4 above, before any merge): each word as its
  // byte-level symbols with "</w>" on the last ("red apple" -> {r, e, d</w>}, {a, p, p, l, e</w>}). Added tokens
  // and the two special tokens are cut out and left out. What a BPE trainer counts, so that its merges apply to
  // exactly what encode() splits.
  std::vector<std::vector<std::string>> word_symbols(std::string_view text) const;

  // Adds a word (a textual-inversion trigger such as "<my-concept>") that is then matched as one whole token
  // wherever it occurs in a prompt, exactly as written. Returns its id (vocab_size() before the call). Adding the
  // same word again returns the same id; a word that is already in the base vocabulary is an error.
  int add_token(const std::string& word);
  // -1 when the token is unknown. Looks at added tokens, then the vocabulary.
  int token_to_id(std::string_view token) const;
  std::string id_to_token(int id) const;  // "" for an unknown id
  // Text of ids: byte-level symbols decoded to UTF-8, "</w>" read as a space, bos/eos dropped when asked.
  std::string decode(const std::vector<int>& ids, bool skip_special = true) const;

 private:
  ClipTokenizer() = default;
  struct Piece {
    std::string text;
    int added_id;  // >= 0 when the piece is an added token
  };
  std::vector<Piece> split_added(std::string_view text) const;
  void tokenize_piece(std::string_view text, std::vector<std::string>& out) const;
  // Cleaned, lower-cased and split words of a piece, each as byte-level characters (no "</w>"); the special tokens
  // as they are.
  std::vector<std::string> piece_words(std::string_view text) const;
  static std::vector<std::string> initial_symbols(const std::string& word);
  static ClipTokenizer from_pairs(const std::vector<std::pair<std::string_view, std::string_view>>& pairs,
                                  ClipTokenizer t);
  void bpe(const std::string& word, std::vector<std::string>& out) const;
  // Reads merge ranks from merges text (up to CLIP's 48894); returns the merges in rank order.
  std::vector<std::pair<std::string_view, std::string_view>> read_merges(std::string_view text,
                                                                         const std::string& name);
  void init_byte_symbols();
  void init_special_tokens(const std::string& name);

  std::unordered_map<std::string, int> vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<std::string, int> merge_ranks_;  // "left right" -> rank
  std::vector<std::pair<std::string, int>> added_;    // in order of addition, special tokens first
  std::string byte_to_symbol_[256];
  std::unordered_map<std::string, unsigned char> symbol_to_byte_;
  int bos_id_ = -1, eos_id_ = -1, pad_id_ = -1;
  TextCleanup cleanup_ = TextCleanup::kFtfy;
  std::string source_;
  // BPE of a word depends only on the word; cached as transformers does (guarded: tokenizers are shared between
  // threads). A copy starts with an empty cache.
  struct BpeCache {
    std::unordered_map<std::string, std::vector<std::string>> words;
    std::mutex mutex;
    BpeCache() = default;
    BpeCache(const BpeCache&) {}
    BpeCache& operator=(const BpeCache&) {
      std::lock_guard<std::mutex> lock(mutex);
      words.clear();
      return *this;
    }
  };
  mutable BpeCache cache_;
};

}  // namespace pigment
