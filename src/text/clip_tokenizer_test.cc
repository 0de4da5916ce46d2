#include "text/clip_tokenizer.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

#include <zlib.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/gzip.h"
#include "text/clip_builtin.h"
#include "text/text_test_util.h"
#include "text/tokenizer_files.h"

namespace pigment {
namespace {

namespace fs = std::filesystem;
using testing::sd1_tokenizer;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A fresh temporary folder, removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    path =
        fs::temp_directory_path() / ("pigment_text_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

// Sets environment variables for the scope of a test and restores them afterwards.
struct EnvGuard {
  std::map<std::string, std::optional<std::string>> saved;
  void set(const std::string& name, const std::optional<std::string>& value) {
    if (!saved.count(name)) {
      const char* old = std::getenv(name.c_str());
      saved[name] = old ? std::optional<std::string>(old) : std::nullopt;
    }
    if (value)
      ::setenv(name.c_str(), value->c_str(), 1);
    else
      ::unsetenv(name.c_str());
  }
  ~EnvGuard() {
    for (const auto& [k, v] : saved) {
      if (v)
        ::setenv(k.c_str(), v->c_str(), 1);
      else
        ::unsetenv(k.c_str());
    }
  }
};

TEST(ClipTokenizer, EncodesLikeTransformers) {
  REQUIRE_CLIP_TOKENIZER();
  const auto& tok = sd1_tokenizer();
  EXPECT_EQ(tok.bos_id(), 49406);
  EXPECT_EQ(tok.eos_id(), 49407);
  EXPECT_EQ(tok.vocab_size(), 49408);
  EXPECT_EQ(tok.encode_with_special("a photograph of an astronaut riding a horse"),
            (std::vector<int>{49406, 320, 8853, 539, 550, 18376, 6765, 320, 4558, 49407}));
  // Case, repeated white space and digits (one token per digit).
  EXPECT_EQ(tok.encode("A   PHOTOGRAPH\n\tof"), (std::vector<int>{320, 8853, 539}));
  EXPECT_EQ(tok.tokenize("12"), (std::vector<std::string>{"1</w>", "2</w>"}));
  EXPECT_EQ(tok.encode_with_special(""), (std::vector<int>{49406, 49407}));
  // HTML references are decoded (ftfy), special tokens in the text are kept whole.
  EXPECT_EQ(tok.encode("Tom &amp; Jerry"), (std::vector<int>{2435, 261, 9164}));
  EXPECT_EQ(tok.encode("<|startoftext|>a<|endoftext|>"), (std::vector<int>{49406, 320, 49407}));
  EXPECT_EQ(tok.decode(tok.encode_with_special("A Photo of a CAT, café")), "a photo of a cat , café");
}

TEST(ClipTokenizer, PadsAndTruncates) {
  REQUIRE_CLIP_TOKENIZER();
  const auto& tok = sd1_tokenizer();
  auto ids = tok.encode_padded("a photograph");
  ASSERT_EQ(ids.size(), 77u);
  EXPECT_EQ(std::vector<int>(ids.begin(), ids.begin() + 4), (std::vector<int>{49406, 320, 8853, 49407}));
  EXPECT_EQ(ids[76], 49407);
  auto zero = tok.encode_padded("a photograph", 77, 0);
  EXPECT_EQ(zero[3], 49407);
  EXPECT_EQ(zero[4], 0);
  EXPECT_EQ(zero[76], 0);

  std::string longer;
  for (int i = 0; i < 100; ++i) longer += "a ";
  auto cut = tok.encode_padded(longer + "photograph");
  ASSERT_EQ(cut.size(), 77u);
  EXPECT_EQ(cut[0], 49406);
  for (int i = 1; i <= 75; ++i) EXPECT_EQ(cut[i], 320);
  EXPECT_EQ(cut[76], 49407);
  EXPECT_EQ(tok.encode_with_special(longer).size(), 102u);  // untruncated
  EXPECT_NE(error_of([&] { tok.encode_padded("a", 1); }), "");
}

TEST(ClipTokenizer, Sd2PadTokenIsSplitOutOfPrompts) {
  REQUIRE_CLIP_TOKENIZER();
  ClipTokenizer tok = sd1_tokenizer();
  EXPECT_EQ(tok.encode("camera!!"), (std::vector<int>{3934, 748}));  // "!!</w>" with the SD1 tokenizer
  tok.set_pad_token(ClipTokenizer::kSd2PadToken);
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.encode("camera!!"), (std::vector<int>{3934, 0, 0}));
  auto ids = tok.encode_padded("camera!");
  EXPECT_EQ(std::vector<int>(ids.begin(), ids.begin() + 5), (std::vector<int>{49406, 3934, 0, 49407, 0}));
  EXPECT_NE(error_of([&] { tok.set_pad_token("no such token"); }).find("not in the vocabulary"), std::string::npos);
}

TEST(ClipTokenizer, AddedTokensMatchWhole) {
  REQUIRE_CLIP_TOKENIZER();
  ClipTokenizer tok = sd1_tokenizer();
  EXPECT_EQ(tok.add_token("<my-concept>"), 49408);
  EXPECT_EQ(tok.add_token("<my-concept>_1"), 49409);
  EXPECT_EQ(tok.add_token("<my-concept>"), 49408);  // again: same id
  EXPECT_EQ(tok.vocab_size(), 49410);
  EXPECT_EQ(tok.encode("a photo of <my-concept> <my-concept>_1"), (std::vector<int>{320, 1125, 539, 49408, 49409}));
  // Matched wherever it is written exactly, even glued to other text; other spellings are ordinary text.
  EXPECT_EQ(tok.encode("x<my-concept>"), (std::vector<int>{343, 49408}));
  EXPECT_EQ(tok.encode("<MY-CONCEPT>").size(), 5u);
  EXPECT_EQ(tok.token_to_id("<my-concept>_1"), 49409);
  EXPECT_EQ(tok.id_to_token(49409), "<my-concept>_1");
  EXPECT_NE(error_of([&] { tok.add_token("photograph</w>"); }).find("already in the vocabulary"), std::string::npos);
  EXPECT_NE(error_of([&] { tok.add_token(""); }), "");
}

TEST(ClipTokenizer, BasicCleanupWithoutFtfy) {
  REQUIRE_CLIP_TOKENIZER();
  ClipTokenizer tok = sd1_tokenizer();
  tok.set_text_cleanup(ClipTokenizer::TextCleanup::kBasic);
  EXPECT_EQ(tok.tokenize("&AMP;"), (std::vector<std::string>{"&</w>", "amp</w>", ";</w>"}));  // no HTML decoding
  // CJK ideographs become separate words; format characters such as U+200B are dropped.
  const std::string cjk = "\u732b\u5728";
  EXPECT_EQ(tok.encode(cjk), sd1_tokenizer().encode("\u732b \u5728"));
  EXPECT_EQ(tok.encode("zero\u200bwidth"), sd1_tokenizer().encode("zerowidth"));
}

TEST(TokenizerFiles, UserPathFolderOrFile) {
  REQUIRE_CLIP_TOKENIZER();
  const std::string dir = testing::clip_tokenizer_dir();
  TokenizerLocation where;
  where.path = dir;
  EXPECT_EQ(find_tokenizer_files(where).merges, (fs::path(dir) / "merges.txt").string());
  where.path = (fs::path(dir) / "merges.txt").string();
  EXPECT_EQ(find_tokenizer_files(where).vocab, (fs::path(dir) / "vocab.json").string());

  TempDir empty;
  where.path = empty.path.string();
  std::string err = error_of([&] { find_tokenizer_files(where); });
  EXPECT_NE(err.find(empty.path.string()), std::string::npos) << err;
  EXPECT_NE(err.find("vocab.json + merges.txt"), std::string::npos) << err;
  where.path = (empty.path / "missing").string();
  EXPECT_NE(error_of([&] { find_tokenizer_files(where); }).find("does not exist"), std::string::npos);
}

TEST(TokenizerFiles, DiffusersFolderAndHubCache) {
  REQUIRE_CLIP_TOKENIZER();
  const fs::path src = testing::clip_tokenizer_dir();
  TempDir tmp;
  EnvGuard env;
  env.set("HF_HUB_CACHE", (tmp.path / "hub").string());
  env.set("HUGGINGFACE_HUB_CACHE", std::nullopt);
  env.set("HF_HOME", std::nullopt);
  env.set("XDG_CACHE_HOME", std::nullopt);
  env.set("HOME", (tmp.path / "home").string());

  // Nothing anywhere (and the built-in table turned off): the message lists the places and names --tokenizer.
  TokenizerLocation where;
  where.model_dir = (tmp.path / "model").string();
  where.builtin = false;
  std::string err = error_of([&] { find_tokenizer_files(where); });
  EXPECT_NE(err.find((tmp.path / "model" / "tokenizer").string()), std::string::npos) << err;
  EXPECT_NE(err.find("models--openai--clip-vit-large-patch14"), std::string::npos) << err;
  EXPECT_NE(err.find((tmp.path / "home" / ".cache" / "huggingface" / "hub").string()), std::string::npos) << err;
  EXPECT_NE(err.find("--tokenizer"), std::string::npos) << err;

  // A snapshot in the hub cache, named by refs/main.
  fs::path repo = tmp.path / "hub" / "models--openai--clip-vit-large-patch14";
  fs::create_directories(repo / "snapshots" / "abc123");
  fs::copy_file(src / "vocab.json", repo / "snapshots" / "abc123" / "vocab.json");
  fs::copy_file(src / "merges.txt", repo / "snapshots" / "abc123" / "merges.txt");
  write(repo / "refs" / "main", "abc123");
  EXPECT_EQ(find_tokenizer_files(where).vocab, (repo / "snapshots" / "abc123" / "vocab.json").string());

  // The diffusers folder comes first, and its special_tokens_map.json sets the pad token.
  fs::create_directories(tmp.path / "model" / "tokenizer");
  fs::copy_file(src / "vocab.json", tmp.path / "model" / "tokenizer" / "vocab.json");
  fs::copy_file(src / "merges.txt", tmp.path / "model" / "tokenizer" / "merges.txt");
  write(tmp.path / "model" / "tokenizer" / "special_tokens_map.json", R"({"pad_token": "!"})");
  EXPECT_EQ(find_tokenizer_files(where).vocab, (tmp.path / "model" / "tokenizer" / "vocab.json").string());
  EXPECT_EQ(ClipTokenizer::load(where).pad_id(), 0);
}

std::string read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// gzip of `text`, as Python's gzip module writes it.
std::string gzip(const std::string& text) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&z, uLong(text.size())) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  z.avail_in = uInt(text.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = uInt(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// Every id and token of two tokenizers, one by one, and what they make of a few prompts.
void expect_same_tokenizer(const ClipTokenizer& a, const ClipTokenizer& b) {
  ASSERT_EQ(a.vocab_size(), b.vocab_size());
  int differ = 0;
  for (int id = 0; id < a.vocab_size(); ++id) {
    const std::string t = a.id_to_token(id);
    if (t != b.id_to_token(id) || b.token_to_id(t) != id) ++differ;
  }
  EXPECT_EQ(differ, 0);
  EXPECT_EQ(a.bos_id(), b.bos_id());
  EXPECT_EQ(a.eos_id(), b.eos_id());
  EXPECT_EQ(a.pad_id(), b.pad_id());
  for (const char* prompt : {"a photograph of an astronaut riding a horse, 8k, highly detailed!!",
                             "unbelievably overengineered Schrödinger's cat \u732b \U0001F436 <|endoftext|>",
                             "antidisestablishmentarianism pneumonoultramicroscopic"})
    EXPECT_EQ(a.encode_padded(prompt), b.encode_padded(prompt)) << prompt;
}

TEST(ClipTokenizer, BuiltinTableIsTheSharedVocabAndMerges) {
  REQUIRE_CLIP_TOKENIZER();
  const fs::path dir = testing::clip_tokenizer_dir();
  // The embedded merges are merges.txt byte for byte.
  EXPECT_EQ(std::string(builtin_clip_merges()), read_all(dir / "merges.txt"));
  // The vocabulary built from them (OpenAI's construction) is vocab.json, token for token.
  const ClipTokenizer builtin = ClipTokenizer::builtin();
  EXPECT_EQ(builtin.vocab_size(), 49408);
  EXPECT_EQ(builtin.bos_id(), 49406);
  EXPECT_EQ(builtin.eos_id(), 49407);
  EXPECT_EQ(builtin.pad_id(), 49407);
  expect_same_tokenizer(builtin, sd1_tokenizer());
  // So is the one built from merges.txt alone.
  expect_same_tokenizer(ClipTokenizer::from_merges(read_all(dir / "merges.txt"), "merges.txt"), sd1_tokenizer());
}

TEST(ClipTokenizer, ReadsOpenAiBpeGz) {
  REQUIRE_CLIP_TOKENIZER();
  const fs::path dir = testing::clip_tokenizer_dir();
  // OpenAI's layout: a quoted header line, the merges, then more merges than CLIP uses (ignored).
  std::string merges = read_all(dir / "merges.txt");
  std::string body = merges.substr(merges.find('\n') + 1);
  std::string text = "\"bpe_simple_vocab_16e6.txt#version: 0.2\n" + body + "q z\nz q\nqz zq\n";
  TempDir tmp;
  write(tmp.path / "bpe_simple_vocab_16e6.txt.gz", gzip(text));
  TokenizerLocation where;
  where.path = (tmp.path / "bpe_simple_vocab_16e6.txt.gz").string();
  TokenizerFiles f = find_tokenizer_files(where);
  EXPECT_TRUE(f.openai_gz());
  EXPECT_EQ(f.origin, TokenizerFiles::Origin::kUserPath);
  expect_same_tokenizer(ClipTokenizer::load(where), sd1_tokenizer());
  // A folder holding only the .gz.
  where.path = tmp.path.string();
  EXPECT_EQ(find_tokenizer_files(where).merges, (tmp.path / "bpe_simple_vocab_16e6.txt.gz").string());
  expect_same_tokenizer(ClipTokenizer::load(where), sd1_tokenizer());
  // A broken .gz names the file.
  write(tmp.path / "broken.txt.gz", gzip(text).substr(0, 1000));
  where.path = (tmp.path / "broken.txt.gz").string();
  std::string err = error_of([&] { ClipTokenizer::load(where); });
  EXPECT_NE(err.find("broken.txt.gz"), std::string::npos) << err;
  EXPECT_NE(err.find("gzip"), std::string::npos) << err;
}

TEST(TokenizerFiles, BuiltinAfterUserPathAndModelFolder) {
  REQUIRE_CLIP_TOKENIZER();
  const fs::path src = testing::clip_tokenizer_dir();
  TempDir tmp;
  EnvGuard env;  // an empty hub cache everywhere: the built-in table needs none
  for (const char* v : {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "HOME"})
    env.set(v, (tmp.path / "empty").string());
  TokenizerLocation where;
  EXPECT_TRUE(find_tokenizer_files(where).builtin());
  where.model_dir = (tmp.path / "model").string();  // a diffusers folder without tokenizer/
  EXPECT_TRUE(find_tokenizer_files(where).builtin());
  expect_same_tokenizer(ClipTokenizer::load(where), sd1_tokenizer());

  // The folder's own tokenizer/ wins over the built-in table, and --tokenizer over both.
  fs::create_directories(tmp.path / "model" / "tokenizer");
  fs::copy_file(src / "vocab.json", tmp.path / "model" / "tokenizer" / "vocab.json");
  fs::copy_file(src / "merges.txt", tmp.path / "model" / "tokenizer" / "merges.txt");
  EXPECT_EQ(find_tokenizer_files(where).origin, TokenizerFiles::Origin::kModelDir);
  where.path = src.string();
  EXPECT_EQ(find_tokenizer_files(where).origin, TokenizerFiles::Origin::kUserPath);
  EXPECT_EQ(find_tokenizer_files(where).vocab, (src / "vocab.json").string());
}

TEST(ClipTokenizer, PadTokenFromConfigOnlyWhenAsked) {
  REQUIRE_CLIP_TOKENIZER();
  const fs::path src = testing::clip_tokenizer_dir();
  TempDir tmp;
  fs::copy_file(src / "vocab.json", tmp.path / "vocab.json");
  fs::copy_file(src / "merges.txt", tmp.path / "merges.txt");
  write(tmp.path / "special_tokens_map.json", R"({"pad_token": "!"})");
  TokenizerLocation where;
  where.path = tmp.path.string();
  TokenizerFiles f = find_tokenizer_files(where);
  EXPECT_EQ(ClipTokenizer::open(f, true).pad_id(), 0);
  ClipTokenizer plain = ClipTokenizer::open(f, false);
  EXPECT_EQ(plain.pad_id(), plain.eos_id());
  EXPECT_EQ(plain.encode("camera!!"), sd1_tokenizer().encode("camera!!"));  // "!" is not split out
}

// pigment init --diffusers writes the built-in table as a transformers tokenizer folder; read back (from the folder
// and as a diffusers model's tokenizer/), it is the built-in tokenizer with the pad token asked for.
TEST(TokenizerFiles, WritesTheBuiltinTableAsATokenizerFolder) {
  REQUIRE_CLIP_TOKENIZER();
  TempDir tmp;
  write_builtin_tokenizer_files((tmp.path / "model" / "tokenizer").string(), "<|endoftext|>");
  write_builtin_tokenizer_files((tmp.path / "model" / "tokenizer_2").string(), "!");
  for (const char* sub : {"tokenizer", "tokenizer_2"})
    for (const char* file : {"vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"})
      EXPECT_TRUE(fs::is_regular_file(tmp.path / "model" / sub / file)) << sub << "/" << file;
  // The files are OpenAI CLIP's: merges byte for byte, the vocabulary token for token.
  const fs::path shared = testing::clip_tokenizer_dir();
  EXPECT_EQ(read_all(tmp.path / "model" / "tokenizer" / "merges.txt"), read_all(shared / "merges.txt"));
  EXPECT_EQ(nlohmann::json::parse(read_all(tmp.path / "model" / "tokenizer" / "vocab.json")),
            nlohmann::json::parse(read_all(shared / "vocab.json")));
  const auto cfg = nlohmann::json::parse(read_all(tmp.path / "model" / "tokenizer_2" / "tokenizer_config.json"));
  EXPECT_EQ(cfg.at("tokenizer_class"), "CLIPTokenizer");
  EXPECT_EQ(cfg.at("model_max_length"), 77);
  EXPECT_EQ(cfg.at("pad_token"), "!");

  TokenizerLocation where;
  where.model_dir = (tmp.path / "model").string();
  ASSERT_EQ(find_tokenizer_files(where).origin, TokenizerFiles::Origin::kModelDir);
  expect_same_tokenizer(ClipTokenizer::load(where), ClipTokenizer::builtin());
  where.subfolder = "tokenizer_2";
  ClipTokenizer second = ClipTokenizer::load(where);
  EXPECT_EQ(second.pad_id(), ClipTokenizer::kSd2PadId);
  ClipTokenizer builtin_bang = ClipTokenizer::builtin();
  builtin_bang.set_pad_token(ClipTokenizer::kSd2PadToken);
  expect_same_tokenizer(second, builtin_bang);
  EXPECT_THROW(write_builtin_tokenizer_files((tmp.path / "x").string(), "<nope>"), Error);
}

TEST(Gzip, RejectsTruncatedAndForeignData) {
  const std::string text(100000, 'x');
  EXPECT_EQ(gunzip(gzip(text), "t"), text);
  std::string err = error_of([&] { gunzip(gzip(text).substr(0, 20), "cut.gz"); });
  EXPECT_NE(err.find("cut.gz"), std::string::npos) << err;
  EXPECT_NE(error_of([&] { gunzip("plain text, not gzip", "plain.txt"); }).find("plain.txt"), std::string::npos);
}

TEST(ClipTokenizer, RejectsBrokenFiles) {
  TempDir tmp;
  write(tmp.path / "vocab.json", R"({"a": 0, "<|startoftext|>": 1, "<|endoftext|>": 2})");
  write(tmp.path / "merges.txt", "#version: 0.2\na b\n");
  write(tmp.path / "bad.json", "{not json");
  write(tmp.path / "nospecial.json", R"({"a": 0})");
  write(tmp.path / "badmerges.txt", "#version: 0.2\na b c\n");
  const std::string v = (tmp.path / "vocab.json").string(), m = (tmp.path / "merges.txt").string();
  EXPECT_NO_THROW(ClipTokenizer::from_files(v, m));
  std::string err = error_of([&] { ClipTokenizer::from_files((tmp.path / "bad.json").string(), m); });
  EXPECT_NE(err.find("bad.json"), std::string::npos) << err;
  err = error_of([&] { ClipTokenizer::from_files((tmp.path / "nospecial.json").string(), m); });
  EXPECT_NE(err.find("<|startoftext|>"), std::string::npos) << err;
  err = error_of([&] { ClipTokenizer::from_files(v, (tmp.path / "badmerges.txt").string()); });
  EXPECT_NE(err.find("badmerges.txt:2"), std::string::npos) << err;
  err = error_of([&] { ClipTokenizer::from_files(v, (tmp.path / "none.txt").string()); });
  EXPECT_NE(err.find("none.txt"), std::string::npos) << err;
}

}  // namespace
}  // namespace pigment
