#include "models/controlnet_loader.h"

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "models/checkpoint_layout.h"

namespace pigment {

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

// Original names of the ControlNet-only parts → diffusers names (input_hint_block is conv, silu, conv, silu ...).
std::string original_extra_name(const std::string& key) {
  static const std::string hint = "input_hint_block.", zero = "zero_convs.", mid = "middle_block_out.0.";
  if (starts_with(key, hint)) {
    std::string rest = key.substr(hint.size());
    size_t dot = rest.find('.');
    int i = std::stoi(rest.substr(0, dot));
    std::string param = rest.substr(dot + 1);
    if (i == 0) return "controlnet_cond_embedding.conv_in." + param;
    if (i == 14) return "controlnet_cond_embedding.conv_out." + param;
    return "controlnet_cond_embedding.blocks." + std::to_string(i / 2 - 1) + "." + param;
  }
  if (starts_with(key, zero)) {  // zero_convs.N.0.weight
    std::string rest = key.substr(zero.size());
    size_t dot = rest.find('.');
    return "controlnet_down_blocks." + rest.substr(0, dot) + rest.substr(rest.find('.', dot + 1));
  }
  if (starts_with(key, mid)) return "controlnet_mid_block." + key.substr(mid.size());
  return "";
}

}  // namespace

ControlNet load_controlnet(const std::string& path, const nlohmann::json& base_unet_config) {
  ControlNetFile f = read_controlnet(path, base_unet_config);
  return ControlNet(ControlNetConfig::from_json(f.config.dump(), path), Weights(f.tensors, path));
}

ControlNetFile read_controlnet(const std::string& path, const nlohmann::json& base_unet_config) {
  namespace fs = std::filesystem;
  PIG_CHECK(fs::exists(path), path, ": ControlNet file not found");
  if (fs::is_directory(path) && fs::exists(fs::path(path) / "config.json")) {
    std::ifstream in(fs::path(path) / "config.json");
    nlohmann::json cfg;
    try {
      cfg = nlohmann::json::parse(in);
    } catch (const std::exception& e) {
      fail(path, "/config.json: not valid JSON: ", e.what());
    }
    Weights w = load_diffusers_weights(path);
    return {cfg, std::make_shared<const TensorMap>(w.all())};
  }
  Checkpoint ck = load_checkpoint(path);
  auto map = std::make_shared<TensorMap>();
  // The original layout, with the control_model. prefix (lllyasviel's .pth) or without it (control_v11 files).
  std::string prefix = "control_model.";
  bool original = false;
  for (const auto& [k, t] : ck.tensors)
    if (starts_with(k, prefix + "input_hint_block.")) original = true;
  if (!original && ck.tensors.count("input_hint_block.0.weight")) {
    original = true;
    prefix.clear();
  }
  if (original) {
    // The encoder half through the UNet table (up path and output layers dropped), the rest by name.
    Layout layout = unet_layout(base_unet_config, prefix);
    Layout encoder;
    for (const auto& e : layout)
      if (!starts_with(e.name, "up_blocks.") && !starts_with(e.name, "conv_norm_out.") &&
          !starts_with(e.name, "conv_out."))
        encoder.push_back(e);
    *map = apply_layout(encoder, ck.tensors, path);
    for (const auto& [k, t] : ck.tensors) {
      if (!starts_with(k, prefix)) continue;
      std::string name = original_extra_name(k.substr(prefix.size()));
      if (!name.empty()) (*map)[name] = t;
    }
  } else {
    for (const auto& [k, t] : ck.tensors) {
      std::string name = starts_with(k, "controlnet.") ? k.substr(11) : k;
      (*map)[name] = t;
    }
  }
  auto get = [&](const std::string& name) -> const Tensor& {
    auto it = map->find(name);
    PIG_CHECK(it != map->end(), path, ": not a ControlNet (no '", name, "')");
    return it->second;
  };
  const Tensor& conv_in = get("controlnet_cond_embedding.conv_in.weight");
  std::vector<int64_t> widths{conv_in.dim(0)};
  for (int b = 1; map->count("controlnet_cond_embedding.blocks." + std::to_string(b) + ".weight"); b += 2)
    widths.push_back(get("controlnet_cond_embedding.blocks." + std::to_string(b) + ".weight").dim(0));
  return {controlnet_config_from_unet(base_unet_config, conv_in.dim(1), widths), map};
}

nlohmann::json controlnet_config_from_unet(const nlohmann::json& base_unet_config, int64_t conditioning_channels,
                                           const std::vector<int64_t>& embedding_widths) {
  nlohmann::json cfg = base_unet_config;
  for (const char* k : {"up_block_types", "out_channels", "conv_out_kernel", "center_input_sample",
                        "reverse_transformer_layers_per_block", "resnet_out_scale_factor", "sample_size"})
    cfg.erase(k);
  cfg["_class_name"] = "ControlNetModel";
  cfg["conditioning_channels"] = conditioning_channels;
  cfg["conditioning_embedding_out_channels"] = embedding_widths;
  if (!cfg.contains("controlnet_conditioning_channel_order")) cfg["controlnet_conditioning_channel_order"] = "rgb";
  if (!cfg.contains("global_pool_conditions")) cfg["global_pool_conditions"] = false;
  return cfg;
}

