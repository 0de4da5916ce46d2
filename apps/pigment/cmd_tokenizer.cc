// pigment tokenizer train (--data DIR ... | --captions FILE ...) [--merges 8000] [--min-count 2] --out merges.txt:
//   learns a byte-level BPE from captions in CLIP's merges.txt format (text/bpe_trainer.h). DIR is a training folder
//   (every line of every .txt file under it is one caption; for the emoji data set give DIR/train so that the
//   held-out names stay unseen); FILE holds one caption per line.
// pigment tokenizer encode (--merges FILE | --tokenizer PATH) TEXT ...: prints each text's ids, tokens and the
//   decoded text (the round trip), with the trained merges or any tokenizer pigment reads (default: built-in CLIP).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "command.h"
#include "core/error.h"
#include "text/bpe_trainer.h"
#include "text/clip_tokenizer.h"
#include "text/tokenizer_files.h"

namespace pigment::cli {
namespace {

struct Args {
  CLI::App *train = nullptr, *encode = nullptr;
  std::vector<std::string> data, captions;
  int merges = 8000, min_count = 2;
  std::string out;
  std::string merges_file, tokenizer;
  std::vector<std::string> texts;
} g;

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  PIG_CHECK(f, path, ": cannot open");
  return std::string(std::istreambuf_iterator<char>(f), {});
}

int run_train() {
  PIG_CHECK(!g.data.empty() || !g.captions.empty(), "tokenizer train: give --data DIR or --captions FILE");
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::string> texts;
  for (const auto& d : g.data) {
    auto c = read_caption_folder(d);
    texts.insert(texts.end(), c.begin(), c.end());
  }
  for (const auto& f : g.captions) {
    auto c = read_caption_lines(f);
    PIG_CHECK(!c.empty(), f, ": no captions (expected one per line)");
    texts.insert(texts.end(), c.begin(), c.end());
  }
  BpeTrainStats st;
  const std::string merges = train_clip_bpe(texts, g.merges, g.min_count, &st);
  // Check that the result loads as a tokenizer before writing it.
  const ClipTokenizer tok = ClipTokenizer::from_merges(merges, g.out);
  {
    const std::string tmp = g.out + ".tmp";
    std::ofstream f(tmp, std::ios::binary);
    PIG_CHECK(f, g.out, ": cannot write");
    f << merges;
    f.close();
    PIG_CHECK(f, g.out, ": write failed");
    std::error_code ec;
    std::filesystem::rename(tmp, g.out, ec);
    PIG_CHECK(!ec, g.out, ": cannot write: ", ec.message());
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("read %lld captions: %lld words, %lld distinct\n", (long long)st.texts, (long long)st.words,
              (long long)st.distinct_words);
  std::printf("wrote %s: %d merges (the last occurring %lld times), vocabulary %d tokens, in %.1f s\n",
              g.out.c_str(), st.merges, (long long)st.last_count, tok.vocab_size(), s);
  if (st.merges < g.merges)
    std::printf("stopped early: no other pair of symbols occurs %d times\n", g.min_count);
  return 0;
}

int run_encode() {
  PIG_CHECK(g.merges_file.empty() || g.tokenizer.empty(), "tokenizer encode: give --merges or --tokenizer, not both");
  ClipTokenizer tok = ClipTokenizer::builtin();
  if (!g.merges_file.empty()) {
    tok = ClipTokenizer::from_merges(read_text_file(g.merges_file), g.merges_file);
  } else if (!g.tokenizer.empty()) {
    TokenizerLocation where;
    where.path = g.tokenizer;
    tok = ClipTokenizer::load(where);
  }
  for (const auto& text : g.texts) {
    const std::vector<int> ids = tok.encode(text);
    std::string ids_line, tokens_line;
    for (int id : ids) {
      if (!ids_line.empty()) ids_line += ' ', tokens_line += ' ';
      ids_line += std::to_string(id);
      tokens_line += tok.id_to_token(id);
    }
    std::printf("text:    %s\n", text.c_str());
    std::printf("ids:     %s\n", ids_line.c_str());
    std::printf("tokens:  %s\n", tokens_line.c_str());
    std::printf("count:   %zu tokens, %zu bytes\n", ids.size(), text.size());
    std::printf("decoded: %s\n", tok.decode(ids).c_str());
  }
  return 0;
}

RegisterCommand reg(
    "tokenizer", "train a byte-level BPE tokenizer on captions, or show how a tokenizer encodes a text",
    [](CLI::App& c) {
      c.require_subcommand(1);
      g.train = c.add_subcommand("train", "learn BPE merges (CLIP's merges.txt format) from captions");
      g.train->add_option("--data", g.data, "a training folder: every line of every .txt file is a caption; repeatable")
          ->check(CLI::ExistingDirectory);
      g.train->add_option("--captions", g.captions, "a text file with one caption per line; repeatable")
          ->check(CLI::ExistingFile);
      g.train->add_option("--merges", g.merges, "how many merges to learn (default 8000; at most 48894)");
      g.train->add_option("--min-count", g.min_count, "stop when no pair of symbols occurs this often (default 2)");
      g.train->add_option("--out", g.out, "the merges file to write (merges.txt)")->required();
      g.encode = c.add_subcommand("encode", "print a text's token ids, tokens and decoded text");
      g.encode->add_option("--merges", g.merges_file, "a merges.txt file (as `pigment tokenizer train` writes)")
          ->check(CLI::ExistingFile);
      g.encode->add_option("--tokenizer", g.tokenizer, "a tokenizer folder or vocab.json (default: built-in CLIP)");
      g.encode->add_option("text", g.texts, "the texts to encode")->required();
    },
    [] { return g.train->parsed() ? run_train() : run_encode(); });

}  // namespace
}  // namespace pigment::cli
