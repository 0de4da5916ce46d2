#include "training/lora.h"

#include <cmath>
#include <optional>
#include <random>

#include "io/file_hash.h"
#include "io/safetensors.h"
#include "ops/autograd.h"
#include "models/lora.h"
#include "ops/ops.h"
#include "pipelines/stable_diffusion.h"
#include "training/caption_encoder.h"
#include "training/trainer.h"

namespace pigment::training {

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
// Uniform in [-bound, bound) from 24 bits of mt19937 (the same numbers on every platform).
Tensor uniform(Shape shape, float bound, std::mt19937& g) {
  Tensor t = Tensor::empty(std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = bound * (2.f * float(g() >> 8) * (1.f / 16777216.f) - 1.f);
  return t;
}
}  // namespace

std::string LoraNetwork::kohya_name(const std::string& module, const std::string& prefix) {
  std::string n = prefix + module;
  for (char& c : n)
    if (c == '.') c = '_';
  return n;
}

LoraNetwork LoraNetwork::create(const TensorMap& model, const LoraOptions& options, uint64_t seed,
                                const std::string& prefix) {
  PIG_CHECK(options.rank > 0, "LoRA: rank (--network-dim) must be positive, got ", options.rank);
  PIG_CHECK(options.dropout >= 0 && options.dropout < 1, "LoRA: --network-dropout must be in [0, 1), got ",
            options.dropout);
  PIG_CHECK(options.conv_rank >= 0, "LoRA: --conv-dim must not be negative, got ", options.conv_rank);
  std::mt19937 g(uint32_t(seed ^ (seed >> 32)));
  std::vector<Module> modules;
  for (const auto& [key, w] : model) {
    if (!ends_with(key, ".weight") || (w.ndim() != 2 && w.ndim() != 4)) continue;
    const std::string module = key.substr(0, key.size() - 7);
    bool targeted = false;
    for (const auto& t : options.targets) targeted = targeted || ends_with(module, "." + t) || module == t;
    const bool pointwise = w.ndim() == 2 || (w.dim(2) == 1 && w.dim(3) == 1);
    const bool conv3 = w.ndim() == 4 && w.dim(2) == 3 && w.dim(3) == 3 &&
                       (module.find("resnets.") != std::string::npos || module.find("samplers.") != std::string::npos);
    int rank = 0;
    float alpha = 0;
    if (targeted && pointwise) rank = options.rank, alpha = options.alpha;
    if (conv3 && options.conv_rank > 0) rank = options.conv_rank, alpha = options.conv_alpha;
    if (rank == 0) continue;
    const int64_t out = w.dim(0), in = w.dim(1), k = w.ndim() == 4 ? w.dim(2) : 1;
    // kaiming_uniform_(a=√5): bound = 1/√fan_in.
    const float bound = 1.f / std::sqrt(float(in * k * k));
    Module m{module, Tensor(), Tensor(), alpha / float(rank), alpha};
    if (w.ndim() == 2) {
      m.down = uniform({rank, in}, bound, g);
      m.up = Tensor::zeros({out, rank});
    } else {
      m.down = uniform({rank, in, k, k}, bound, g);
      m.up = Tensor::zeros({out, rank, 1, 1});
    }
    modules.push_back(std::move(m));
  }
  PIG_CHECK(!modules.empty(), "LoRA: no layer of the model matches the target modules");
  return LoraNetwork(std::move(modules), options, prefix);
}

LoraNetwork LoraNetwork::create_text_encoder(const TensorMap& model, const LoraOptions& options, uint64_t seed,
                                             const std::string& prefix) {
  LoraOptions o = options;
  o.targets = options.text_encoder_targets;
  o.conv_rank = 0;
  return create(model, o, seed, prefix);
}

LoraNetwork::LoraNetwork(std::vector<Module> modules, const LoraOptions& options, std::string prefix)
    : modules_(std::move(modules)), options_(options), prefix_(std::move(prefix)) {
  for (size_t i = 0; i < modules_.size(); ++i) {
    const Module& m = modules_[i];
    PIG_CHECK(m.down.ndim() == m.up.ndim() && (m.down.ndim() == 2 || m.down.ndim() == 4) &&
                  m.up.dim(1) == m.down.dim(0),
              "LoRA module ", m.name,
              ": down ", shape_str(m.down.shape()), " and up ", shape_str(m.up.shape()), " do not chain");
    PIG_CHECK(m.down.dtype() == DType::F32 && m.up.dtype() == DType::F32, "LoRA module ", m.name,
              ": trained weights must be float32");
    by_name_[m.name] = i;
  }
}

UNetHooks LoraNetwork::hooks() const {
  UNetHooks h;
  h.layer_delta = [this](const std::string& name, const Tensor& x, Tensor& y) {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) return;
    const Module& m = modules_[it->second];
    // The trained matrices change every step and are small: they go to the kernels as views without an owner,
    // which the WeightCache prepares per call and never keeps (kept, each step's new values would have to be
    // forgotten, and their re-insertion evicted the frozen model's large prepared weights every step).
    const Tensor down = Tensor::view(nullptr, m.down.raw(), m.down.shape(), DType::F32);
    const Tensor up = Tensor::view(nullptr, m.up.raw(), m.up.shape(), DType::F32);
    // Network dropout on down(x), only while training.
    const float p = options_.dropout;
    auto drop = [&](Tensor h) {
      if (p <= 0 || !ops::autograd::needs_grad(h)) return h;
      std::mt19937_64 g(dropout_seed_ ^ (0x9E3779B97F4A7C15ull * (it->second + 1)));
      Tensor mask = Tensor::empty(h.shape());
      const float keep = 1.f / (1.f - p);
      for (int64_t i = 0; i < mask.numel(); ++i) mask.f32()[i] = float(g() >> 40) * (1.f / 16777216.f) < p ? 0.f : keep;
      return ops::mul(h, mask);
    };
    Tensor delta;
    if (m.down.ndim() == 2) {
      delta = ops::linear(drop(ops::linear(x, down)), up);
    } else {
      // The layer's stride and "same" padding, read from the shapes (the UNet's convolutions pad (k-1)/2).
      PIG_CHECK(x.ndim() == 4 && y.ndim() == 4, "LoRA module ", m.name, ": expected NCHW activations");
      const int64_t k = m.down.dim(2);
      const int stride = int(x.dim(2) / y.dim(2));
      delta = ops::conv2d(drop(ops::conv2d(x, down, nullptr, ops::Conv2dParams::same(int((k - 1) / 2), stride))), up,
                          nullptr, ops::Conv2dParams{});
    }
    ops::add_inplace(y, m.scale == 1.f ? delta : ops::scale(delta, m.scale));
  };
  return h;
}

