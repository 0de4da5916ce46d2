// PyTorch's optimizers, element by element. Each scalar is rounded to float32 where PyTorch hands a Python float
// to a float32 kernel, and the float operations come in PyTorch's order, so the results agree with torch's to
// about an ulp (PyTorch's AVX2 kernels fuse some multiply-adds; we do not, to stay identical on every machine).
#include "training/optimizer.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <sstream>

namespace pigment::training {
namespace {

// Element-wise loops are split in fixed chunks: every element is computed the same way on any thread count.
template <typename F>
void for_each_index(int64_t n, F&& f) {
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) f(i);
}

void check_param(const Param& p) {
  PIG_CHECK(p.value.defined() && p.value.dtype() == DType::F32, "optimizer: parameter '", p.name,
            "' must be a float32 tensor");
  PIG_CHECK(p.grad.dtype() == DType::F32 && p.grad.shape() == p.value.shape(), "optimizer: gradient of '", p.name,
            "' has shape ", shape_str(p.grad.shape()), " (", dtype_name(p.grad.dtype()), "), expected ",
            shape_str(p.value.shape()), " (F32)");
}

void check_state(const Tensor& t, const Param& p, const char* what) {
  PIG_CHECK(t.dtype() == DType::F32 && t.shape() == p.value.shape(), "optimizer state '", p.name, ".", what,
            "' has shape ", shape_str(t.shape()), ", expected ", shape_str(p.value.shape()));
}

Tensor step_tensor(int64_t step) {
  Tensor t = Tensor::empty({1}, DType::I64);
  *t.data<int64_t>() = step;
  return t;
}

int64_t step_value(const std::string& key, const Tensor& t) {
  PIG_CHECK(t.numel() == 1, "optimizer state '", key, "': expected one value, got shape ", shape_str(t.shape()));
  if (t.dtype() == DType::I64) return *t.data<int64_t>();
  return int64_t(std::llround(t.to_vector()[0]));  // PyTorch itself keeps the step as a float tensor
}

// Splits "conv_in.weight.exp_avg" into ("conv_in.weight", "exp_avg") for one of the known state names.
bool split_key(const std::string& key, std::initializer_list<const char*> names, std::string& param,
               std::string& what) {
  for (const char* n : names) {
    std::string suffix = std::string(".") + n;
    if (key.size() > suffix.size() && key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0) {
      param = key.substr(0, key.size() - suffix.size());
      what = n;
      return true;
    }
  }
  return false;
}

// torch.optim's state_dict(): {'state': STATE, 'param_groups': [GROUP with 'params' last]}.
pickle::Object torch_optimizer_state(pickle::Object state, pickle::Object group, pickle::Object params) {
  group.set("params", std::move(params));
  pickle::Object root = pickle::Object::dict();
  root.set("state", std::move(state));
  root.set("param_groups", pickle::Object::list({std::move(group)}));
  return root;
}

}  // namespace

AdamW::AdamW(AdamWOptions options) : options_(options) {
  PIG_CHECK(options.lr >= 0 && options.eps >= 0 && options.weight_decay >= 0, "AdamW: lr, eps and weight decay must be >= 0");
  PIG_CHECK(options.beta1 >= 0 && options.beta1 < 1 && options.beta2 >= 0 && options.beta2 < 1,
            "AdamW: betas must be in [0, 1), got (", options.beta1, ", ", options.beta2, ")");
}

