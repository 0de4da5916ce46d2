#include "pipelines/diffusers_folder.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "text/tokenizer_files.h"

namespace pigment {

namespace fs = std::filesystem;

std::vector<std::pair<std::string, std::string>> diffusers_tokenizers(Family family) {
  if (family == Family::SDXL) return {{"tokenizer", "<|endoftext|>"}, {"tokenizer_2", "!"}};
  return {{"tokenizer", family == Family::SD2 ? "!" : "<|endoftext|>"}};
}

void write_diffusers_tokenizers(const std::string& dir, Family family) {
  const fs::path index_path = fs::path(dir) / "model_index.json";
  nlohmann::json index;
  {
    std::ifstream f(index_path);
    PIG_CHECK(f.good(), index_path.string(), ": not found (write the diffusers folder first)");
    std::stringstream ss;
    ss << f.rdbuf();
    try {
      index = nlohmann::json::parse(ss.str());
    } catch (const std::exception& e) {
      fail(index_path.string(), ": not valid JSON: ", e.what());
    }
    PIG_CHECK(index.is_object(), index_path.string(), ": not a JSON object");
  }
  for (const auto& [sub, pad] : diffusers_tokenizers(family)) {
    write_builtin_tokenizer_files((fs::path(dir) / sub).string(), pad);
    index[sub] = {"transformers", "CLIPTokenizer"};
  }
  std::ofstream out(index_path, std::ios::binary);
  out << index.dump(2) << "\n";
  out.close();
  PIG_CHECK(out.good(), index_path.string(), ": cannot write the file");
}

}  // namespace pigment
