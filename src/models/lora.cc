#include "models/lora.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "io/checkpoint.h"
#include "models/checkpoint_layout.h"
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

struct KeyInfo {
  std::string component, key;
  bool flattened = false;
  std::string part;  // "lora_down.weight", "lora_up.weight", "alpha", or a LyCORIS suffix ("hada_w1_a", ...)
};

// Suffixes of the module kinds pigment applies, after the kohya module name and its '.'.
const std::set<std::string>& known_parts() {
  static const std::set<std::string> parts = {
      "lora_down.weight", "lora_up.weight", "lora_mid.weight", "alpha", "scale", "dora_scale",
      "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2",
      "lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2", "diff", "diff_b"};
  return parts;
}

// The LyCORIS / A1111 module kinds pigment refuses, by key suffix.
const char* refused_kind(const std::string& part) {
  if (part == "weight" || part == "on_input") return "IA3";
  if (starts_with(part, "oft_")) return "OFT";
  if (part == "a1.weight" || part == "a2.weight" || part == "b1.weight" || part == "b2.weight") return "GLoRA";
  if (part == "w_norm" || part == "b_norm") return "norm";
  if (part == "bias") return "bias-patch";
  return nullptr;
}

// Splits a file key into component, module and which part it is; nullopt for keys that are no LoRA weight.
std::optional<KeyInfo> parse_key(std::string k, const std::string& source) {
  KeyInfo info;
  static const std::pair<const char*, const char*> kohya_prefixes[] = {
      {"lora_unet_", "unet"}, {"lora_te1_", "text_encoder"}, {"lora_te2_", "text_encoder_2"},
      {"lora_te_", "text_encoder"}, {"lycoris_", "unet"}};
  PIG_CHECK(k.find("lora_magnitude_vector") == std::string::npos, source, ": key '", k,
            "' is a PEFT DoRA magnitude; pigment applies LyCORIS/A1111 dora_scale only");
  for (const auto& [prefix, component] : kohya_prefixes) {
    if (!starts_with(k, prefix)) continue;
    std::string rest = k.substr(std::string(prefix).size());
    size_t dot = rest.find('.');
    std::string part = dot == std::string::npos ? "" : rest.substr(dot + 1);
    if (const char* kind = refused_kind(part))
      fail(source, ": key '", k, "' belongs to a LyCORIS ", kind,
           " module; pigment applies LoRA/LoCon, LoHa, LoKr and full (diff) modules only");
    PIG_CHECK(known_parts().count(part), source, ": unrecognised kohya/LyCORIS key '", k,
              "' (expected .lora_down.weight, .lora_up.weight, .alpha, .hada_*, .lokr_*, .diff, .dora_scale ...)");
    info.component = component;
    info.flattened = true;
    info.key = rest.substr(0, dot);
    info.part = part;
    return info;
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
  static const std::pair<const char*, const char*> suffixes[] = {
      {".lora.down.weight", "lora_down.weight"},         {".lora.up.weight", "lora_up.weight"},
      {".lora_linear_layer.down.weight", "lora_down.weight"}, {".lora_linear_layer.up.weight", "lora_up.weight"},
      {".lora_A.weight", "lora_down.weight"},            {".lora_B.weight", "lora_up.weight"},
      {".lora_A.default.weight", "lora_down.weight"},    {".lora_B.default.weight", "lora_up.weight"},
      {".alpha", "alpha"},
      {".down.weight", "lora_down.weight"},              {".up.weight", "lora_up.weight"}};  // "…processor.to_q_lora.down.weight"
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

// A factor as a matrix: its first dimension by the product of the others.
Tensor as_matrix(const Tensor& t) { return t.reshape({t.dim(0), t.numel() / t.dim(0)}); }

// A1111's make_weight_cp: t [R, R', kh, kw], wa [R, P], wb [R', Q] → Σ_ij t[i, j]·wa[i, p]·wb[j, q], [P, Q, kh, kw].
Tensor tucker(const Tensor& t, const Tensor& wa, const Tensor& wb) {
  int64_t r = t.dim(0), r2 = t.dim(1), kh = t.dim(2), kw = t.dim(3), p = wa.dim(1), q = wb.dim(1), ks = kh * kw;
  Tensor out = Tensor::empty({p, q, kh, kw});
  Tensor core = Tensor::empty({r, r2});
  for (int64_t s = 0; s < ks; ++s) {
    for (int64_t i = 0; i < r * r2; ++i) core.f32()[i] = t.f32()[i * ks + s];
    Tensor ps = ops::matmul(wa, ops::matmul(core, wb), /*trans_a=*/true);  // [P, Q]
    for (int64_t i = 0; i < p * q; ++i) out.f32()[i * ks + s] = ps.f32()[i];
  }
  return out;
}

// Kronecker product of two matrices [a, b] ⊗ [c, d] → [a·c, b·d].
Tensor kron(const Tensor& x, const Tensor& y) {
  int64_t a = x.dim(0), b = x.dim(1), c = y.dim(0), d = y.dim(1);
  Tensor out = Tensor::empty({a * c, b * d});
  float* o = out.f32();
  for (int64_t i = 0; i < a; ++i)
    for (int64_t k = 0; k < c; ++k)
      for (int64_t j = 0; j < b; ++j) {
        float v = x.f32()[i * b + j];
        const float* yr = y.f32() + k * d;
        float* orow = o + (i * c + k) * (b * d) + j * d;
        for (int64_t l = 0; l < d; ++l) orow[l] = v * yr[l];
      }
  return out;
}

bool has(const LoraEntry& e, const char* part) { return e.parts.count(part) != 0; }
const Tensor& part(const LoraEntry& e, const char* name) { return e.parts.at(name); }

// Which kind of module the entry is, and whether its factors fit each other; throws naming the module.
void check_entry(LoraEntry& e, const std::string& source) {
  const std::string what = source + ": module '" + e.key + "' (" + e.component + ")";
  auto any = [&](const char* prefix) {
    for (const auto& [name, t] : e.parts)
      if (starts_with(name, prefix)) return true;
    return false;
  };
  bool lora = e.down.defined() || e.up.defined() || has(e, "lora_mid.weight");
  bool loha = any("hada_"), lokr = any("lokr_"), full = has(e, "diff") || has(e, "diff_b");
  PIG_CHECK(int(lora) + int(loha) + int(lokr) + int(full) <= 1, what, " mixes LoRA, LoHa, LoKr and diff keys");
  PIG_CHECK(lora || loha || lokr || full, what, " has no weights (only alpha/scale/dora_scale)");
  auto need = [&](const char* name, std::initializer_list<int> ndims) -> const Tensor& {
    PIG_CHECK(has(e, name), what, " lacks its ", name, " weight");
    const Tensor& t = part(e, name);
    PIG_CHECK(std::find(ndims.begin(), ndims.end(), t.ndim()) != ndims.end(), what, ": ", name, " has shape ",
              shape_str(t.shape()), ", expected ", *ndims.begin(), "-D");
    return t;
  };
  auto fit = [&](bool ok, const char* a, const Tensor& ta, const char* b, const Tensor& tb) {
    PIG_CHECK(ok, what, ": ", a, " ", shape_str(ta.shape()), " does not fit ", b, " ", shape_str(tb.shape()));
  };
  if (lora) {
    e.kind = LoraKind::LoRA;
    PIG_CHECK(e.down.defined() && e.up.defined(), what, " lacks its ", e.down.defined() ? "up" : "down", " weight");
    for (const Tensor* t : {&e.down, &e.up})
      PIG_CHECK(t->ndim() == 2 || t->ndim() == 4, what, ": LoRA weight of shape ", shape_str(t->shape()),
                ", expected a 2-D (linear) or 4-D (conv) LoRA weight");
    PIG_CHECK(e.up.ndim() == 2 || (e.up.dim(2) == 1 && e.up.dim(3) == 1), what, ": up weight ",
              shape_str(e.up.shape()), " should be a 1x1 convolution");
    if (has(e, "lora_mid.weight")) {
      const Tensor& mid = need("lora_mid.weight", {4});
      PIG_CHECK(e.down.ndim() == 4 && e.down.dim(2) == 1 && e.down.dim(3) == 1, what, ": down weight ",
                shape_str(e.down.shape()), " should be a 1x1 convolution when a lora_mid core is present");
      fit(e.up.dim(1) == mid.dim(0) && e.down.dim(0) == mid.dim(1), "lora_mid", mid, "lora_up/lora_down", e.up);
    } else {
      fit(e.down.ndim() == e.up.ndim() && e.up.dim(1) == e.down.dim(0), "up", e.up, "down", e.down);
    }
  } else if (loha) {
    e.kind = LoraKind::LoHa;
    const Tensor &w1a = need("hada_w1_a", {2}), &w1b = need("hada_w1_b", {2, 4});
    const Tensor &w2a = need("hada_w2_a", {2}), &w2b = need("hada_w2_b", {2, 4});
    PIG_CHECK(has(e, "hada_t1") == has(e, "hada_t2"), what, " has only one of hada_t1 / hada_t2");
    if (has(e, "hada_t1")) {
      const Tensor &t1 = need("hada_t1", {4}), &t2 = need("hada_t2", {4});
      fit(t1.dim(0) == w1a.dim(0) && t1.dim(1) == w1b.dim(0), "hada_t1", t1, "hada_w1_a/hada_w1_b", w1a);
      fit(t2.dim(0) == w2a.dim(0) && t2.dim(1) == w2b.dim(0), "hada_t2", t2, "hada_w2_a/hada_w2_b", w2a);
      fit(w1a.dim(1) == w2a.dim(1) && w1b.numel() / w1b.dim(0) == w2b.numel() / w2b.dim(0) &&
              t1.dim(2) == t2.dim(2) && t1.dim(3) == t2.dim(3),
          "hada_t1 with hada_w1_*", t1, "hada_t2 with hada_w2_*", t2);
    } else {
      fit(w1a.dim(1) == w1b.dim(0), "hada_w1_a", w1a, "hada_w1_b", w1b);
      fit(w2a.dim(1) == w2b.dim(0), "hada_w2_a", w2a, "hada_w2_b", w2b);
      Shape p1{w1a.dim(0), w1b.numel() / w1b.dim(0)}, p2{w2a.dim(0), w2b.numel() / w2b.dim(0)};
      PIG_CHECK(p1 == p2, what, ": hada_w1_a·hada_w1_b gives ", shape_str(p1), " but hada_w2_a·hada_w2_b gives ",
                shape_str(p2));
    }
  } else if (lokr) {
    e.kind = LoraKind::LoKr;
    if (has(e, "lokr_w1")) {
      need("lokr_w1", {2});
    } else {
      PIG_CHECK(has(e, "lokr_w1_a") || has(e, "lokr_w1_b"), what, " lacks lokr_w1 (or lokr_w1_a/lokr_w1_b)");
      const Tensor &a = need("lokr_w1_a", {2}), &b = need("lokr_w1_b", {2});
      fit(a.dim(1) == b.dim(0), "lokr_w1_a", a, "lokr_w1_b", b);
    }
    if (has(e, "lokr_w2")) {
      need("lokr_w2", {2, 4});
    } else {
      PIG_CHECK(has(e, "lokr_w2_a") || has(e, "lokr_w2_b"), what, " lacks lokr_w2 (or lokr_w2_a/lokr_w2_b)");
      const Tensor& a = need("lokr_w2_a", {2});
      if (has(e, "lokr_t2")) {
        const Tensor &b = need("lokr_w2_b", {2}), &t = need("lokr_t2", {4});
        fit(t.dim(0) == a.dim(0) && t.dim(1) == b.dim(0), "lokr_t2", t, "lokr_w2_a/lokr_w2_b", a);
      } else {
        const Tensor& b = need("lokr_w2_b", {2, 4});
        fit(a.dim(1) == b.dim(0), "lokr_w2_a", a, "lokr_w2_b", b);
      }
    }
  } else {
    e.kind = LoraKind::Full;
    need("diff", {2, 4});
    if (has(e, "diff_b")) need("diff_b", {1});
  }
}

}  // namespace

const char* lora_kind_name(LoraKind k) {
  switch (k) {
    case LoraKind::LoRA: return "LoRA";
    case LoraKind::LoHa: return "LoHa";
    case LoraKind::LoKr: return "LoKr";
    case LoraKind::Full: return "full (diff)";
  }
  return "?";
}

float LoraEntry::factor() const {
  if (scale) return *scale;
  std::optional<int64_t> dim;
  if (kind == LoraKind::LoRA) dim = down.dim(0);
  if (kind == LoraKind::LoHa) dim = part(*this, "hada_w1_b").dim(0);
  if (kind == LoraKind::LoKr) {
    if (has(*this, "lokr_w1_b")) dim = part(*this, "lokr_w1_b").dim(0);
    if (has(*this, "lokr_w2_b")) dim = part(*this, "lokr_w2_b").dim(0);
  }
  return alpha && dim ? *alpha / float(*dim) : 1.f;
}

Tensor lycoris_delta(const LoraEntry& e, const Shape& weight_shape, const std::string& where) {
  Tensor d;
  switch (e.kind) {
    case LoraKind::LoRA:
      if (has(e, "lora_mid.weight")) {
        Tensor up = as_matrix(e.up), down = as_matrix(e.down);
        d = tucker(part(e, "lora_mid.weight"), ops::permute(up, {1, 0}), down);
      } else {
        d = lora_delta_weight(e.down, e.up);
      }
      break;
    case LoraKind::LoHa:
      if (has(e, "hada_t1")) {
        d = ops::mul(tucker(part(e, "hada_t1"), part(e, "hada_w1_a"), as_matrix(part(e, "hada_w1_b"))),
                     tucker(part(e, "hada_t2"), part(e, "hada_w2_a"), as_matrix(part(e, "hada_w2_b"))));
      } else {
        d = ops::mul(ops::matmul(part(e, "hada_w1_a"), as_matrix(part(e, "hada_w1_b"))),
                     ops::matmul(part(e, "hada_w2_a"), as_matrix(part(e, "hada_w2_b"))));
      }
      break;
    case LoraKind::LoKr: {
      Tensor w1 = has(e, "lokr_w1") ? part(e, "lokr_w1") : ops::matmul(part(e, "lokr_w1_a"), part(e, "lokr_w1_b"));
      Tensor w2;
      if (has(e, "lokr_w2"))
        w2 = as_matrix(part(e, "lokr_w2"));
      else if (has(e, "lokr_t2"))
        w2 = as_matrix(tucker(part(e, "lokr_t2"), part(e, "lokr_w2_a"), part(e, "lokr_w2_b")));
      else
        w2 = ops::matmul(part(e, "lokr_w2_a"), as_matrix(part(e, "lokr_w2_b")));
      d = kron(w1, w2);
      break;
    }
    case LoraKind::Full:
      d = part(e, "diff");
      break;
  }
  PIG_CHECK(d.numel() == shape_numel(weight_shape) && d.dim(0) == weight_shape[0], where, ": its ",
            lora_kind_name(e.kind), " ΔW has shape ", shape_str(d.shape()), " but the model's weight is ",
            shape_str(weight_shape), " (made for another model family?)");
  return d.reshape(weight_shape);
}

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
      LoraEntry e;
      e.component = info->component;
      e.key = info->key;
      e.flattened = info->flattened;
      f.entries.push_back(std::move(e));
    }
    LoraEntry& e = f.entries[it->second];
    if (info->part == "alpha" || info->part == "scale") {
      PIG_CHECK(t.numel() == 1, source, ": '", name, "' should be a scalar, has shape ", shape_str(t.shape()));
      (info->part == "alpha" ? e.alpha : e.scale) = t.as_f32().f32()[0];
    } else if (info->part == "lora_down.weight") {
      e.down = t.as_f32();
    } else if (info->part == "lora_up.weight") {
      e.up = t.as_f32();
    } else {
      e.parts[info->part] = t.as_f32();
    }
  }
  for (auto& e : f.entries) check_entry(e, source);
  PIG_CHECK(!f.entries.empty(), source, ": no LoRA weights found (expected kohya lora_unet_/lora_te_ keys, diffusers "
            "unet./text_encoder. keys with lora.down/lora.up, or PEFT lora_A/lora_B)");
  return f;
}

