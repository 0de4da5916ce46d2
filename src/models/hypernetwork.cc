#include "models/hypernetwork.h"

#include <cmath>
#include <filesystem>
#include <random>

#include "io/pytorch_zip.h"
#include "io/torch_save.h"
#include "ops/autograd.h"
#include "ops/ops.h"

namespace pigment {

namespace {

using pickle::Kind;
using pickle::Value;

// A1111's activation_dict: its own names ("swish" is torch.nn.Hardswish there, not SiLU) and the lower-cased
// element-wise classes of torch.nn.modules.activation that pigment has as ops (with backward passes, so every one
// trains). Others (prelu, celu, softplus, ...) are refused by name when the file is read.
struct ActivationKind {
  const char* name;
  int op;  // 0 relu, 1 silu, 2 gelu, 3 + ops::Pointwise
};
constexpr ActivationKind kActivations[] = {
    {"relu", 0},
    {"silu", 1},
    {"gelu", 2},
    {"leakyrelu", 3 + int(ops::Pointwise::LeakyRelu)},
    {"elu", 3 + int(ops::Pointwise::Elu)},
    {"swish", 3 + int(ops::Pointwise::HardSwish)},
    {"hardswish", 3 + int(ops::Pointwise::HardSwish)},
    {"tanh", 3 + int(ops::Pointwise::Tanh)},
    {"sigmoid", 3 + int(ops::Pointwise::Sigmoid)},
    {"softsign", 3 + int(ops::Pointwise::Softsign)},
    {"mish", 3 + int(ops::Pointwise::Mish)},
};

Tensor activate(const Tensor& x, const std::string& name) {
  for (const auto& a : kActivations) {
    if (name != a.name) continue;
    if (a.op == 0) return ops::relu(x);
    if (a.op == 1) return ops::silu(x);
    if (a.op == 2) return ops::gelu(x);
    return ops::pointwise(x, ops::Pointwise(a.op - 3));
  }
  fail("hypernetwork: unknown activation '", name, "'");
}

}  // namespace

Tensor HypernetworkModule::forward(const Tensor& x, float multiplier, uint64_t dropout_seed) const {
  Tensor h = x;
  for (const Step& s : steps_) {
    if (s.kind == Step::Linear) {
      h = ops::linear(h, s.weight, &s.bias);
    } else if (s.kind == Step::LayerNorm) {
      h = ops::layer_norm(h, s.weight, s.bias, 1e-5f);
    } else if (s.kind == Step::Activation) {
      h = activate(h, activation_);
    } else if (dropout_seed != 0 && s.p > 0 && ops::autograd::needs_grad(h)) {
      std::mt19937_64 g(dropout_seed ^ (0x9E3779B97F4A7C15ull * uint64_t(s.index + 1)));
      Tensor mask = Tensor::empty(h.shape());
      const float keep = 1.f / (1.f - s.p);
      for (int64_t i = 0; i < mask.numel(); ++i)
        mask.f32()[i] = float(g() >> 40) * (1.f / 16777216.f) < s.p ? 0.f : keep;
      h = ops::mul(h, mask);
    }
  }
  return ops::add_scaled(x, h, multiplier);
}

std::vector<std::pair<std::string, Tensor>> HypernetworkModule::state_dict() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const Step& s : steps_) {
    if (s.kind != Step::Linear && s.kind != Step::LayerNorm) continue;
    out.emplace_back("linear." + std::to_string(s.index) + ".weight", s.weight);
    out.emplace_back("linear." + std::to_string(s.index) + ".bias", s.bias);
  }
  return out;
}

std::map<std::string, Tensor> HypernetworkModule::parameters() const {
  std::map<std::string, Tensor> out;
  for (auto& [k, v] : state_dict()) out[k] = v;
  return out;
}

int64_t layer_width(int64_t dim, double multiplier) { return int64_t(std::trunc(double(dim) * multiplier)); }

const std::vector<std::string>& hypernetwork_activations() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n{"linear"};
    for (const auto& a : kActivations) n.push_back(a.name);
    return n;
  }();
  return names;
}

std::vector<double> default_dropout_structure(const std::vector<double>& ls, bool use_dropout,
                                              bool last_layer_dropout) {
  if (!use_dropout || ls.size() < 2) return std::vector<double>(ls.size(), 0.0);
  std::vector<double> d{0};
  for (size_t i = 3; i < ls.size(); ++i) d.push_back(0.3);
  d.push_back(last_layer_dropout ? 0.3 : 0);
  d.push_back(0);
  d.resize(ls.size(), 0);
  return d;
}

