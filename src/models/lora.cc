#include "models/lora.h"

#include <algorithm>

#include "io/checkpoint.h"
#include "ops/ops.h"

namespace pigment {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

std::string flatten(std::string s) {
  std::replace(s.begin(), s.end(), '.', '_');
  return s;
}

enum class Part { Down, Up, Alpha };

struct KeyInfo {
  std::string component, key;
  bool flattened = false;
  Part part = Part::Down;
};

// Splits a file key into component, module and which half it is; nullopt for keys that are no LoRA weight.
std::optional<KeyInfo> parse_key(std::string k, const std::string& source) {
  KeyInfo info;
  static const std::pair<const char*, const char*> kohya_prefixes[] = {
      {"lora_unet_", "unet"}, {"lora_te1_", "text_encoder"}, {"lora_te2_", "text_encoder_2"},
      {"lora_te_", "text_encoder"}};
  for (const char* lyco : {".hada_w1_a", ".hada_w1_b", ".lokr_w1", ".lokr_w2", ".lokr_w1_a", ".lora_mid.weight"})
    PIG_CHECK(k.find(lyco) == std::string::npos, source, ": key '", k,
              "' is a LyCORIS LoHa/LoKr/LoCon-mid weight; pigment applies plain LoRA (down/up) only");
  for (const auto& [prefix, component] : kohya_prefixes) {
    if (!starts_with(k, prefix)) continue;
    std::string rest = k.substr(std::string(prefix).size());
    info.component = component;
    info.flattened = true;
    for (const auto& [suffix, part] : {std::pair<const char*, Part>{".lora_down.weight", Part::Down},
                                       {".lora_up.weight", Part::Up}, {".alpha", Part::Alpha}}) {
      if (!ends_with(rest, suffix)) continue;
      info.key = rest.substr(0, rest.size() - std::string(suffix).size());
      info.part = part;
      return info;
    }
    fail(source, ": unrecognised kohya LoRA key '", k, "' (expected .lora_down.weight, .lora_up.weight or .alpha)");
  }
  // diffusers / PEFT
  if (starts_with(k, "base_model.model.")) k = k.substr(17);
  static const std::pair<const char*, const char*> prefixes[] = {
      {"unet.", "unet"}, {"text_encoder_2.", "text_encoder_2"}, {"text_encoder.", "text_encoder"}};
  info.component = "unet";  // PEFT files of a bare UNet carry no component prefix
  for (const auto& [prefix, component] : prefixes)
    if (starts_with(k, prefix)) {
      info.component = component;
      k = k.substr(std::string(prefix).size());
      break;
    }
  static const std::pair<const char*, Part> suffixes[] = {
      {".lora.down.weight", Part::Down},         {".lora.up.weight", Part::Up},
      {".lora_linear_layer.down.weight", Part::Down}, {".lora_linear_layer.up.weight", Part::Up},
      {".lora_A.weight", Part::Down},            {".lora_B.weight", Part::Up},
      {".lora_A.default.weight", Part::Down},    {".lora_B.default.weight", Part::Up},
      {".alpha", Part::Alpha},
      {".down.weight", Part::Down},              {".up.weight", Part::Up}};  // "…processor.to_q_lora.down.weight"
  for (const auto& [suffix, part] : suffixes) {
    if (!ends_with(k, suffix)) continue;
    std::string module = k.substr(0, k.size() - std::string(suffix).size());
    if (suffix[1] != 'l' && suffix[1] != 'a' && !ends_with(module, "_lora")) continue;
    // Old diffusers attention-processor keys: "attn1.processor.to_q_lora" → "attn1.to_q".
    auto proc = module.find(".processor.");
    if (proc != std::string::npos && ends_with(module, "_lora")) {
      std::string layer = module.substr(proc + 11, module.size() - proc - 11 - 5);
      if (layer == "to_out") layer = "to_out.0";
      module = module.substr(0, proc) + "." + layer;
    }
    info.key = module;
    info.part = part;
    return info;
  }
  return std::nullopt;
}

}  // namespace

LoraFile LoraFile::from_tensors(const std::map<std::string, Tensor>& tensors, const std::string& source) {
  LoraFile f;
  f.path = source;
  std::map<std::pair<std::string, std::string>, size_t> index;
  for (const auto& [name, t] : tensors) {
    auto info = parse_key(name, source);
    if (!info) continue;
    auto id = std::make_pair(info->component, info->key);
    auto it = index.find(id);
    if (it == index.end()) {
      it = index.emplace(id, f.entries.size()).first;
      f.entries.push_back({info->component, info->key, info->flattened, {}, {}, std::nullopt});
    }
    LoraEntry& e = f.entries[it->second];
    if (info->part == Part::Alpha) {
      PIG_CHECK(t.numel() == 1, source, ": '", name, "' should be a scalar, has shape ", shape_str(t.shape()));
      e.alpha = t.as_f32().f32()[0];
    } else {
      PIG_CHECK(t.ndim() == 2 || t.ndim() == 4, source, ": '", name, "' has shape ", shape_str(t.shape()),
                ", expected a 2-D (linear) or 4-D (conv) LoRA weight");
      (info->part == Part::Down ? e.down : e.up) = t.as_f32();
    }
  }
  for (const auto& e : f.entries) {
    PIG_CHECK(e.down.defined() && e.up.defined(), source, ": LoRA module '", e.key, "' (", e.component,
              ") lacks its ", e.down.defined() ? "up" : "down", " weight");
    PIG_CHECK(e.down.ndim() == e.up.ndim() && e.up.dim(1) == e.down.dim(0), source, ": LoRA module '", e.key,
              "': up ", shape_str(e.up.shape()), " does not fit down ", shape_str(e.down.shape()));
    PIG_CHECK(e.up.ndim() == 2 || (e.up.dim(2) == 1 && e.up.dim(3) == 1), source, ": LoRA module '", e.key,
              "': up weight ", shape_str(e.up.shape()), " should be a 1x1 convolution");
  }
  PIG_CHECK(!f.entries.empty(), source, ": no LoRA weights found (expected kohya lora_unet_/lora_te_ keys, diffusers "
            "unet./text_encoder. keys with lora.down/lora.up, or PEFT lora_A/lora_B)");
  return f;
}

