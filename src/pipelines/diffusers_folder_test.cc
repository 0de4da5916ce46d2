#include "pipelines/diffusers_folder.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "text/clip_tokenizer.h"
#include "text/tokenizer_files.h"

namespace pigment {
namespace {

namespace fs = std::filesystem;

nlohmann::json read_json(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str());
}

// An SDXL folder as write_random_diffusers leaves it (model_index.json only; the weights do not matter here) gets
// both tokenizers, named in model_index.json, and pigment reads them back as the built-in table with the family's
// pad tokens.
TEST(DiffusersFolder, WritesTheTokenizersDiffusersNeeds) {
  const fs::path dir = fs::temp_directory_path() / ("pigment_diffusers_folder_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  EXPECT_THROW(write_diffusers_tokenizers(dir.string(), Family::SDXL), Error);  // no model_index.json
  fs::create_directories(dir);
  std::ofstream(dir / "model_index.json")
      << R"({"_class_name": "StableDiffusionXLPipeline", "tokenizer": [null, null], "tokenizer_2": [null, null]})";
  write_diffusers_tokenizers(dir.string(), Family::SDXL);
  const auto index = read_json(dir / "model_index.json");
  EXPECT_EQ(index.at("_class_name"), "StableDiffusionXLPipeline");
  for (const char* sub : {"tokenizer", "tokenizer_2"}) {
    EXPECT_EQ(index.at(sub), nlohmann::json({"transformers", "CLIPTokenizer"})) << sub;
    for (const char* file : {"vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"})
      EXPECT_TRUE(fs::is_regular_file(dir / sub / file)) << sub << "/" << file;
  }
  EXPECT_EQ(read_json(dir / "tokenizer" / "special_tokens_map.json").at("pad_token"), "<|endoftext|>");
  EXPECT_EQ(read_json(dir / "tokenizer_2" / "special_tokens_map.json").at("pad_token"), "!");

  const ClipTokenizer builtin = ClipTokenizer::builtin();
  ClipTokenizer builtin_bang = ClipTokenizer::builtin();  // "!" as pad is also split out of prompts whole
  builtin_bang.set_pad_token(ClipTokenizer::kSd2PadToken);
  TokenizerLocation where;
  where.model_dir = dir.string();
  for (const char* sub : {"tokenizer", "tokenizer_2"}) {
    where.subfolder = sub;
    ASSERT_EQ(find_tokenizer_files(where).origin, TokenizerFiles::Origin::kModelDir);
    const ClipTokenizer t = ClipTokenizer::load(where);
    const ClipTokenizer& want = std::string(sub) == "tokenizer" ? builtin : builtin_bang;
    EXPECT_EQ(t.vocab_size(), want.vocab_size());
    EXPECT_EQ(t.pad_id(), std::string(sub) == "tokenizer" ? builtin.eos_id() : ClipTokenizer::kSd2PadId);
    for (const char* prompt : {"a photograph of an astronaut riding a horse", "Schrödinger's cat, 8k!!"})
      EXPECT_EQ(t.encode_padded(prompt), want.encode_padded(prompt)) << sub << ": " << prompt;
  }
  EXPECT_EQ(diffusers_tokenizers(Family::SD2), (std::vector<std::pair<std::string, std::string>>{{"tokenizer", "!"}}));
  EXPECT_EQ(diffusers_tokenizers(Family::SD1).at(0).second, "<|endoftext|>");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace pigment