void AdamW::step(std::span<Param> params) {
  const AdamWOptions& o = options_;
  for (Param& p : params) {
    if (!p.grad.defined()) continue;
    check_param(p);
    Slot& s = slots_[p.name];
    if (!s.exp_avg.defined()) {
      s.exp_avg = Tensor::zeros(p.value.shape());
      s.exp_avg_sq = Tensor::zeros(p.value.shape());
    }
    check_state(s.exp_avg, p, "exp_avg");
    check_state(s.exp_avg_sq, p, "exp_avg_sq");
    const int64_t k = ++s.step;
    // Python-side scalars in double, as torch/optim/adamw.py computes them; float32 inside the kernels.
    const double bias_correction1 = 1 - std::pow(o.beta1, double(k));
    const double bias_correction2 = 1 - std::pow(o.beta2, double(k));
    const double lr = o.lr * p.lr_scale;
    const float decay = float(1 - lr * o.weight_decay);
    const float b1 = float(o.beta1), one_minus_b1 = float(1 - o.beta1);
    const float b2 = float(o.beta2), one_minus_b2 = float(1 - o.beta2);
    const float bc2_sqrt = float(std::sqrt(bias_correction2));
    const float eps = float(o.eps);
    const float neg_step_size = float(-(lr / bias_correction1));
    float* w = p.value.f32();
    const float* g = p.grad.f32();
    float* m = s.exp_avg.f32();
    float* v = s.exp_avg_sq.f32();
    for_each_index(p.value.numel(), [&](int64_t i) {
      w[i] = w[i] * decay;                                   // param.mul_(1 - lr*wd)
      m[i] = m[i] * b1 + one_minus_b1 * g[i];                // exp_avg.mul_(b1).add_(g, alpha=1-b1)
      v[i] = v[i] * b2 + one_minus_b2 * g[i] * g[i];         // exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2)
      const float denom = std::sqrt(v[i]) / bc2_sqrt + eps;  // (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps)
      w[i] = w[i] + neg_step_size * m[i] / denom;            // param.addcdiv_(exp_avg, denom, value=-step_size)
    });
  }
}

StateDict Optimizer::state() const {
  StateDict out = state_view();
  for (auto& [_, t] : out) t = t.clone();
  return out;
}

StateDict AdamW::state_view() const {
  StateDict out;
  for (const auto& [name, s] : slots_) {
    out[name + ".exp_avg"] = s.exp_avg;
    out[name + ".exp_avg_sq"] = s.exp_avg_sq;
    out[name + ".step"] = step_tensor(s.step);
  }
  return out;
}

pickle::Object AdamW::torch_state_dict(const std::vector<std::string>& names) const {
  using pickle::Object;
  Object state = Object::dict(), params = Object::list();
  for (size_t i = 0; i < names.size(); ++i) {
    params.append(Object::integer(int64_t(i)));
    auto it = slots_.find(names[i]);
    if (it == slots_.end()) continue;
    Object s = Object::dict();
    s.set("step", Object::tensor(Tensor::full({}, float(it->second.step))));
    s.set("exp_avg", Object::tensor(it->second.exp_avg.clone()));
    s.set("exp_avg_sq", Object::tensor(it->second.exp_avg_sq.clone()));
    state.set(Object::integer(int64_t(i)), std::move(s));
  }
  for (const auto& [name, s] : slots_)
    PIG_CHECK(std::find(names.begin(), names.end(), name) != names.end(), "AdamW state: parameter ", name,
              " is not in the list to export");
  Object group = Object::dict();
  group.set("lr", Object::real(options_.lr));
  group.set("betas", Object::tuple({Object::real(options_.beta1), Object::real(options_.beta2)}));
  group.set("eps", Object::real(options_.eps));
  group.set("weight_decay", Object::real(options_.weight_decay));
  group.set("amsgrad", Object::boolean(false));
  group.set("foreach", Object::none());
  group.set("maximize", Object::boolean(false));
  group.set("capturable", Object::boolean(false));
  group.set("differentiable", Object::boolean(false));
  return torch_optimizer_state(std::move(state), std::move(group), std::move(params));
}

void AdamW::load_state(const StateDict& state) {
  std::map<std::string, Slot> slots;
  for (const auto& [key, t] : state) {
    std::string name, what;
    PIG_CHECK(split_key(key, {"exp_avg_sq", "exp_avg", "step"}, name, what), "AdamW state: unknown entry '", key,
              "' (expected <param>.exp_avg, .exp_avg_sq or .step)");
    Slot& s = slots[name];
    if (what == "step") s.step = step_value(key, t);
    else (what == "exp_avg" ? s.exp_avg : s.exp_avg_sq) = t.as_f32().clone();
  }
  for (const auto& [name, s] : slots)
    PIG_CHECK(s.exp_avg.defined() && s.exp_avg_sq.defined() && s.exp_avg.shape() == s.exp_avg_sq.shape(),
              "AdamW state of '", name, "': needs exp_avg and exp_avg_sq of the same shape");
  slots_ = std::move(slots);
}

