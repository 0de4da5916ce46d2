#include "io/checkpoint.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "io/mapped_file.h"
#include "io/pytorch_zip.h"
#include "io/safetensors.h"

namespace pigment {

namespace fs = std::filesystem;

namespace {

std::string read_text(const fs::path& p) {
  std::error_code ec;
  auto size = fs::file_size(p, ec);
  PIG_CHECK(!ec, p.string(), ": cannot read: ", ec.message());
  PIG_CHECK(size <= (16u << 20), p.string(), ": ", size, " bytes is too large for a config file");
  std::ifstream f(p, std::ios::binary);
  PIG_CHECK(f, p.string(), ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

nlohmann::json parse_json(const std::string& text, const fs::path& p) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(p.string(), ": invalid JSON (", e.what(), ")");
  }
}

void add_tensor(Checkpoint& c, const std::string& name, Tensor t, const std::string& source) {
  PIG_CHECK(c.tensors.emplace(name, std::move(t)).second, source, ": tensor '", name, "' appears twice");
}

// One weights file (any format) into c, names prefixed.
void load_file_into(Checkpoint& c, const fs::path& file, const std::string& prefix) {
  Checkpoint one = load_checkpoint(file.string());
  for (auto& [name, t] : one.tensors) add_tensor(c, prefix + name, std::move(t), file.string());
  for (auto& [k, v] : one.metadata) c.metadata[prefix + k] = v;
}

// The weights of one diffusers / transformers component folder, preferring full-precision safetensors.
bool load_component(Checkpoint& c, const fs::path& dir, const std::string& prefix) {
  static const char* const single[] = {
      "diffusion_pytorch_model.safetensors", "model.safetensors",
      "diffusion_pytorch_model.fp16.safetensors", "model.fp16.safetensors",
      "diffusion_pytorch_model.bin", "pytorch_model.bin",
      "diffusion_pytorch_model.fp16.bin", "pytorch_model.fp16.bin",
  };
  static const char* const sharded[] = {
      "diffusion_pytorch_model.safetensors.index.json", "model.safetensors.index.json",
      "diffusion_pytorch_model.safetensors.index.fp16.json", "model.safetensors.index.fp16.json",
      "diffusion_pytorch_model.bin.index.json", "pytorch_model.bin.index.json",
  };
  for (int pass = 0; pass < 2; ++pass) {
    // Safetensors (single, then sharded) before any .bin.
    for (const char* n : single) {
      bool is_bin = fs::path(n).extension() == ".bin";
      if (is_bin != (pass == 1) || !fs::is_regular_file(dir / n)) continue;
      load_file_into(c, dir / n, prefix);
      return true;
    }
    for (const char* n : sharded) {
      bool is_bin = std::string(n).find(".bin.") != std::string::npos;
      fs::path index = dir / n;
      if (is_bin != (pass == 1) || !fs::is_regular_file(index)) continue;
      nlohmann::json j = parse_json(read_text(index), index);
      PIG_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(), index.string(),
                ": expected an object with a \"weight_map\" object");
      std::set<std::string> shards;
      for (const auto& [name, file] : j["weight_map"].items()) {
        PIG_CHECK(file.is_string(), index.string(), ": weight_map entry '", name, "' is not a file name");
        std::string f = file.get<std::string>();
        PIG_CHECK(!f.empty() && f.find('/') == std::string::npos && f.find('\\') == std::string::npos && f != "..",
                  index.string(), ": shard '", f, "' is not a file in this folder");
        shards.insert(f);
      }
      for (const auto& f : shards) load_file_into(c, dir / f, prefix);
      for (const auto& [name, file] : j["weight_map"].items())
        PIG_CHECK(c.tensors.count(prefix + name), index.string(), ": tensor '", name, "' is not in shard '",
                  file.get<std::string>(), "'");
      return true;
    }
  }
  return false;
}

Checkpoint load_diffusers(const fs::path& dir) {
  Checkpoint c;
  c.path = dir.string();
  c.format = "diffusers";
  fs::path index = dir / "model_index.json";
  if (fs::is_regular_file(index)) {
    std::string text = read_text(index);
    nlohmann::json j = parse_json(text, index);
    PIG_CHECK(j.is_object(), index.string(), ": expected a JSON object");
    c.configs["model_index"] = text;
    for (const auto& [name, v] : j.items()) {
      if (name.empty() || name[0] == '_' || !v.is_array() || v.size() != 2 || v[0].is_null()) continue;
      PIG_CHECK(name.find('/') == std::string::npos && name != "." && name != "..", index.string(),
                ": component name '", name, "' is not a folder name");
      fs::path sub = dir / name;
      if (!fs::is_directory(sub)) continue;
      if (fs::is_regular_file(sub / "scheduler_config.json")) c.configs[name] = read_text(sub / "scheduler_config.json");
      if (!fs::is_regular_file(sub / "config.json")) continue;  // tokenizer, scheduler, feature extractor
      c.configs[name] = read_text(sub / "config.json");
      PIG_CHECK(load_component(c, sub, name + "."), sub.string(),
                ": component has config.json but no weights (expected diffusion_pytorch_model.safetensors, "
                "model.safetensors, their .fp16 or sharded variants, or a .bin)");
    }
    PIG_CHECK(!c.tensors.empty(), dir.string(), ": diffusers folder holds no component weights");
    return c;
  }
  fs::path config = dir / "config.json";
  PIG_CHECK(fs::is_regular_file(config), dir.string(),
            ": not a diffusers folder (no model_index.json, and no config.json for a single component)");
  c.configs[""] = read_text(config);
  PIG_CHECK(load_component(c, dir, ""), dir.string(),
            ": no weights file (expected diffusion_pytorch_model.safetensors, model.safetensors, their .fp16 or "
            "sharded variants, or a .bin)");
  return c;
}

}  // namespace

Checkpoint load_checkpoint(const std::string& path) {
  std::error_code ec;
  auto status = fs::status(path, ec);
  PIG_CHECK(!ec && fs::exists(status), path, ": no such file or directory");
  if (fs::is_directory(status)) return load_diffusers(path);
  PIG_CHECK(fs::is_regular_file(status), path, ": not a regular file");
  auto file = MappedFile::open(path);
  const uint8_t* b = file->data();
  size_t n = file->size();
  Checkpoint c;
  c.path = path;
  if (looks_like_zip(b, n) || looks_like_legacy_torch(b, n)) {
    auto z = PytorchZip::parse(file, b, n, path);
    c.format = "pytorch";
    c.tensors = z.tensors();
    c.metadata = z.metadata();
    return c;
  }
  bool st_like = n >= 9 && b[8] == '{';
  std::string ext = fs::path(path).extension().string();
  PIG_CHECK(st_like || ext == ".safetensors", path,
            ": unrecognised format (expected safetensors, a PyTorch zip checkpoint or a diffusers folder)");
  auto st = SafeTensors::parse(file, b, n, path);
  c.format = "safetensors";
  c.metadata = st.metadata();
  for (const auto& e : st.entries()) c.tensors[e.name] = st.get(e.name);
  return c;
}

}  // namespace pigment