void write_controlnet(const std::string& path, ControlNetFormat format, const nlohmann::json& base_unet_config,
                      const std::map<std::string, Tensor>& tensors, DType dtype,
                      const std::map<std::string, std::string>& metadata) {
  namespace fs = std::filesystem;
  PIG_CHECK(dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16, path,
            ": a ControlNet is written in f32, f16 or bf16, not ", dtype_name(dtype));
  auto at = [&](const std::string& name) -> const Tensor& {
    auto it = tensors.find(name);
    PIG_CHECK(it != tensors.end(), path, ": the ControlNet has no tensor '", name, "'");
    return it->second;
  };
  const Tensor& conv_in = at("controlnet_cond_embedding.conv_in.weight");
  const Layout layout = controlnet_layout(base_unet_config, "control_model.", conv_in.dim(1));
  NamedTensors out;
  for (const LayoutEntry& e : layout) {
    const Tensor& t = at(e.name);
    PIG_CHECK(t.shape() == e.shape, path, ": ControlNet tensor '", e.name, "' has shape ", shape_str(t.shape()),
              ", expected ", shape_str(e.shape), format == ControlNetFormat::Original
                                                    ? " (the original layout needs the widths 16, 32, 96, 256)"
                                                    : "");
    PIG_CHECK(e.transform == KeyTransform::Same || e.transform == KeyTransform::Reshape, path, ": ", e.name,
              " has no single-tensor form in the original layout");
    Tensor c = t.dtype() == dtype ? t : t.to(dtype);
    if (format == ControlNetFormat::Original)
      out.emplace_back(e.file_key, e.transform == KeyTransform::Reshape ? c.reshape(e.file_shape) : c);
    else
      out.emplace_back(e.name, c);
  }
  if (format == ControlNetFormat::Original) {
    write_safetensors(path, out, metadata);
    return;
  }
  // A folder: written beside as PATH.tmp-PID, then renamed over an earlier one.
  const fs::path dst(path), tmp = fs::path(path + ".tmp-" + std::to_string(::getpid())), old = fs::path(path + ".old");
  PIG_CHECK(!fs::exists(dst) || fs::is_directory(dst), path,
            ": exists and is not a folder (the diffusers layout is a folder: config.json + weights)");
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp);
  std::vector<int64_t> widths{conv_in.dim(0)};
  for (int b = 1; tensors.count("controlnet_cond_embedding.blocks." + std::to_string(b) + ".weight"); b += 2)
    widths.push_back(at("controlnet_cond_embedding.blocks." + std::to_string(b) + ".weight").dim(0));
  nlohmann::json cfg = controlnet_config_from_unet(base_unet_config, conv_in.dim(1), widths);
  {
    std::ofstream f(tmp / "config.json");
    f << cfg.dump(2) << "\n";
    PIG_CHECK(f.good(), "cannot write ", (tmp / "config.json").string());
  }
  write_safetensors((tmp / "diffusion_pytorch_model.safetensors").string(), out, metadata);
  fs::remove_all(old, ec);
  if (fs::exists(dst)) fs::rename(dst, old);
  fs::rename(tmp, dst);
  fs::remove_all(old, ec);
}

Layout controlnet_layout(const nlohmann::json& base_unet_config, const std::string& prefix,
                         int64_t conditioning_channels) {
  Layout out;
  for (const auto& e : unet_layout(base_unet_config, prefix, "controlnet"))
    if (!starts_with(e.name, "up_blocks.") && !starts_with(e.name, "conv_norm_out.") &&
        !starts_with(e.name, "conv_out."))
      out.push_back(e);
  UNetConfig cfg = UNetConfig::from_json(base_unet_config.dump(), "base UNet config");
  auto add = [&](const std::string& name, const std::string& key, Shape shape) {
    LayoutEntry e;
    e.component = "controlnet";
    e.name = name;
    e.shape = e.file_shape = shape;
    e.file_key = prefix + key;
    out.push_back(e);
  };
  auto conv = [&](const std::string& name, const std::string& key, int64_t in, int64_t o, int64_t k) {
    add(name + ".weight", key + ".weight", {o, in, k, k});
    add(name + ".bias", key + ".bias", {o});
  };
  // input_hint_block: conv 3x3 at indices 0, 2, ..., 14 (silu between), stride 2 at 4, 8 and 12.
  const int64_t widths[] = {16, 16, 32, 32, 96, 96, 256};
  conv("controlnet_cond_embedding.conv_in", "input_hint_block.0", conditioning_channels, widths[0], 3);
  for (int i = 1; i < 7; ++i)
    conv("controlnet_cond_embedding.blocks." + std::to_string(i - 1), "input_hint_block." + std::to_string(2 * i),
         widths[i - 1], widths[i], 3);
  const auto& boc = cfg.block_out_channels;
  conv("controlnet_cond_embedding.conv_out", "input_hint_block.14", widths[6], boc[0], 3);
  int k = 0;
  auto zero = [&](int64_t c) {
    std::string n = std::to_string(k++);
    conv("controlnet_down_blocks." + n, "zero_convs." + n + ".0", c, c, 1);
  };
  zero(boc[0]);
  for (size_t i = 0; i < boc.size(); ++i) {
    for (int l = 0; l < cfg.layers_per_block[i]; ++l) zero(boc[i]);
    if (i + 1 < boc.size()) zero(boc[i]);
  }
  conv("controlnet_mid_block", "middle_block_out.0", boc.back(), boc.back(), 1);
  return out;
}

}  // namespace pigment