SGD::SGD(SGDOptions options) : options_(options) {
  PIG_CHECK(options.lr >= 0 && options.momentum >= 0 && options.weight_decay >= 0,
            "SGD: lr, momentum and weight decay must be >= 0");
  PIG_CHECK(!options.nesterov || (options.momentum > 0 && options.dampening == 0),
            "SGD: nesterov momentum requires a momentum and zero dampening");
}

void SGD::step(std::span<Param> params) {
  const SGDOptions& o = options_;
  const float wd = float(o.weight_decay), mom = float(o.momentum), one_minus_damp = float(1 - o.dampening);
  for (Param& p : params) {
    if (!p.grad.defined()) continue;
    const float neg_lr = float(-o.lr * p.lr_scale);
    check_param(p);
    Slot& s = slots_[p.name];
    const bool first = !s.momentum_buffer.defined();
    if (o.momentum != 0 && first) s.momentum_buffer = Tensor::empty(p.value.shape());
    if (o.momentum != 0) check_state(s.momentum_buffer, p, "momentum_buffer");
    ++s.step;
    float* w = p.value.f32();
    const float* g = p.grad.f32();
    float* buf = o.momentum != 0 ? s.momentum_buffer.f32() : nullptr;
    for_each_index(p.value.numel(), [&](int64_t i) {
      float d = o.weight_decay != 0 ? g[i] + wd * w[i] : g[i];  // d_p = grad.add(param, alpha=wd)
      if (buf) {
        buf[i] = first ? d : buf[i] * mom + one_minus_damp * d;  // clone on the first step, then mul_.add_
        d = o.nesterov ? d + mom * buf[i] : buf[i];
      }
      w[i] = w[i] + neg_lr * d;  // param.add_(d_p, alpha=-lr)
    });
  }
}

StateDict SGD::state_view() const {
  StateDict out;
  for (const auto& [name, s] : slots_) {
    if (s.momentum_buffer.defined()) out[name + ".momentum_buffer"] = s.momentum_buffer;
    out[name + ".step"] = step_tensor(s.step);
  }
  return out;
}

void SGD::load_state(const StateDict& state) {
  std::map<std::string, Slot> slots;
  for (const auto& [key, t] : state) {
    std::string name, what;
    PIG_CHECK(split_key(key, {"momentum_buffer", "step"}, name, what), "SGD state: unknown entry '", key,
              "' (expected <param>.momentum_buffer or .step)");
    if (what == "step") slots[name].step = step_value(key, t);
    else slots[name].momentum_buffer = t.as_f32().clone();
  }
  slots_ = std::move(slots);
}

pickle::Object SGD::torch_state_dict(const std::vector<std::string>& names) const {
  using pickle::Object;
  Object state = Object::dict(), params = Object::list();
  for (size_t i = 0; i < names.size(); ++i) {
    params.append(Object::integer(int64_t(i)));
    auto it = slots_.find(names[i]);
    if (it == slots_.end()) continue;
    Object s = Object::dict();
    s.set("momentum_buffer", it->second.momentum_buffer.defined() ? Object::tensor(it->second.momentum_buffer.clone())
                                                                   : Object::none());
    state.set(Object::integer(int64_t(i)), std::move(s));
  }
  for (const auto& [name, s] : slots_)
    PIG_CHECK(std::find(names.begin(), names.end(), name) != names.end(), "SGD state: parameter ", name,
              " is not in the list to export");
  Object group = Object::dict();
  group.set("lr", Object::real(options_.lr));
  group.set("momentum", Object::real(options_.momentum));
  group.set("dampening", Object::real(options_.dampening));
  group.set("weight_decay", Object::real(options_.weight_decay));
  group.set("nesterov", Object::boolean(options_.nesterov));
  group.set("maximize", Object::boolean(false));
  group.set("foreach", Object::none());
  group.set("differentiable", Object::boolean(false));
  return torch_optimizer_state(std::move(state), std::move(group), std::move(params));
}