std::vector<std::pair<std::string, Tensor>> LoraNetwork::parameters() const {
  std::vector<std::pair<std::string, Tensor>> p;
  for (const auto& m : modules_) {
    const std::string k = kohya_name(m.name, prefix_);
    p.emplace_back(k + ".lora_down.weight", m.down);
    p.emplace_back(k + ".lora_up.weight", m.up);
  }
  return p;
}

TensorMap LoraNetwork::kohya_tensors() const {
  TensorMap t;
  for (const auto& m : modules_) {
    const std::string k = kohya_name(m.name, prefix_);
    t[k + ".lora_down.weight"] = m.down;
    t[k + ".lora_up.weight"] = m.up;
    t[k + ".alpha"] = Tensor::full({}, m.alpha);
  }
  return t;
}

}  // namespace pigment::training

// ---- the training method ----

namespace pigment::training {

namespace {

// The kohya prefixes of the text encoders' networks.
std::vector<std::string> text_encoder_prefixes(Family family) {
  if (family == Family::SDXL) return {"lora_te1_", "lora_te2_"};
  return {"lora_te_"};
}

class LoraMethod : public Method {
 public:
  LoraMethod(const StableDiffusion& model, const TrainOptions& o) : text_(model) {
    PIG_CHECK(o.lora.train_unet || o.train_text_encoder,
              "LoRA: nothing to train (--network-train-text-encoder-only trains the text encoder; the UNet trains "
              "unless it is given)");
    if (o.lora.train_unet) unet_.emplace(LoraNetwork::create(*model.base_component("unet").tensors, o.lora, o.seed));
    if (o.train_text_encoder) {
      const auto names = CaptionEncoder::component_names(model.family());
      const auto prefixes = text_encoder_prefixes(model.family());
      for (size_t i = 0; i < names.size(); ++i)
        te_.push_back(LoraNetwork::create_text_encoder(*model.base_component(names[i]).tensors, o.lora,
                                                       o.seed ^ (0x7465ull << (8 * i)), prefixes[i]));
    }
    // kohya names SDXL's UNet modules by the SGM checkpoint's keys (lora_unet_input_blocks_4_1_..._to_q), which
    // A1111, ComfyUI and sd-scripts expect; SD1/SD2 files use the diffusers names.
    if (model.family() == Family::SDXL)
      for (const auto& [original, module] : unet_original_module_names(model.base_component("unet").config))
        file_names_[LoraNetwork::kohya_name(module)] = LoraNetwork::kohya_name(original);
  }