LoraFile LoraFile::load(const std::string& path) {
  Checkpoint c = load_checkpoint(path);
  return from_tensors(c.tensors, path);
}

ResolvedLora resolve_lora(const LoraFile& file, const std::map<std::string, const TensorMap*>& components) {
  ResolvedLora r;
  r.path = file.path;
  // Flattened name → module name, per component, from the model's own weights.
  std::map<std::string, std::map<std::string, std::string>> flat;
  for (const auto& [comp, map] : components)
    for (const auto& [name, t] : *map)
      if (ends_with(name, ".weight")) {
        std::string module = name.substr(0, name.size() - 7);
        flat[comp][flatten(module)] = module;
      }
  for (const LoraEntry& e : file.entries) {
    auto cit = components.find(e.component);
    std::string module;
    if (cit != components.end()) {
      const TensorMap& map = *cit->second;
      if (e.flattened) {
        auto it = flat[e.component].find(e.key);
        if (it != flat[e.component].end()) module = it->second;
      } else {
        for (const std::string& cand : {e.key, "text_model." + e.key})
          if (map.count(cand + ".weight")) {
            module = cand;
            break;
          }
      }
    }
    if (module.empty()) {
      r.unmatched.push_back(e.component + ":" + e.key);
      continue;
    }
    const Tensor& w = cit->second->at(module + ".weight");
    Shape expect = w.shape();
    bool fits = w.ndim() == e.down.ndim() && e.up.dim(0) == w.dim(0) && e.down.dim(1) == w.dim(1);
    if (fits && w.ndim() == 4) fits = e.down.dim(2) == w.dim(2) && e.down.dim(3) == w.dim(3);
    PIG_CHECK(fits, file.path, ": LoRA for '", module, "' (", e.component, ") has down ", shape_str(e.down.shape()),
              " / up ", shape_str(e.up.shape()), " but the model's weight is ", shape_str(w.shape()),
              " (a LoRA made for another model family?)");
    float rank = float(e.down.dim(0));
    r.modules.push_back({e.component, module, e.down, e.up, e.alpha ? *e.alpha / rank : 1.f});
  }
  PIG_CHECK(!r.modules.empty(), file.path, ": none of its ", file.entries.size(),
            " LoRA modules matches a layer of this model (first: '", r.unmatched.front(),
            "'); a LoRA made for another model family?");
  return r;
}

Tensor lora_delta_weight(const Tensor& down, const Tensor& up) {
  int64_t out = up.dim(0), rank = down.dim(0);
  Tensor d2 = down.reshape({rank, down.numel() / rank});
  Tensor prod = ops::matmul(up.reshape({out, rank}), d2);
  Shape s = down.shape();
  s[0] = out;
  return prod.reshape(s);
}

std::shared_ptr<const TensorMap> merge_loras(const TensorMap& base, const std::string& component,
                                             const std::vector<LoraUse>& uses) {
  auto out = std::make_shared<TensorMap>(base);
  std::map<std::string, Tensor> patched;
  for (const LoraUse& u : uses) {
    if (!u.lora || u.weight == 0) continue;
    for (const LoraModule& m : u.lora->modules) {
      if (m.component != component) continue;
      std::string key = m.module + ".weight";
      auto it = patched.find(key);
      if (it == patched.end()) it = patched.emplace(key, base.at(key).to(DType::F32)).first;
      Tensor delta = lora_delta_weight(m.down, m.up);
      ops::add_inplace(it->second, ops::scale(delta, u.weight * m.factor));
    }
  }
  for (auto& [key, t] : patched) (*out)[key] = t;
  return out;
}

LoraRuntime::LoraRuntime(const std::string& component, const std::vector<LoraUse>& uses) {
  for (const LoraUse& u : uses) {
    if (!u.lora || u.weight == 0) continue;
    for (const LoraModule& m : u.lora->modules)
      if (m.component == component) layers_[m.module].push_back({m.down, m.up, u.weight * m.factor});
  }
}

void LoraRuntime::apply(const std::string& name, const Tensor& x, Tensor& y) const {
  auto it = layers_.find(name);
  if (it == layers_.end()) return;
  for (const Term& t : it->second) {
    Tensor d;
    if (t.down.ndim() == 2) {
      d = ops::linear(ops::linear(x, t.down), t.up);
    } else {
      int k = int(t.down.dim(2));
      int stride = int(x.dim(2) / y.dim(2));
      Tensor h = ops::conv2d(x, t.down, nullptr, ops::Conv2dParams::same((k - 1) / 2, stride));
      d = ops::conv2d(h, t.up, nullptr, ops::Conv2dParams::same(0));
    }
    y = ops::add_scaled(y, d, t.scale);
  }
}

}  // namespace pigment
