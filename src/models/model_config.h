// Typed access to a model's config.json (diffusers and transformers layouts). Every lookup names the file and
// the key in its error, and a missing or null key falls back to the default when one is given (diffusers writes
// null for "use the default").
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace pigment {

class ModelConfig {
 public:
  ModelConfig() = default;
  // `source` names the config in errors (a path, or a description such as "<clip config>").
  ModelConfig(nlohmann::json json, std::string source);
  // Reads `path`, or `path`/config.json when `path` is a folder.
  static ModelConfig load(const std::string& path);

  // Present and not null.
  bool has(const std::string& key) const;
  const nlohmann::json& json() const { return json_; }
  const std::string& source() const { return source_; }

  // Required values: throw naming the file and the key when absent or of the wrong type.
  int64_t get_int(const std::string& key) const;
  double get_double(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  std::vector<int64_t> get_ints(const std::string& key) const;
  std::vector<std::string> get_strings(const std::string& key) const;

  // With defaults for absent or null keys (a present value of the wrong type still throws).
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_double(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;

  // diffusers fields that are "one value for every block, or one per block" (attention_head_dim,
  // transformer_layers_per_block, num_attention_heads, ...): a number is repeated n times, a list must have n
  // entries. Absent or null gives n copies of `fallback`.
  std::vector<int64_t> get_ints_per_block(const std::string& key, size_t n, int64_t fallback) const;
  std::vector<int64_t> get_ints_per_block(const std::string& key, size_t n) const;

 private:
  const nlohmann::json& at(const std::string& key) const;
  [[noreturn]] void wrong_type(const std::string& key, const char* expected) const;

  nlohmann::json json_ = nlohmann::json::object();
  std::string source_ = "<config>";
};

}  // namespace pigment
