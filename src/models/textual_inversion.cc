#include "models/textual_inversion.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "io/checkpoint.h"
#include "ops/ops.h"

namespace pigment {

namespace fs = std::filesystem;

namespace {

const char* const kExtensions[] = {".pt", ".safetensors", ".bin", ".ckpt"};

Tensor as_rows(const Tensor& t, const std::string& path, const std::string& key) {
  PIG_CHECK(t.ndim() == 1 || t.ndim() == 2, path, ": embedding tensor '", key, "' has shape ", shape_str(t.shape()),
            ", expected [vectors, width] or [width]");
  Tensor f = t.as_f32().clone();
  if (f.ndim() == 1) f = f.reshape({1, f.dim(0)});
  PIG_CHECK(f.dim(0) >= 1 && f.dim(1) >= 1, path, ": embedding tensor '", key, "' is empty");
  for (int64_t i = 0; i < f.numel(); ++i)
    PIG_CHECK(std::isfinite(f.f32()[i]), path, ": embedding tensor '", key, "' holds a non-finite value");
  return f;
}

}  // namespace

Embedding load_embedding(const std::string& path, const std::string& name) {
  PIG_CHECK(fs::exists(path), path, ": embedding file not found");
  Embedding e;
  e.path = path;
  e.name = name.empty() ? fs::path(path).stem().string() : name;
  Checkpoint c;
  try {
    c = load_checkpoint(path);
  } catch (const Error& err) {
    fail(path, ": not a readable embedding (", err.what(), ")");
  }
  const auto& t = c.tensors;
  std::vector<std::string> params;
  for (const auto& [k, v] : t)
    if (k.rfind("string_to_param.", 0) == 0) params.push_back(k);
  if (!params.empty()) {  // A1111 .pt: one trigger ('*') per file
    e.vectors = as_rows(t.at(params.front()), path, params.front());
  } else if (t.count("emb_params")) {
    e.vectors = as_rows(t.at("emb_params"), path, "emb_params");
  } else if (t.count("clip_l") && t.count("clip_g")) {
    e.vectors = as_rows(t.at("clip_l"), path, "clip_l");
    e.vectors_2 = as_rows(t.at("clip_g"), path, "clip_g");
    PIG_CHECK(e.vectors.dim(0) == e.vectors_2.dim(0), path, ": clip_l has ", e.vectors.dim(0),
              " vectors but clip_g has ", e.vectors_2.dim(0));
  } else if (t.size() == 1) {  // diffusers learned_embeds: {token: vector}
    e.vectors = as_rows(t.begin()->second, path, t.begin()->first);
  } else {
    fail(path, ": not a textual-inversion embedding (expected string_to_param, emb_params, clip_l/clip_g or a single "
         "{token: vector} entry; found ", t.size(), " tensors)");
  }
  return e;
}

std::string find_embedding_file(const std::string& dir, const std::string& name) {
  if (dir.empty()) return "";
  for (const char* ext : kExtensions) {
    fs::path p = fs::path(dir) / (name + ext);
    if (fs::is_regular_file(p)) return p.string();
  }
  return "";
}

std::vector<std::string> list_embedding_files(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  PIG_CHECK(fs::is_directory(dir, ec), dir, ": embedding directory not found");
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file()) continue;
    std::string ext = entry.path().extension().string();
    if (std::find(std::begin(kExtensions), std::end(kExtensions), ext) != std::end(kExtensions))
      out.push_back(entry.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace pigment