namespace {

// The module of one width as A1111 lays out its nn.Sequential: for each pair of widths a Linear, the activation
// (unless linear, or the output layer without activate_output), a LayerNorm, a Dropout when its probability is
// positive; `param(index, "weight"|"bias", shape)` supplies each tensor. `where` prefixes errors.
template <typename Param>
HypernetworkModule build_module(int64_t dim, const HypernetworkStructure& st, const std::vector<double>& dropout,
                                const std::string& where, Param param) {
  const auto& ls = st.layer_structure;
  std::vector<HypernetworkModule::Step> steps;
  int index = 0;
  for (size_t i = 0; i + 1 < ls.size(); ++i) {
    // A1111: Linear(int(dim * layer_structure[i]), int(dim * layer_structure[i + 1])): Python's int() of the
    // float product, so "1, 1.5, 1" on 5 gives 7 (fractional multipliers are allowed).
    const int64_t in = layer_width(dim, ls[i]), out = layer_width(dim, ls[i + 1]);
    PIG_CHECK(in > 0 && out > 0, where, ": layer_structure ", ls[i], ", ", ls[i + 1], " gives an empty layer at width ",
              dim);
    steps.push_back({HypernetworkModule::Step::Linear, param(index, "weight", Shape{out, in}),
                     param(index, "bias", Shape{out}), index});
    ++index;
    const bool last = i + 2 >= ls.size();
    if (st.activation != "linear" && !(last && !st.activate_output)) {
      steps.push_back({HypernetworkModule::Step::Activation, {}, {}, index});
      ++index;
    }
    if (st.layer_norm) {
      steps.push_back({HypernetworkModule::Step::LayerNorm, param(index, "weight", Shape{out}),
                       param(index, "bias", Shape{out}), index});
      ++index;
    }
    if (dropout[i + 1] > 0) {  // inactive at inference, but it takes an index
      steps.push_back({HypernetworkModule::Step::Dropout, {}, {}, index, float(dropout[i + 1])});
      ++index;
    }
  }
  return HypernetworkModule(std::move(steps), st.activation);
}

void check_structure(const HypernetworkStructure& st, const std::vector<double>& dropout, const std::string& where) {
  const auto& ls = st.layer_structure;
  PIG_CHECK(ls.size() >= 2 && ls.front() == 1 && ls.back() == 1, where,
            ": layer_structure must start and end with 1");
  for (double m : ls) PIG_CHECK(m > 0 && std::isfinite(m), where, ": layer_structure holds ", m, ", expected positive numbers");
  bool known = false;
  for (const auto& a : hypernetwork_activations()) known = known || a == st.activation;
  PIG_CHECK(known, where, ": unsupported activation_func '", st.activation, "'");
  PIG_CHECK(dropout.size() == ls.size(), where, ": dropout_structure has ", dropout.size(), " entries, layer_structure ",
            ls.size());
  for (double d : dropout) PIG_CHECK(d >= 0 && d < 1, where, ": dropout probability ", d, " is not in [0, 1)");
}

std::vector<double> dropout_of(const HypernetworkStructure& st) {
  return st.dropout_structure.empty()
             ? default_dropout_structure(st.layer_structure, st.use_dropout, st.last_layer_dropout)
             : st.dropout_structure;
}

}  // namespace

Hypernetwork Hypernetwork::create(const std::string& name, const std::vector<int64_t>& sizes,
                                  const HypernetworkStructure& structure) {
  Hypernetwork hn;
  hn.name_ = name;
  hn.structure_ = structure;
  const std::vector<double> dropout = dropout_of(structure);
  check_structure(structure, dropout, "hypernetwork '" + name + "'");
  hn.structure_.dropout_structure = dropout;
  PIG_CHECK(!sizes.empty(), "hypernetwork '", name, "': no context widths");
  for (int64_t dim : sizes) {
    PIG_CHECK(dim > 0, "hypernetwork '", name, "': context width ", dim);
    auto zeros = [](int, const char*, const Shape& shape) { return Tensor::zeros(shape); };
    HypernetworkModule k = build_module(dim, structure, dropout, "hypernetwork '" + name + "'", zeros);
    HypernetworkModule v = build_module(dim, structure, dropout, "hypernetwork '" + name + "'", zeros);
    hn.layers_[dim] = {std::move(k), std::move(v)};
  }
  return hn;
}