  std::vector<Param> params() override {
    std::vector<Param> p;
    for (const LoraNetwork* net : networks())
      for (const auto& [name, t] : net->parameters()) p.push_back({name, t, Tensor()});
    return p;
  }
  UNetHooks unet_hooks() const override { return unet_ ? unet_->hooks() : UNetHooks{}; }
  void begin_micro_batch(uint64_t seed) override {
    if (unet_) unet_->set_dropout_seed(seed);
    for (size_t i = 0; i < te_.size(); ++i) te_[i].set_dropout_seed(seed ^ (0x9E3779B97F4A7C15ull * (i + 1)));
  }

  // With text-encoder networks the captions go through the encoders with their deltas (recorded); without, the
  // trainer's frozen encoding.
  PromptEmbeds encode_captions(const std::vector<std::string>& captions) const override {
    if (te_.empty()) return {};
    std::vector<UNetHooks> hooks;
    for (const auto& net : te_) hooks.push_back(net.hooks());
    CaptionEncoder::Inputs in;
    for (size_t i = 0; i < hooks.size(); ++i) in.hooks[i] = &hooks[i];
    return text_.encode(captions, in);
  }

  // The networks as a LoRA file merged into copies of the model's weights (the loaded ones, which training reads,
  // stay as they are).
  bool apply_to(StableDiffusion& model) const override {
    TensorMap t;
    for (const LoraNetwork* net : networks())
      for (const auto& [k, v] : net->kohya_tensors()) t[k] = v.clone();
    model.set_loras({LoraChoice(LoraFile::from_tensors(t, "training"), 1.f)});
    return true;
  }
  void remove_from(StableDiffusion& model) const override { model.set_loras({}); }

  void save(const std::string& path, const std::map<std::string, std::string>& metadata) const override {
    NamedTensors t;
    for (const LoraNetwork* net : networks())
      for (const auto& [k, v] : net->kohya_tensors()) {
        const size_t dot = k.find('.');
        auto it = file_names_.find(k.substr(0, dot));
        t.emplace_back(it == file_names_.end() ? k : it->second + k.substr(dot), v);
      }
    const LoraOptions& lo = networks().front()->options();
    std::map<std::string, std::string> meta = metadata;
    meta["ss_network_module"] = "networks.lora";
    meta["ss_network_dim"] = std::to_string(lo.rank);
    meta["ss_network_alpha"] = std::to_string(lo.alpha);
    meta["ss_network_dropout"] = std::to_string(lo.dropout);
    if (lo.conv_rank > 0 && unet_) {
      meta["ss_network_args"] = "{\"conv_dim\": \"" + std::to_string(lo.conv_rank) + "\", \"conv_alpha\": \"" +
                                std::to_string(lo.conv_alpha) + "\"}";
    }
    // kohya's sshs_model_hash is the SHA-256 of the data after the header, which metadata does not change: write,
    // hash, and write again with the hash.
    write_safetensors(path, t, meta);
    meta["sshs_model_hash"] = addnet_hash(path);
    write_safetensors(path, t, meta);
  }

 private:
  std::vector<const LoraNetwork*> networks() const {
    std::vector<const LoraNetwork*> n;
    if (unet_) n.push_back(&*unet_);
    for (const auto& net : te_) n.push_back(&net);
    return n;
  }

  CaptionEncoder text_;
  std::optional<LoraNetwork> unet_;
  std::vector<LoraNetwork> te_;  // per text encoder (filled in the constructor, never moved after)
  std::map<std::string, std::string> file_names_;  // SDXL: kohya module name (diffusers) → the SGM one
};
}  // namespace

std::unique_ptr<Method> make_lora_method(const StableDiffusion& model, const TrainOptions& o) {
  return std::make_unique<LoraMethod>(model, o);
}

}  // namespace pigment::training
