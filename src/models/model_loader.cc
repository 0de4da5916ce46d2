#include "models/model_loader.h"

#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "io/checkpoint.h"
#include "models/checkpoint_layout.h"

namespace pigment {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const char* const kComponents[] = {"unet", "vae", "text_encoder", "text_encoder_2"};

json read_json(const fs::path& p) {
  std::ifstream f(p);
  PIG_CHECK(f, p.string(), ": cannot open");
  try {
    return json::parse(f);
  } catch (const std::exception& e) {
    fail(p.string(), ": invalid JSON: ", e.what());
  }
}

// The overrides of `options` for one component, merged into one object (null when there are none).
json override_for(const LoadOptions& options, const std::string& component) {
  json o = nullptr;
  if (auto it = options.config_paths.find(component); it != options.config_paths.end()) {
    fs::path p(it->second);
    if (fs::is_directory(p)) p /= "config.json";
    o = read_json(p);
    PIG_CHECK(o.is_object(), p.string(), ": a config must be a JSON object");
  }
  if (auto it = options.configs.find(component); it != options.configs.end()) {
    PIG_CHECK(it->second.is_object(), "config override for ", component, " must be a JSON object");
    if (o.is_null()) o = json::object();
    o.update(it->second);
  }
  return o;
}

void check_overrides_used(const LoadOptions& options, const LoadedModel& m) {
  std::set<std::string> named;
  for (const auto& [c, _] : options.config_paths) named.insert(c);
  for (const auto& [c, _] : options.configs) named.insert(c);
  for (const auto& c : named) {
    std::string present;
    for (const auto& [n, _] : m.components) present += (present.empty() ? "" : ", ") + n;
    PIG_CHECK(m.has(c), m.path, ": a config was given for component '", c, "', which this checkpoint does not have (",
              "it has: ", present, ")");
  }
}

// The layout that names a component's parameters (its file prefix is irrelevant for diffusers files).
Layout component_layout(const std::string& name, const json& config, const std::string& prefix, bool open_clip) {
  if (name == "unet") return unet_layout(config, prefix, name);
  if (name == "vae") return vae_layout(config, prefix, name);
  if (open_clip) return open_clip_layout(config, prefix, name);
  return openai_clip_layout(config, prefix, name);
}

// ---- single files ----

// Checkpoints saved with an old transformers CLIP lack the "text_model." level (A1111 renames them the same way).
void rename_legacy_clip_keys(std::map<std::string, Tensor>& tensors) {
  const std::string p = file_prefix::kSd1Clip;
  if (tensors.lower_bound(p + "text_model.") != tensors.end() &&
      tensors.lower_bound(p + "text_model.")->first.rfind(p + "text_model.", 0) == 0)
    return;
  std::vector<std::string> old;
  for (const char* part : {"embeddings.", "encoder.", "final_layer_norm."})
    for (auto it = tensors.lower_bound(p + part); it != tensors.end() && it->first.rfind(p + part, 0) == 0; ++it)
      old.push_back(it->first);
  for (const auto& k : old) {
    tensors[p + "text_model." + k.substr(p.size())] = tensors[k];
    tensors.erase(k);
  }
}

LoadedModel load_single_file(const std::string& path, const LoadOptions& options) {
  Checkpoint ck = load_checkpoint(path);
  rename_legacy_clip_keys(ck.tensors);
  LoadedModel m;
  m.path = path;
  m.format = "single-file";
  m.detection = detect_family(ck.tensors, path);
  m.prediction_type = infer_prediction_type(m.detection, path, ck.metadata, options.prediction);
  m.scheduler_config = default_preset(m.detection.family, m.prediction_type).scheduler;
  SingleFileConfigs cfg;
  try {
    cfg = infer_single_file_configs(ck.tensors, m.detection, m.prediction_type);
  } catch (const Error& e) {
    fail(path, ": ", e.what());
  }
  // A self-describing file's own configs come before the user's overrides.
  auto embedded = [&](const std::string& component) -> json {
    auto it = ck.metadata.find(kMetaConfigPrefix + component);
    if (it == ck.metadata.end()) return nullptr;
    json j;
    try {
      j = json::parse(it->second);
    } catch (const std::exception& e) {
      fail(path, ": metadata ", it->first, " is not valid JSON: ", e.what());
    }
    PIG_CHECK(j.is_object(), path, ": metadata ", it->first, " must be a JSON object");
    return j;
  };
  if (json j = embedded("scheduler"); !j.is_null()) m.scheduler_config.update(j);
  m.scheduler_config["prediction_type"] = m.prediction_type;
  if (auto it = ck.metadata.find(kMetaFamily); it != ck.metadata.end()) m.preset_name = it->second;
  if (auto it = ck.metadata.find(kMetaTokenizerMerges); it != ck.metadata.end()) m.tokenizer_merges = it->second;

  struct Part {
    const char* name;
    json* config;
    std::string prefix;
    bool open_clip;
  };
  const Part parts[] = {{"unet", &cfg.unet, file_prefix::kUNet, false},
                        {"vae", &cfg.vae, file_prefix::kVae, false},
                        {"text_encoder", &cfg.text_encoder, cfg.text_encoder_prefix, cfg.text_encoder_open_clip},
                        {"text_encoder_2", &cfg.text_encoder_2, cfg.text_encoder_2_prefix, true}};
  std::set<std::string> used;
  for (const auto& p : parts) {
    if (p.config->is_null()) continue;
    json config = *p.config;
    if (json e = embedded(p.name); !e.is_null()) config.update(e);
    json o = override_for(options, p.name);
    if (!o.is_null()) config.update(o);
    Layout layout = component_layout(p.name, config, p.prefix, p.open_clip);
    ModelComponent c;
    c.name = p.name;
    c.source = path + " (" + p.name + ")";
    c.config = std::move(config);
    c.tensors = std::make_shared<const TensorMap>(apply_layout(layout, ck.tensors, path));
    for (const auto& e : layout) used.insert(e.file_key);
    m.components[p.name] = std::move(c);
  }
  for (const auto& [k, _] : ck.tensors)
    if (!used.count(k)) m.unused_keys.push_back(k);
  check_overrides_used(options, m);
  return m;
}

// ---- diffusers folders ----

// The weights of one component folder: a single file, or shards listed by an index.
TensorMap load_component_weights(const fs::path& dir, std::string& source) {
  const char* singles[] = {"diffusion_pytorch_model.safetensors", "model.safetensors",
                           "diffusion_pytorch_model.fp16.safetensors", "model.fp16.safetensors"};
  for (const char* f : singles)
    if (fs::exists(dir / f)) {
      source = (dir / f).string();
      return load_checkpoint(source).tensors;
    }
  const char* indexes[] = {"diffusion_pytorch_model.safetensors.index.json", "model.safetensors.index.json",
                           "diffusion_pytorch_model.fp16.safetensors.index.json", "model.fp16.safetensors.index.json"};
  for (const char* f : indexes) {
    if (!fs::exists(dir / f)) continue;
    source = (dir / f).string();
    json idx = read_json(dir / f);
    PIG_CHECK(idx.contains("weight_map") && idx["weight_map"].is_object(), source, ": no weight_map object");
    std::set<std::string> shards;
    for (const auto& [name, file] : idx["weight_map"].items()) {
      PIG_CHECK(file.is_string(), source, ": weight_map entry for '", name, "' is not a file name");
      shards.insert(file.get<std::string>());
    }
    TensorMap all;
    for (const auto& s : shards) {
      PIG_CHECK(fs::path(s).filename().string() == s, source, ": shard name '", s, "' must be a plain file name");
      for (auto& [k, t] : load_checkpoint((dir / s).string()).tensors) all[k] = t;
    }
    return all;
  }
  const char* pickles[] = {"diffusion_pytorch_model.bin", "pytorch_model.bin", "diffusion_pytorch_model.fp16.bin",
                           "pytorch_model.fp16.bin"};
  for (const char* f : pickles)
    if (fs::exists(dir / f)) {
      source = (dir / f).string();
      return load_checkpoint(source).tensors;
    }
  fail(dir.string(), ": no weights file (diffusion_pytorch_model.safetensors, model.safetensors, a sharded index or a "
                     ".bin)");
}

// Which component a lone config.json describes.
std::string component_of_config(const json& c, const fs::path& p) {
  std::string cls = c.value("_class_name", "");
  if (cls == "UNet2DConditionModel") return "unet";
  if (cls == "AutoencoderKL") return "vae";
  if (c.contains("architectures") && c["architectures"].is_array())
    for (const auto& a : c["architectures"])
      if (a == "CLIPTextModel" || a == "CLIPTextModelWithProjection") return "text_encoder";
  if (c.value("model_type", "") == "clip_text_model") return "text_encoder";
  fail(p.string(), ": not a UNet2DConditionModel, AutoencoderKL or CLIP text model config");
}

Detection detect_from_configs(const std::map<std::string, ModelComponent>& cs, const std::string& path) {
  Detection d;
  d.single_file = false;
  auto unet = cs.find("unet");
  auto te = cs.find("text_encoder");
  if (unet != cs.end()) {
    ModelConfig c = unet->second.model_config();
    d.in_channels = c.get_int("in_channels", 4);
    d.context_dim = c.get_int("cross_attention_dim", 1280);
    d.inpaint = d.in_channels == 9;
  }
  ModelConfig uc = unet != cs.end() ? unet->second.model_config() : ModelConfig();
  if (cs.count("text_encoder_2") || uc.get_string("addition_embed_type", "") == "text_time" || d.context_dim == 2048) {
    d.family = Family::SDXL;
    d.evidence = "text_encoder_2 / text_time embedding";
  } else if (d.context_dim == 768 || d.context_dim == 1024) {
    d.family = d.context_dim == 768 ? Family::SD1 : Family::SD2;
    d.evidence = "UNet cross-attention width " + std::to_string(d.context_dim);
  } else if (te != cs.end()) {
    ModelConfig c = te->second.model_config();
    int64_t h = c.get_int("hidden_size", 512);
    std::string act = c.get_string("hidden_act", "quick_gelu");
    d.family = h == 1024 || (h != 768 && act == "gelu") ? Family::SD2 : Family::SD1;
    d.evidence = "text encoder (hidden " + std::to_string(h) + ", " + act + ")";
  } else if (unet != cs.end()) {
    // A custom-size UNet on its own: linear transformer projections are the SD2 convention.
    d.family = uc.get_bool("use_linear_projection", false) ? Family::SD2 : Family::SD1;
    d.evidence = "UNet use_linear_projection";
  } else {
    d.family = Family::SD1;
    d.evidence = "VAE only";
  }
  PIG_CHECK(d.in_channels == 0 || d.in_channels == 4 || d.in_channels == 9, path, ": UNet with ", d.in_channels,
            " input channels (4, or 9 for inpainting)");
  return d;
}

LoadedModel load_diffusers(const std::string& path, const LoadOptions& options) {
  fs::path root(path);
  LoadedModel m;
  m.path = path;
  m.format = "diffusers";
  std::vector<std::pair<std::string, fs::path>> dirs;  // component → folder
  if (fs::exists(root / "model_index.json")) {
    for (const char* c : kComponents)
      if (fs::exists(root / c / "config.json")) dirs.emplace_back(c, root / c);
    PIG_CHECK(!dirs.empty(), path, ": model_index.json but no unet/, vae/ or text_encoder/ folder with a config.json");
  } else if (fs::exists(root / "config.json")) {
    dirs.emplace_back(component_of_config(read_json(root / "config.json"), root / "config.json"), root);
  } else {
    fail(path, ": not a diffusers folder (no model_index.json or config.json)");
  }
  for (const auto& [name, dir] : dirs) {
    ModelComponent c;
    c.name = name;
    c.config = read_json(dir / "config.json");
    PIG_CHECK(c.config.is_object(), (dir / "config.json").string(), ": a config must be a JSON object");
    json o = override_for(options, name);
    if (!o.is_null()) c.config.update(o);
    std::string file;
    TensorMap t = load_component_weights(dir, file);
    c.source = file;
    // Every parameter the config implies must be there with its shape; extra entries (buffers) are kept.
    Layout layout = component_layout(name, c.config, "", false);
    for (const auto& e : layout) {
      auto it = t.find(e.name);
      PIG_CHECK(it != t.end(), file, ": missing tensor '", e.name, "'");
      PIG_CHECK(it->second.shape() == e.shape, file, ": tensor '", e.name, "' has shape ", shape_str(it->second.shape()),
                ", expected ", shape_str(e.shape));
    }
    c.tensors = std::make_shared<const TensorMap>(std::move(t));
    m.components[name] = std::move(c);
  }
  m.detection = detect_from_configs(m.components, path);
  json sched = nullptr;
  if (fs::exists(root / "scheduler" / "scheduler_config.json")) sched = read_json(root / "scheduler" / "scheduler_config.json");
  if (!options.prediction.empty()) {
    m.prediction_type = normalize_prediction_type(options.prediction);
  } else if (sched.is_object() && sched.contains("prediction_type") && sched["prediction_type"].is_string()) {
    m.prediction_type = normalize_prediction_type(sched["prediction_type"].get<std::string>());
  } else {
    m.prediction_type = "epsilon";
  }
  m.scheduler_config = sched.is_object() ? sched : default_preset(m.detection.family, m.prediction_type).scheduler;
  m.scheduler_config["prediction_type"] = m.prediction_type;
  check_overrides_used(options, m);
  return m;
}

}  // namespace

int64_t ModelComponent::parameter_count() const {
  int64_t n = 0;
  if (tensors)
    for (const auto& [_, t] : *tensors) n += t.numel();
  return n;
}

const ModelComponent& LoadedModel::component(const std::string& name) const {
  auto it = components.find(name);
  if (it == components.end()) {
    std::string present;
    for (const auto& [n, _] : components) present += (present.empty() ? "" : ", ") + n;
    fail(path, ": no ", name, " in this checkpoint (it has: ", present.empty() ? "nothing" : present, ")");
  }
  return it->second;
}

LoadedModel load_model(const std::string& path, const LoadOptions& options) {
  PIG_CHECK(fs::exists(path), path, ": no such file or directory");
  if (fs::is_directory(path)) return load_diffusers(path, options);
  return load_single_file(path, options);
}

}  // namespace pigment