Hypernetwork Hypernetwork::load(const std::string& path, const std::string& name) {
  PIG_CHECK(std::filesystem::exists(path), path, ": hypernetwork file not found");
  PytorchZip zip = PytorchZip::open(path);
  const Value& root = zip.root();
  PIG_CHECK(root.kind == Kind::Dict, path, ": not an A1111 hypernetwork (the pickle is not a dict)");
  Hypernetwork hn;
  hn.name_ = name.empty() ? std::filesystem::path(path).stem().string() : name;
  HypernetworkStructure& st = hn.structure_;

  // Fields with A1111's defaults for files that predate them.
  if (const Value* v = root.get("layer_structure"); v && v->kind != Kind::None) {
    PIG_CHECK(v->kind == Kind::List || v->kind == Kind::Tuple, path, ": layer_structure is not a list");
    st.layer_structure.clear();
    for (const Value* i : v->items) {
      PIG_CHECK(i->kind == Kind::Float || i->kind == Kind::Int, path, ": layer_structure holds a ", i->repr(),
                ", expected numbers");
      st.layer_structure.push_back(i->kind == Kind::Float ? i->f : double(i->i));
    }
  }
  auto flag = [&](const char* key, bool fallback) {
    const Value* v = root.get(key);
    return v && v->kind == Kind::Bool ? v->b : v && v->kind == Kind::Int ? v->i != 0 : fallback;
  };
  if (const Value* v = root.get("activation_func"); v && v->kind == Kind::Str) st.activation = v->s;
  if (const Value* v = root.get("weight_initialization"); v && v->kind == Kind::Str) st.weight_initialization = v->s;
  st.layer_norm = flag("is_layer_norm", false);
  st.activate_output = flag("activate_output", true);
  st.use_dropout = flag("use_dropout", false);
  st.last_layer_dropout = flag("last_layer_dropout", false);
  std::vector<double> dropout;
  if (const Value* v = root.get("dropout_structure"); v && (v->kind == Kind::List || v->kind == Kind::Tuple)) {
    for (const Value* d : v->items) dropout.push_back(d->kind == Kind::Float ? d->f : double(d->i));
  } else {
    dropout = default_dropout_structure(st.layer_structure, st.use_dropout, st.last_layer_dropout);
  }
  dropout.resize(st.layer_structure.size(), 0);
  check_structure(st, dropout, path);
  st.dropout_structure = dropout;

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
      mods[kv] = build_module(dim, st, dropout, path, param);
    }
    hn.layers_[dim] = {mods[0], mods[1]};
  }
  PIG_CHECK(!hn.layers_.empty(), path, ": no hypernetwork modules (expected integer keys such as 768)");
  return hn;
}

void Hypernetwork::save(const std::string& path, const SaveInfo& info) const {
  using pickle::Object;
  Object root = Object::dict();
  for (const auto& [width, kv] : layers_) {
    Object pair = Object::tuple();
    for (const HypernetworkModule* m : {&kv.first, &kv.second}) {
      Object sd = Object::ordered_dict();
      for (const auto& [k, t] : m->state_dict()) sd.set(k, Object::tensor(t.as_f32().clone()));
      pair.append(std::move(sd));
    }
    root.set(Object::integer(width), std::move(pair));
  }
  auto str_or_none = [](const std::string& s) { return s.empty() ? Object::none() : Object::str(s); };
  const HypernetworkStructure& st = structure_;
  root.set("step", Object::integer(info.step));
  root.set("name", Object::str(name_));
  // Whole multipliers as ints (A1111's UI parses "1, 2, 1" to floats, older files hold ints: both load).
  Object ls = Object::list();
  for (double m : st.layer_structure) ls.append(m == std::trunc(m) ? Object::integer(int64_t(m)) : Object::real(m));
  root.set("layer_structure", std::move(ls));
  root.set("activation_func", Object::str(st.activation));
  root.set("is_layer_norm", Object::boolean(st.layer_norm));
  root.set("weight_initialization", Object::str(st.weight_initialization));
  root.set("sd_checkpoint", str_or_none(info.sd_checkpoint));
  root.set("sd_checkpoint_name", str_or_none(info.sd_checkpoint_name));
  root.set("activate_output", Object::boolean(st.activate_output));
  root.set("use_dropout", Object::boolean(st.use_dropout));
  root.set("dropout_structure", Object::real_list(st.dropout_structure));
  root.set("last_layer_dropout", Object::boolean(st.last_layer_dropout));
  root.set("optional_info", Object::none());
  std::string folder = std::filesystem::path(path).stem().string();
  for (char& c : folder)
    if (c == '/' || c == '\\') c = '_';
  torch_save(path, root, folder.empty() ? "archive" : folder);
}

std::vector<int64_t> Hypernetwork::sizes() const {
  std::vector<int64_t> s;
  for (const auto& [k, v] : layers_) s.push_back(k);
  return s;
}

void Hypernetwork::apply(Tensor& context_k, Tensor& context_v, float multiplier, const std::string& layer) const {
  auto it = layers_.find(context_k.dim(-1));
  if (it == layers_.end()) return;
  uint64_t seed_k = 0, seed_v = 0;
  if (dropout_seed_ != 0) {  // one mask stream per layer, width and module (FNV-1a of the layer's name)
    uint64_t h = 1469598103934665603ull ^ dropout_seed_;
    for (unsigned char c : layer) h = (h ^ c) * 1099511628211ull;
    h = (h ^ uint64_t(it->first)) * 1099511628211ull;
    seed_k = h | 1;
    seed_v = (h * 0xBF58476D1CE4E5B9ull) | 1;
  }
  context_k = it->second.first.forward(context_k, multiplier, seed_k);
  context_v = it->second.second.forward(context_v, multiplier, seed_v);
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
  return [uses = std::move(uses)](const std::string& layer, const Tensor& context) {
    AttentionContext kv{context, context};
    for (const auto& u : uses) u.net->apply(kv.key, kv.value, u.multiplier, layer);
    return kv;
  };
}

}  // namespace pigment
