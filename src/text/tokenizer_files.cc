#include "text/tokenizer_files.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "text/clip_builtin.h"
#include "text/clip_tokenizer.h"

namespace pigment {
namespace {

namespace fs = std::filesystem;

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

constexpr const char* kOpenAiBpe = "bpe_simple_vocab_16e6.txt.gz";

// The pair inside `dir`, if both files are there.
std::optional<TokenizerFiles> pair_in(const fs::path& dir, TokenizerFiles::Origin origin,
                                      std::vector<std::string>& looked) {
  looked.push_back(dir.string());
  if (is_file(dir / "vocab.json") && is_file(dir / "merges.txt"))
    return TokenizerFiles{(dir / "vocab.json").string(), (dir / "merges.txt").string(), origin};
  return std::nullopt;
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

// Snapshots of a cached hub repository: the one refs/main names first, then the rest in name order.
std::vector<fs::path> snapshots(const fs::path& repo) {
  std::vector<fs::path> out;
  std::error_code ec;
  if (!is_dir(repo / "snapshots")) return out;
  std::string main_rev;
  std::ifstream ref(repo / "refs" / "main");
  if (ref) std::getline(ref, main_rev);
  std::vector<fs::path> rest;
  for (const auto& e : fs::directory_iterator(repo / "snapshots", ec)) {
    if (!e.is_directory(ec)) continue;
    if (!main_rev.empty() && e.path().filename() == main_rev)
      out.push_back(e.path());
    else
      rest.push_back(e.path());
  }
  std::sort(rest.begin(), rest.end());
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

}  // namespace

std::vector<std::string> hf_hub_cache_dirs() {
  std::vector<std::string> candidates;
  if (auto v = env("HF_HUB_CACHE"); !v.empty()) candidates.push_back(v);
  if (auto v = env("HUGGINGFACE_HUB_CACHE"); !v.empty()) candidates.push_back(v);
  if (auto v = env("HF_HOME"); !v.empty()) candidates.push_back((fs::path(v) / "hub").string());
  if (auto v = env("XDG_CACHE_HOME"); !v.empty()) candidates.push_back((fs::path(v) / "huggingface" / "hub").string());
  if (auto v = env("HOME"); !v.empty()) candidates.push_back((fs::path(v) / ".cache" / "huggingface" / "hub").string());
  std::vector<std::string> out;
  for (auto& c : candidates)
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  return out;
}

TokenizerFiles find_tokenizer_files(const TokenizerLocation& where) {
  std::vector<std::string> looked;
  if (!where.path.empty()) {
    fs::path p(where.path);
    constexpr auto kUser = TokenizerFiles::Origin::kUserPath;
    if (is_dir(p)) {
      if (auto f = pair_in(p, kUser, looked)) return *f;
      if (auto f = pair_in(p / where.subfolder, kUser, looked)) return *f;
      if (is_file(p / kOpenAiBpe)) return TokenizerFiles{"", (p / kOpenAiBpe).string(), kUser};
    } else if (is_file(p) && ends_with(p.filename().string(), ".gz")) {
      return TokenizerFiles{"", p.string(), kUser};  // OpenAI's format: the vocabulary follows from the merges
    } else if (is_file(p)) {
      fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
      std::string name = p.filename().string();
      bool merges_given = name.find("merges") != std::string::npos || p.extension() == ".txt";
      fs::path partner = dir / (merges_given ? "vocab.json" : "merges.txt");
      looked.push_back(partner.string());
      if (is_file(partner))
        return merges_given ? TokenizerFiles{partner.string(), p.string(), kUser}
                            : TokenizerFiles{p.string(), partner.string(), kUser};
    } else {
      fail("tokenizer path '", where.path,
           "' does not exist (expected a folder with vocab.json and merges.txt, one of those files, or OpenAI's ",
           kOpenAiBpe, ")");
    }
    std::string list;
    for (const auto& l : looked) list += (list.empty() ? "" : ", ") + l;
    fail("tokenizer path '", where.path, "': no vocab.json + merges.txt pair (looked in ", list,
         "); give a folder holding both files, or one of them with the other beside it, or OpenAI's ", kOpenAiBpe);
  }
  if (!where.model_dir.empty()) {
    if (auto f = pair_in(fs::path(where.model_dir) / where.subfolder, TokenizerFiles::Origin::kModelDir, looked))
      return *f;
  }
  if (where.builtin) return TokenizerFiles{"", "", TokenizerFiles::Origin::kBuiltin};
  if (where.search_hf_cache) {
    static const std::pair<const char*, const char*> kRepos[] = {
        {"models--openai--clip-vit-large-patch14", ""},
        {"models--runwayml--stable-diffusion-v1-5", "tokenizer"},
        {"models--stabilityai--stable-diffusion-2-1", "tokenizer"},
        {"models--stabilityai--stable-diffusion-xl-base-1.0", "tokenizer"},
    };
    for (const auto& cache : hf_hub_cache_dirs()) {
      bool any = false;
      for (const auto& [repo, sub] : kRepos) {
        for (const auto& snap : snapshots(fs::path(cache) / repo)) {
          any = true;
          if (auto f = pair_in(*sub ? snap / sub : snap, TokenizerFiles::Origin::kHfCache, looked)) return *f;
        }
      }
      if (!any) looked.push_back((fs::path(cache) / kRepos[0].first / "snapshots/*").string());
    }
  }
  std::string list;
  for (const auto& l : looked) list += (list.empty() ? "" : ", ") + l;
  if (list.empty()) list = "nowhere (no path, no model folder, built-in table and Hugging Face cache search off)";
  fail("CLIP tokenizer files (vocab.json + merges.txt) not found; looked in: ", list,
       ". Give --tokenizer PATH: a folder with vocab.json and merges.txt (or a diffusers model folder with "
       "tokenizer/), one of those two files, or OpenAI's ", kOpenAiBpe);
}

namespace {

void write_text(const fs::path& path, std::string_view text) {
  std::ofstream f(path, std::ios::binary);
  f.write(text.data(), std::streamsize(text.size()));
  f.close();
  PIG_CHECK(f.good(), path.string(), ": cannot write the file");
}

}  // namespace

void write_builtin_tokenizer_files(const std::string& dir, const std::string& pad_token) {
  const fs::path root(dir);
  std::error_code ec;
  fs::create_directories(root, ec);
  PIG_CHECK(!ec && is_dir(root), dir, ": cannot create folder: ", ec.message());
  const ClipTokenizer tok = ClipTokenizer::builtin();
  PIG_CHECK(pad_token == "<|endoftext|>" || tok.token_to_id(pad_token) >= 0, "tokenizer pad token '", pad_token,
            "' is not in the vocabulary");
  // vocab.json in id order, as transformers writes it (UTF-8, not \u escapes).
  std::string vocab = "{";
  for (int id = 0; id < tok.vocab_size(); ++id) {
    if (id) vocab += ", ";
    vocab += nlohmann::json(tok.id_to_token(id)).dump() + ": " + std::to_string(id);
  }
  vocab += "}";
  write_text(root / "vocab.json", vocab);
  write_text(root / "merges.txt", builtin_clip_merges());
  nlohmann::ordered_json special = {{"bos_token", "<|startoftext|>"},
                                    {"eos_token", "<|endoftext|>"},
                                    {"pad_token", pad_token},
                                    {"unk_token", "<|endoftext|>"}};
  write_text(root / "special_tokens_map.json", special.dump(2) + "\n");
  nlohmann::ordered_json config = {{"add_prefix_space", false},
                                   {"bos_token", "<|startoftext|>"},
                                   {"clean_up_tokenization_spaces", true},
                                   {"do_lower_case", true},
                                   {"eos_token", "<|endoftext|>"},
                                   {"errors", "replace"},
                                   {"model_max_length", ClipTokenizer::kContextLength},
                                   {"pad_token", pad_token},
                                   {"tokenizer_class", "CLIPTokenizer"},
                                   {"unk_token", "<|endoftext|>"}};
  write_text(root / "tokenizer_config.json", config.dump(2) + "\n");
}

}  // namespace pigment
