#include "training/hypernetwork.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <algorithm>
#include <set>

#include "core/number_list.h"
#include "io/file_hash.h"
#include "io/torch_save.h"
#include "models/hypernetwork.h"
#include "pipelines/stable_diffusion.h"
#include "sampling/rng.h"
#include "training/trainer.h"

namespace pigment::training {

namespace {

// The widths of the contexts the UNet's attention layers see: the input width of every to_k (self-attention:
// the block's channels; cross-attention: the text encoder's width).
std::vector<int64_t> attention_widths(const TensorMap& unet) {
  std::set<int64_t> widths;
  const std::string suffix = ".to_k.weight";
  for (const auto& [name, t] : unet)
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
        t.ndim() == 2)
      widths.insert(t.dim(1));
  return {widths.begin(), widths.end()};
}

std::string join(const std::vector<int64_t>& v) {
  std::string s;
  for (int64_t x : v) s += (s.empty() ? "" : ", ") + std::to_string(x);
  return s;
}

// A1111's weight initialisation (torch.nn.init, fan_in = input width): Normal N(0, 0.01) with zero biases (also
// every LayerNorm, whatever the choice), Xavier uniform/normal (gain 1), Kaiming uniform/normal (fan_in, gain √2:
// torch's "relu" and its "leaky_relu" with the default slope 0 give the same). Numbers from the PyTorch-compatible
// CPU generator seeded with --seed, in module order.
void initialise(Hypernetwork& net, const std::string& init, uint64_t seed) {
  auto gen = make_generator("cpu", seed);
  const std::map<std::string, Tensor> params = net.parameters();  // shared memory: filled in place
  for (const auto& [name, t] : params) {
    const bool bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    Tensor w = t;
    float* p = w.f32();
    if (bias) {
      std::fill(p, p + w.numel(), 0.f);
      continue;
    }
    if (w.ndim() == 1 || init == "Normal") {  // LayerNorm weights, or Normal
      const Tensor z = gen->randn(w.shape());
      for (int64_t i = 0; i < w.numel(); ++i) p[i] = z.f32()[i] * 0.01f;
      continue;
    }
    const double fan_out = double(w.dim(0)), fan_in = double(w.dim(1));
    if (init == "XavierUniform" || init == "KaimingUniform") {
      const double bound = init == "XavierUniform" ? std::sqrt(6.0 / (fan_in + fan_out)) : std::sqrt(2.0) * std::sqrt(3.0 / fan_in);
      const Tensor u = gen->rand(w.shape());
      for (int64_t i = 0; i < w.numel(); ++i) p[i] = float((2.0 * u.f32()[i] - 1.0) * bound);
    } else {
      const double std = init == "XavierNormal" ? std::sqrt(2.0 / (fan_in + fan_out)) : std::sqrt(2.0 / fan_in);
      const Tensor z = gen->randn(w.shape());
      for (int64_t i = 0; i < w.numel(); ++i) p[i] = float(z.f32()[i] * std);
    }
  }
}

class HypernetworkMethod : public Method {
 public:
  HypernetworkMethod(const StableDiffusion& model, const TrainOptions& o) {
    const HypernetworkOptions& h = o.hypernetwork;
    const std::string& init = h.weight_init;
    PIG_CHECK(init == "Normal" || init == "XavierUniform" || init == "XavierNormal" || init == "KaimingUniform" ||
                  init == "KaimingNormal",
              "--weight-init: unknown initialisation '", init,
              "' (Normal, XavierUniform, XavierNormal, KaimingUniform, KaimingNormal)");
    HypernetworkStructure st;
    st.layer_structure = parse_number_list(h.layer_structure, "--layer-structure");
    st.activation = h.activation;
    bool known = false;
    std::string names;
    for (const auto& a : hypernetwork_activations()) {
      known = known || a == h.activation;
      names += (names.empty() ? "" : ", ") + a;
    }
    PIG_CHECK(known, "--activation-func: '", h.activation, "' is not supported (", names, ")");
    st.layer_norm = h.layer_norm;
    st.activate_output = h.activate_output;
    st.use_dropout = h.use_dropout;
    st.last_layer_dropout = h.last_layer_dropout;
    st.weight_initialization = init;
    if (!h.dropout_structure.empty()) {
      st.dropout_structure = parse_number_list(h.dropout_structure, "--dropout-structure");
      PIG_CHECK(st.dropout_structure.size() == st.layer_structure.size(), "--dropout-structure has ",
                st.dropout_structure.size(), " entries, --layer-structure ", st.layer_structure.size());
      PIG_CHECK(st.dropout_structure.front() == 0 && st.dropout_structure.back() == 0,
                "--dropout-structure must start and end with 0 (A1111's rule), got '", h.dropout_structure, "'");
      st.use_dropout = true;
    }
    const std::vector<int64_t> available = attention_widths(*model.base_component("unet").tensors);
    std::vector<int64_t> sizes = available;
    if (!h.sizes.empty()) {
      sizes.clear();
      for (double d : parse_number_list(h.sizes, "--hypernetwork-sizes")) {
        const int64_t w = int64_t(d);
        PIG_CHECK(double(w) == d && std::count(available.begin(), available.end(), w) == 1,
                  "--hypernetwork-sizes: ", d, " is not a context width of this model's attention layers (",
                  join(available), ")");
        PIG_CHECK(std::count(sizes.begin(), sizes.end(), w) == 0, "--hypernetwork-sizes: ", w, " given twice");
        sizes.push_back(w);
      }
    }
    const std::string name = std::filesystem::path(o.output).stem().string();
    net_ = std::make_shared<Hypernetwork>(Hypernetwork::create(name, sizes, st));
    initialise(*net_, init, o.seed);
    // A1111 records the base model's short hash and name.
    if (std::filesystem::is_regular_file(o.model.model)) {
      sd_checkpoint_ = model_short_hash(o.model.model);
      sd_checkpoint_name_ = std::filesystem::path(o.model.model).stem().string();
    } else {
      sd_checkpoint_name_ = std::filesystem::path(o.model.model).filename().string();
    }
  }