LoraFile LoraFile::load(const std::string& path) {
  Checkpoint c = load_checkpoint(path);
  return from_tensors(c.tensors, path);
}

std::map<std::string, std::string> unet_original_module_names(const nlohmann::json& unet_config) {
  std::map<std::string, std::string> out;
  const std::string prefix = file_prefix::kUNet;
  for (const LayoutEntry& e : unet_layout(unet_config))
    if (ends_with(e.name, ".weight") && ends_with(e.file_key, ".weight") && e.file_key.rfind(prefix, 0) == 0)
      out[e.file_key.substr(prefix.size(), e.file_key.size() - prefix.size() - 7)] = e.name.substr(0, e.name.size() - 7);
  return out;
}

ResolvedLora resolve_lora(const LoraFile& file, const std::map<std::string, const TensorMap*>& components,
                          const ModuleAliases& aliases) {
  ResolvedLora r;
  r.path = file.path;
  // Flattened name → module name, per component, from the model's own weights (and the aliases, which never
  // replace a name of the model's own).
  std::map<std::string, std::map<std::string, std::string>> flat;
  for (const auto& [comp, map] : components)
    for (const auto& [name, t] : *map)
      if (ends_with(name, ".weight")) {
        std::string module = name.substr(0, name.size() - 7);
        flat[comp][flatten(module)] = module;
      }
  for (const auto& [comp, names] : aliases)
    for (const auto& [alias, module] : names)
      if (components.count(comp) && components.at(comp)->count(module + ".weight")) flat[comp].emplace(flatten(alias), module);
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
    const std::string where = file.path + ": " + lora_kind_name(e.kind) + " for '" + module + "' (" + e.component + ")";
    LoraModule m{e.component, module, {}, {}, {}, {}, e.factor()};
    if (e.low_rank()) {
      bool fits = w.ndim() == e.down.ndim() && e.up.dim(0) == w.dim(0) && e.down.dim(1) == w.dim(1);
      if (fits && w.ndim() == 4) fits = e.down.dim(2) == w.dim(2) && e.down.dim(3) == w.dim(3);
      PIG_CHECK(fits, where, " has down ", shape_str(e.down.shape()), " / up ", shape_str(e.up.shape()),
                " but the model's weight is ", shape_str(w.shape()), " (a LoRA made for another model family?)");
      m.down = e.down;
      m.up = e.up;
    } else {
      m.delta = lycoris_delta(e, w.shape(), where);
    }
    if (e.parts.count("dora_scale")) {
      // A1111's apply_weight_decompose on the scaled ΔW: W' = M·m/‖M‖ with M = W + sΔW and the norm taken per
      // input channel (over outputs and kernel taps); the delta is W' − W and takes only the user's weight.
      const Tensor& m_scale = e.parts.at("dora_scale");
      int64_t out = w.dim(0), in = w.dim(1), taps = w.numel() / (out * in);
      PIG_CHECK(m_scale.numel() == in && (m_scale.ndim() == 1 || m_scale.dim(0) == 1), where, ": dora_scale has shape ",
                shape_str(m_scale.shape()), ", expected one magnitude per input channel ([1, ", in,
                w.ndim() == 4 ? ", 1, 1]" : "]", "); per-output DoRA magnitudes are not supported");
      Tensor base = w.as_f32();
      Tensor merged = ops::add_scaled(base, m.delta, m.factor);
      std::vector<double> norm(size_t(in), 0.0);
      for (int64_t o = 0; o < out; ++o)
        for (int64_t i = 0; i < in; ++i)
          for (int64_t t = 0; t < taps; ++t) {
            double v = merged.f32()[(o * in + i) * taps + t];
            norm[size_t(i)] += v * v;
          }
      Tensor delta = Tensor::empty(w.shape());
      for (int64_t o = 0; o < out; ++o)
        for (int64_t i = 0; i < in; ++i) {
          float g = float(m_scale.f32()[i] / std::sqrt(norm[size_t(i)]));
          for (int64_t t = 0; t < taps; ++t) {
            int64_t k = (o * in + i) * taps + t;
            delta.f32()[k] = merged.f32()[k] * g - base.f32()[k];
          }
        }
      m.delta = delta;
      m.factor = 1;
    }
    if (e.parts.count("diff_b")) {
      const Tensor& db = e.parts.at("diff_b");
      auto bit = cit->second->find(module + ".bias");
      PIG_CHECK(bit != cit->second->end() && bit->second.numel() == db.numel(), where, ": diff_b of shape ",
                shape_str(db.shape()), " does not fit the layer's bias (",
                bit == cit->second->end() ? std::string("none") : shape_str(bit->second.shape()), ")");
      m.bias_delta = db;
    }
    r.modules.push_back(std::move(m));
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
      auto patch = [&](const std::string& key, const Tensor& delta, float s) {
        auto it = patched.find(key);
        if (it == patched.end()) it = patched.emplace(key, base.at(key).to(DType::F32)).first;
        ops::add_inplace(it->second, ops::scale(delta, s));
      };
      patch(m.module + ".weight", m.delta.defined() ? m.delta : lora_delta_weight(m.down, m.up), u.weight * m.factor);
      if (m.bias_delta.defined()) patch(m.module + ".bias", m.bias_delta, u.weight);
    }
  }
  for (auto& [key, t] : patched) (*out)[key] = t;
  return out;
}