namespace {

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.9g", v);
  return b;
}

// kohya's ss_optimizer: module.Class(k=v,...) over the arguments that differ from torch's defaults.
std::string call(const std::string& cls, const std::vector<std::pair<std::string, std::string>>& kw) {
  std::string s = cls;
  if (kw.empty()) return s;
  s += "(";
  for (size_t i = 0; i < kw.size(); ++i) s += (i ? "," : "") + kw[i].first + "=" + kw[i].second;
  return s + ")";
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// One value of --optimizer-args, read as Python's ast.literal_eval would read kohya's: a number, True/False, or
// numbers separated by commas (a tuple, optionally in parentheses).
std::vector<double> numbers(const std::string& key, std::string v) {
  if (v.size() >= 2 && v.front() == '(' && v.back() == ')') v = v.substr(1, v.size() - 2);
  std::vector<double> out;
  std::stringstream ss(v);
  for (std::string item; std::getline(ss, item, ',');) {
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back()))) item.pop_back();
    size_t b = 0;
    while (b < item.size() && std::isspace(static_cast<unsigned char>(item[b]))) ++b;
    item = item.substr(b);
    char* end = nullptr;
    const double d = item.empty() ? 0 : std::strtod(item.c_str(), &end);
    PIG_CHECK(!item.empty() && end == item.c_str() + item.size() && std::isfinite(d), "--optimizer-args: ", key,
              "=", v, ": expected a number");
    out.push_back(d);
  }
  PIG_CHECK(!out.empty(), "--optimizer-args: ", key, "=", v, ": expected a number");
  return out;
}

double number(const std::string& key, const std::string& v) {
  const std::vector<double> n = numbers(key, v);
  PIG_CHECK(n.size() == 1, "--optimizer-args: ", key, "=", v, ": expected one number");
  return n[0];
}

bool boolean(const std::string& key, const std::string& v) {
  const std::string l = lower(v);
  PIG_CHECK(l == "true" || l == "false", "--optimizer-args: ", key, "=", v, ": expected True or False");
  return l == "true";
}

}  // namespace

std::string AdamW::describe() const {
  std::vector<std::pair<std::string, std::string>> kw;
  if (options_.beta1 != 0.9 || options_.beta2 != 0.999)
    kw.emplace_back("betas", "(" + num(options_.beta1) + ", " + num(options_.beta2) + ")");
  if (options_.eps != 1e-8) kw.emplace_back("eps", num(options_.eps));
  if (options_.weight_decay != 1e-2) kw.emplace_back("weight_decay", num(options_.weight_decay));
  return call("torch.optim.adamw.AdamW", kw);
}

std::string SGD::describe() const {
  std::vector<std::pair<std::string, std::string>> kw;
  if (options_.momentum != 0) kw.emplace_back("momentum", num(options_.momentum));
  if (options_.dampening != 0) kw.emplace_back("dampening", num(options_.dampening));
  if (options_.weight_decay != 0) kw.emplace_back("weight_decay", num(options_.weight_decay));
  if (options_.nesterov) kw.emplace_back("nesterov", "True");
  return call("torch.optim.sgd.SGD", kw);
}

std::string optimizer_type_name(const std::string& type) {
  const std::string l = lower(type);
  for (const char* n : {"AdamW", "SGD", "SGDNesterov"})
    if (l == lower(n)) return n;
  PIG_CHECK(l.find("8bit") == std::string::npos, "--optimizer-type ", type,
            " is not supported (bitsandbytes' 8-bit optimizers; use AdamW, SGD or SGDNesterov)");
  fail("--optimizer-type ", type, " is not supported (supported: AdamW, SGD, SGDNesterov)");
}

