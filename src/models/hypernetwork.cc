#include "models/hypernetwork.h"

#include <cmath>
#include <filesystem>

#include "io/pytorch_zip.h"
#include "ops/autograd.h"
#include "ops/ops.h"

namespace pigment {

namespace {

using pickle::Kind;
using pickle::Value;

// Activations A1111 offers: those of ops.h, and the rest applied element-wise (those have no backward yet: a
// training tape refuses them instead of losing the gradient).
Tensor activate(const Tensor& x, const std::string& name) {
  if (name == "swish" || name == "silu") return ops::silu(x);
  if (name == "gelu") return ops::gelu(x);
  if (name == "relu") return ops::relu(x);
  PIG_CHECK(!ops::autograd::needs_grad(x), "hypernetwork: activation '", name,
            "' has no backward yet (training supports relu, swish/silu, gelu and linear)");
  Tensor y = x.clone();
  float* p = y.f32();
  for (int64_t i = 0; i < y.numel(); ++i) {
    float v = p[i];
    if (name == "leakyrelu") p[i] = v > 0 ? v : 0.01f * v;
    else if (name == "elu") p[i] = v > 0 ? v : std::expm1(v);
    else if (name == "tanh") p[i] = std::tanh(v);
    else if (name == "sigmoid") p[i] = 1.f / (1.f + std::exp(-v));
    else if (name == "softsign") p[i] = v / (1.f + std::fabs(v));
    else if (name == "mish") p[i] = v * std::tanh(std::log1p(std::exp(v)));
  }
  return y;
}

bool known_activation(const std::string& a) {
  for (const char* k : {"relu", "leakyrelu", "elu", "swish", "silu", "tanh", "sigmoid", "gelu", "softsign", "mish"})
    if (a == k) return true;
  return false;
}

}  // namespace

Tensor HypernetworkModule::forward(const Tensor& x, float multiplier) const {
  Tensor h = x;
  for (const Step& s : steps_) {
    if (s.kind == Step::Linear) h = ops::linear(h, s.weight, &s.bias);
    else if (s.kind == Step::LayerNorm) h = ops::layer_norm(h, s.weight, s.bias, 1e-5f);
    else h = activate(h, activation_);
  }
  return ops::add_scaled(x, h, multiplier);
}

std::map<std::string, Tensor> HypernetworkModule::parameters() const {
  std::map<std::string, Tensor> out;
  for (const Step& s : steps_) {
    if (s.kind == Step::Activation) continue;
    out["linear." + std::to_string(s.index) + ".weight"] = s.weight;
    out["linear." + std::to_string(s.index) + ".bias"] = s.bias;
  }
  return out;
}

int64_t layer_width(int64_t dim, double multiplier) { return int64_t(std::trunc(double(dim) * multiplier)); }

Hypernetwork Hypernetwork::load(const std::string& path, const std::string& name) {
  PIG_CHECK(std::filesystem::exists(path), path, ": hypernetwork file not found");
  PytorchZip zip = PytorchZip::open(path);
  const Value& root = zip.root();
  PIG_CHECK(root.kind == Kind::Dict, path, ": not an A1111 hypernetwork (the pickle is not a dict)");
  Hypernetwork hn;
  hn.name_ = name.empty() ? std::filesystem::path(path).stem().string() : name;

  // Fields with A1111's defaults for files that predate them.
  hn.layer_structure_ = {1, 2, 1};
  if (const Value* v = root.get("layer_structure"); v && v->kind != Kind::None) {
    PIG_CHECK(v->kind == Kind::List || v->kind == Kind::Tuple, path, ": layer_structure is not a list");
    hn.layer_structure_.clear();
    for (const Value* i : v->items) {
      PIG_CHECK(i->kind == Kind::Float || i->kind == Kind::Int, path, ": layer_structure holds a ", i->repr(),
                ", expected numbers");
      hn.layer_structure_.push_back(i->kind == Kind::Float ? i->f : double(i->i));
    }
  }
  const auto& ls = hn.layer_structure_;
  PIG_CHECK(ls.size() >= 2 && ls.front() == 1 && ls.back() == 1, path, ": layer_structure must start and end with 1");
  auto flag = [&](const char* key, bool fallback) {
    const Value* v = root.get(key);
    return v && v->kind == Kind::Bool ? v->b : v && v->kind == Kind::Int ? v->i != 0 : fallback;
  };
  std::string act = "linear";
  if (const Value* v = root.get("activation_func"); v && v->kind == Kind::Str) act = v->s;
  PIG_CHECK(act == "linear" || known_activation(act), path, ": unsupported activation_func '", act, "'");
  hn.activation_ = act;
  bool layer_norm = flag("is_layer_norm", false);
  bool activate_output = flag("activate_output", true);
  bool last_layer_dropout = flag("last_layer_dropout", false);
  std::vector<double> dropout;
  if (const Value* v = root.get("dropout_structure"); v && (v->kind == Kind::List || v->kind == Kind::Tuple)) {
    for (const Value* d : v->items) dropout.push_back(d->kind == Kind::Float ? d->f : double(d->i));
  } else if (flag("use_dropout", false)) {  // A1111's parse_dropout_structure
    dropout.push_back(0);
    for (size_t i = 3; i < ls.size(); ++i) dropout.push_back(0.3);
    dropout.push_back(last_layer_dropout ? 0.3 : 0);
    dropout.push_back(0);
  }
  dropout.resize(ls.size(), 0);

  for (const auto& [key, value] : root.entries) {
    if (key->kind != Kind::Int) continue;
    int64_t dim = key->i;
    PIG_CHECK(value->kind == Kind::List || value->kind == Kind::Tuple, path, ": entry ", dim,
              " should hold (key module, value module) state dicts");
    PIG_CHECK(value->items.size() == 2, path, ": entry ", dim, " has ", value->items.size(),
              " modules, expected 2 (key and value)");
    HypernetworkModule mods[2];
    for (int kv = 0; kv < 2; ++kv) {
      const Value* sd = value->items[size_t(kv)];
      PIG_CHECK(sd->kind == Kind::Dict, path, ": entry ", dim, " module ", kv, " is not a state dict");
      auto param = [&](int index, const char* what, const Shape& shape) {
        std::string k = "linear." + std::to_string(index) + "." + what;
        const Value* t = sd->get(k);
        PIG_CHECK(t && t->kind == Kind::Tensor, path, ": entry ", dim, (kv ? " value" : " key"), " module lacks '", k,
                  "' (layer_structure / activation / layer norm / dropout fields do not match the weights)");
        Tensor x = zip.tensor(*t).as_f32();
        PIG_CHECK(x.shape() == shape, path, ": entry ", dim, " '", k, "' has shape ", shape_str(x.shape()),
                  ", expected ", shape_str(shape));
        return x;
      };
      std::vector<HypernetworkModule::Step> steps;
      int index = 0;
      for (size_t i = 0; i + 1 < ls.size(); ++i) {
        // A1111: Linear(int(dim * layer_structure[i]), int(dim * layer_structure[i + 1])): Python's int() of the
        // float product, so "1, 1.5, 1" on 5 gives 7 (fractional multipliers are allowed).
        const int64_t in = layer_width(dim, ls[i]), out = layer_width(dim, ls[i + 1]);
        PIG_CHECK(in > 0 && out > 0, path, ": layer_structure ", ls[i], ", ", ls[i + 1], " gives an empty layer at width ",
                  dim);
        steps.push_back({HypernetworkModule::Step::Linear, param(index, "weight", {out, in}),
                         param(index, "bias", {out}), index});
        ++index;
        bool last = i + 2 >= ls.size();
        if (act != "linear" && !(last && !activate_output)) {
          steps.push_back({HypernetworkModule::Step::Activation, {}, {}, index});
          ++index;
        }
        if (layer_norm) {
          steps.push_back({HypernetworkModule::Step::LayerNorm, param(index, "weight", {out}),
                           param(index, "bias", {out}), index});
          ++index;
        }
        if (dropout[i + 1] > 0) ++index;  // inactive at inference, but it takes an index
      }
      mods[kv] = HypernetworkModule(std::move(steps), act);
    }
    hn.layers_[dim] = {mods[0], mods[1]};
  }
  PIG_CHECK(!hn.layers_.empty(), path, ": no hypernetwork modules (expected integer keys such as 768)");
  return hn;
}

std::vector<int64_t> Hypernetwork::sizes() const {
  std::vector<int64_t> s;
  for (const auto& [k, v] : layers_) s.push_back(k);
  return s;
}

void Hypernetwork::apply(Tensor& context_k, Tensor& context_v, float multiplier) const {
  auto it = layers_.find(context_k.dim(-1));
  if (it == layers_.end()) return;
  context_k = it->second.first.forward(context_k, multiplier);
  context_v = it->second.second.forward(context_v, multiplier);
}

std::map<std::string, Tensor> Hypernetwork::parameters() const {
  std::map<std::string, Tensor> out;
  for (const auto& [width, kv] : layers_) {
    for (const auto& [name, t] : kv.first.parameters()) out[std::to_string(width) + ".k." + name] = t;
    for (const auto& [name, t] : kv.second.parameters()) out[std::to_string(width) + ".v." + name] = t;
  }
  return out;
}

std::function<AttentionContext(const std::string&, const Tensor&)> hypernetwork_hook(
    std::vector<HypernetworkUse> uses) {
  return [uses = std::move(uses)](const std::string&, const Tensor& context) {
    AttentionContext kv{context, context};
    for (const auto& u : uses) u.net->apply(kv.key, kv.value, u.multiplier);
    return kv;
  };
}

}  // namespace pigment
