#include "models/model_config.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace pigment {

ModelConfig::ModelConfig(nlohmann::json json, std::string source) : json_(std::move(json)), source_(std::move(source)) {
  PIG_CHECK(json_.is_object(), source_, ": a config must be a JSON object, got ", json_.type_name());
}

ModelConfig ModelConfig::load(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path p(path);
  std::error_code ec;
  if (fs::is_directory(p, ec)) p /= "config.json";
  std::ifstream f(p);
  PIG_CHECK(f, p.string(), ": cannot open config");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    fail(p.string(), ": invalid JSON: ", e.what());
  }
  return ModelConfig(std::move(j), p.string());
}

bool ModelConfig::has(const std::string& key) const {
  auto it = json_.find(key);
  return it != json_.end() && !it->is_null();
}

const nlohmann::json& ModelConfig::at(const std::string& key) const {
  auto it = json_.find(key);
  PIG_CHECK(it != json_.end() && !it->is_null(), source_, ": missing config key '", key, "'");
  return *it;
}

void ModelConfig::wrong_type(const std::string& key, const char* expected) const {
  auto it = json_.find(key);
  fail(source_, ": config key '", key, "' should be ", expected, ", got ", it == json_.end() ? "nothing" : it->dump());
}

int64_t ModelConfig::get_int(const std::string& key) const {
  const auto& v = at(key);
  if (v.is_number_integer()) return v.get<int64_t>();
  // Some writers store integral values as 32.0.
  if (v.is_number_float() && v.get<double>() == double(int64_t(v.get<double>()))) return int64_t(v.get<double>());
  wrong_type(key, "an integer");
}

double ModelConfig::get_double(const std::string& key) const {
  const auto& v = at(key);
  if (!v.is_number()) wrong_type(key, "a number");
  return v.get<double>();
}

bool ModelConfig::get_bool(const std::string& key) const {
  const auto& v = at(key);
  if (!v.is_boolean()) wrong_type(key, "true or false");
  return v.get<bool>();
}

std::string ModelConfig::get_string(const std::string& key) const {
  const auto& v = at(key);
  if (!v.is_string()) wrong_type(key, "a string");
  return v.get<std::string>();
}

std::vector<int64_t> ModelConfig::get_ints(const std::string& key) const {
  const auto& v = at(key);
  if (!v.is_array()) wrong_type(key, "a list of integers");
  std::vector<int64_t> out;
  for (const auto& e : v) {
    if (!e.is_number_integer()) wrong_type(key, "a list of integers");
    out.push_back(e.get<int64_t>());
  }
  return out;
}

std::vector<std::string> ModelConfig::get_strings(const std::string& key) const {
  const auto& v = at(key);
  if (!v.is_array()) wrong_type(key, "a list of strings");
  std::vector<std::string> out;
  for (const auto& e : v) {
    if (!e.is_string()) wrong_type(key, "a list of strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

int64_t ModelConfig::get_int(const std::string& key, int64_t fallback) const {
  return has(key) ? get_int(key) : fallback;
}
double ModelConfig::get_double(const std::string& key, double fallback) const {
  return has(key) ? get_double(key) : fallback;
}
bool ModelConfig::get_bool(const std::string& key, bool fallback) const {
  return has(key) ? get_bool(key) : fallback;
}
std::string ModelConfig::get_string(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

std::vector<int64_t> ModelConfig::get_ints_per_block(const std::string& key, size_t n, int64_t fallback) const {
  if (!has(key)) return std::vector<int64_t>(n, fallback);
  return get_ints_per_block(key, n);
}

std::vector<int64_t> ModelConfig::get_ints_per_block(const std::string& key, size_t n) const {
  const auto& v = at(key);
  if (v.is_array()) {
    std::vector<int64_t> out = get_ints(key);
    PIG_CHECK(out.size() == n, source_, ": config key '", key, "' has ", out.size(), " entries, expected ", n,
              " (one per block)");
    return out;
  }
  return std::vector<int64_t>(n, get_int(key));
}

}  // namespace pigment