LoraRuntime::LoraRuntime(const std::string& component, const std::vector<LoraUse>& uses) {
  for (const LoraUse& u : uses) {
    if (!u.lora || u.weight == 0) continue;
    for (const LoraModule& m : u.lora->modules)
      if (m.component == component)
        layers_[m.module].push_back({m.down, m.up, m.delta, m.bias_delta, u.weight * m.factor, u.weight});
  }
}

void LoraRuntime::apply(const std::string& name, const Tensor& x, Tensor& y) const {
  auto it = layers_.find(name);
  if (it == layers_.end()) return;
  for (const Term& t : it->second) {
    if (t.bias_delta.defined()) {
      // weight·diff_b per output channel (dimension 1 of a conv output, the last of a linear one).
      int64_t c = t.bias_delta.numel(), inner = y.ndim() == 4 ? y.dim(2) * y.dim(3) : 1;
      Tensor out = y.clone();
      for (int64_t i = 0; i < out.numel(); ++i) out.f32()[i] += t.bias_scale * t.bias_delta.f32()[(i / inner) % c];
      y = out;
    }
    Tensor d;
    if (t.delta.defined()) {
      if (t.delta.ndim() == 2) {
        d = ops::linear(x, t.delta);
      } else {
        int k = int(t.delta.dim(2));
        d = ops::conv2d(x, t.delta, nullptr, ops::Conv2dParams::same((k - 1) / 2, int(x.dim(2) / y.dim(2))));
      }
    } else if (t.down.ndim() == 2) {
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