  std::vector<Param> params() override {
    std::vector<Param> p;
    for (const auto& [name, t] : ordered()) p.push_back({name, t, Tensor()});
    return p;
  }
  UNetHooks unet_hooks() const override {
    UNetHooks h;
    h.attention_context = hypernetwork_hook({{net_, 1.f}});  // A1111 trains at multiplier 1
    return h;
  }
  void begin_micro_batch(uint64_t seed) override { net_->set_dropout_seed(seed | 1); }
  bool apply_to(StableDiffusion&) const override { return true; }  // per request: prepare_sample
  void prepare_sample(GenerateRequest& r, size_t) const override {
    net_->set_dropout_seed(0);
    r.hypernetworks.push_back({net_, 1.f});
  }

  void save(const std::string& path, const std::map<std::string, std::string>& metadata) const override {
    Hypernetwork::SaveInfo info;
    auto it = metadata.find("ss_max_train_steps");
    info.step = it == metadata.end() ? 0 : std::stoll(it->second);
    info.sd_checkpoint = sd_checkpoint_;
    info.sd_checkpoint_name = sd_checkpoint_name_;
    net_->save(path, info);
  }

  // A1111's <file>.optim: {'optimizer_name': 'AdamW' (or 'SGD'), 'hash': the .pt's short hash,
  // 'optimizer_state_dict': torch's state_dict() of the optimizer over Hypernetwork.weights() order}.
  void save_extras(const std::string& path, const Optimizer& opt) const override {
    std::vector<std::string> names;
    for (const auto& [name, t] : ordered()) names.push_back(name);
    pickle::Object root = pickle::Object::dict();
    root.set("optimizer_name", pickle::Object::str(opt.torch_class()));
    root.set("hash", pickle::Object::str(sha256_file(path).substr(0, 10)));
    root.set("optimizer_state_dict", opt.torch_state_dict(names));
    torch_save(path + ".optim", root, std::filesystem::path(path).filename().string() + ".optim");
  }

 private:
  // The parameters in A1111's Hypernetwork.weights() order: widths as the file lists them, key module then value
  // module, each in nn.Sequential order.
  std::vector<std::pair<std::string, Tensor>> ordered() const {
    std::vector<std::pair<std::string, Tensor>> out;
    for (int64_t w : net_->sizes()) {
      const auto params = net_->parameters();
      for (const char* kv : {".k.", ".v."}) {
        // state-dict order of the module: linear.<index> ascending
        std::vector<std::pair<int, std::string>> keys;
        for (const auto& [name, t] : params) {
          const std::string prefix = std::to_string(w) + kv;
          if (name.rfind(prefix, 0) != 0) continue;
          const std::string rest = name.substr(prefix.size());  // linear.N.weight
          keys.emplace_back(std::stoi(rest.substr(7)) * 2 + (rest.find(".bias") != std::string::npos), name);
        }
        std::sort(keys.begin(), keys.end());
        for (const auto& [order, name] : keys) out.emplace_back(name, params.at(name));
      }
    }
    return out;
  }

  std::shared_ptr<Hypernetwork> net_;
  std::string sd_checkpoint_, sd_checkpoint_name_;
};

}  // namespace

std::unique_ptr<Method> make_hypernetwork_method(const StableDiffusion& model, const TrainOptions& o) {
  return std::make_unique<HypernetworkMethod>(model, o);
}

}  // namespace pigment::training