std::unique_ptr<Optimizer> make_optimizer(const std::string& type, const std::vector<std::string>& args, double lr,
                                          const AdamWOptions& adamw) {
  const std::string name = optimizer_type_name(type);
  // key → value, in the order given; several key=value may share one string.
  std::vector<std::pair<std::string, std::string>> kv;
  std::set<std::string> seen;
  for (const std::string& arg : args) {
    std::stringstream ss(arg);
    for (std::string item; ss >> item;) {
      const size_t eq = item.find('=');
      PIG_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < item.size(), "--optimizer-args: expected key=value, got '",
                item, "'");
      const std::string key = item.substr(0, eq);
      PIG_CHECK(seen.insert(key).second, "--optimizer-args: '", key, "' is given twice");
      kv.emplace_back(key, item.substr(eq + 1));
    }
  }
  if (name == "AdamW") {
    AdamWOptions o = adamw;
    o.lr = lr;
    for (const auto& [k, v] : kv) {
      if (k == "betas") {
        const std::vector<double> b = numbers(k, v);
        PIG_CHECK(b.size() == 2, "--optimizer-args: betas=", v, ": expected two numbers (betas=0.9,0.999)");
        o.beta1 = b[0], o.beta2 = b[1];
      } else if (k == "eps") {
        o.eps = number(k, v);
      } else if (k == "weight_decay") {
        o.weight_decay = number(k, v);
      } else if (k == "amsgrad") {
        PIG_CHECK(!boolean(k, v), "--optimizer-args: amsgrad=True is not supported");
      } else {
        fail("--optimizer-args: unknown key '", k, "' for AdamW (known: betas, eps, weight_decay, amsgrad)");
      }
    }
    return std::make_unique<AdamW>(o);
  }
  SGDOptions o;
  o.lr = lr;
  bool momentum_given = false;
  for (const auto& [k, v] : kv) {
    if (k == "momentum") {
      o.momentum = number(k, v);
      momentum_given = true;
    } else if (k == "dampening") {
      o.dampening = number(k, v);
    } else if (k == "weight_decay") {
      o.weight_decay = number(k, v);
    } else if (k == "nesterov") {
      PIG_CHECK(name == "SGD", "--optimizer-args: nesterov is set by --optimizer-type SGDNesterov");
      o.nesterov = boolean(k, v);
    } else {
      fail("--optimizer-args: unknown key '", k, "' for ", name, " (known: momentum, dampening, weight_decay",
           name == "SGD" ? ", nesterov)" : ")");
    }
  }
  if (name == "SGDNesterov") {
    o.nesterov = true;
    if (!momentum_given) o.momentum = 0.9;  // kohya: "SGD with Nesterov must be with momentum, set momentum to 0.9"
  }
  PIG_CHECK(o.dampening >= 0 && o.dampening <= 1, "--optimizer-args: dampening must be in [0, 1], got ", o.dampening);
  return std::make_unique<SGD>(o);
}

float clip_grad_norm(std::span<Param> params, double max_norm) {
  // Each parameter's norm is a float32 torch.norm; the total is the norm of their stack.
  double total_sq = 0;
  for (const Param& p : params) {
    if (!p.grad.defined()) continue;
    PIG_CHECK(p.grad.dtype() == DType::F32, "clip_grad_norm: gradient of '", p.name, "' must be float32");
    const float* g = p.grad.f32();
    double sq = 0;
    for (int64_t i = 0; i < p.grad.numel(); ++i) sq += double(g[i]) * g[i];
    const float norm = float(std::sqrt(sq));
    total_sq += double(norm) * norm;
  }
  const float total = float(std::sqrt(total_sq));
  // clip_coef = max_norm / (total + 1e-6), which torch evaluates as reciprocal(total + 1e-6) * max_norm.
  const float coef = (1.0f / (total + 1e-6f)) * float(max_norm);
  if (!(coef >= 1.0f)) {  // clamp(max=1) leaves a NaN coefficient, which poisons the gradients as in torch
    for (Param& p : params) {
      if (!p.grad.defined()) continue;
      float* g = p.grad.f32();
      for_each_index(p.grad.numel(), [&](int64_t i) { g[i] = g[i] * coef; });
    }
  }
  return total;
}

}  // namespace pigment::training
