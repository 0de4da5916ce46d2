#include "training/ema.h"

#include <algorithm>
#include <cmath>

namespace pigment::training {

Ema::Ema(std::span<const Param> params, EmaOptions options) : options_(options) {
  PIG_CHECK(options.decay >= 0 && options.decay <= 1 && options.min_decay <= options.decay,
            "EMA: decay must be in [0, 1] and at least min_decay");
  for (const Param& p : params) {
    PIG_CHECK(p.value.defined() && p.value.dtype() == DType::F32, "EMA: parameter '", p.name, "' must be float32");
    PIG_CHECK(shadow_.emplace(p.name, p.value.clone()).second, "EMA: parameter '", p.name, "' is listed twice");
  }
}

double Ema::decay_at(int64_t optimization_step) const {
  const EmaOptions& o = options_;
  const int64_t s = std::max<int64_t>(0, optimization_step - o.update_after_step - 1);
  if (s <= 0) return 0.0;
  double d = o.decay;
  if (o.warmup == EmaOptions::Warmup::Ratio) d = (1.0 + double(s)) / (10.0 + double(s));
  else if (o.warmup == EmaOptions::Warmup::Power) d = 1.0 - std::pow(1.0 + double(s) / o.inv_gamma, -o.power);
  return std::max(std::min(d, o.decay), o.min_decay);
}

const Tensor& Ema::shadow_of(const Param& p) const {
  auto it = shadow_.find(p.name);
  PIG_CHECK(it != shadow_.end(), "EMA: parameter '", p.name, "' is not averaged");
  PIG_CHECK(it->second.shape() == p.value.shape(), "EMA: parameter '", p.name, "' has shape ",
            shape_str(p.value.shape()), ", the average ", shape_str(it->second.shape()));
  return it->second;
}

void Ema::update(std::span<const Param> params) {
  for (const Param& p : params) shadow_of(p);  // every name checked before anything changes
  ++step_;
  // torch: s_param.sub_(one_minus_decay * (s_param - param)), the factor rounded to float32.
  const float one_minus_decay = float(1.0 - decay_at(step_));
  for (const Param& p : params) {
    Tensor shadow = shadow_of(p);
    float* s = shadow.f32();
    const float* w = p.value.f32();
    const int64_t n = p.value.numel();
#pragma omp parallel for schedule(static) if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) s[i] = s[i] - one_minus_decay * (s[i] - w[i]);
  }
}

void Ema::copy_to(std::span<Param> params) const {
  for (Param& p : params) {
    const Tensor& s = shadow_of(p);
    std::copy(s.f32(), s.f32() + s.numel(), p.value.f32());
  }
}

StateDict Ema::state() const {
  StateDict out = state_view();
  for (auto& [_, t] : out) t = t.clone();
  return out;
}

StateDict Ema::state_view() const {
  StateDict out;
  for (const auto& [name, t] : shadow_) out["shadow." + name] = t;
  Tensor step = Tensor::empty({1}, DType::I64);
  *step.data<int64_t>() = step_;
  out["optimization_step"] = step;
  return out;
}

void Ema::load_state(const StateDict& state) {
  std::map<std::string, Tensor> shadow;
  int64_t step = -1;
  for (const auto& [key, t] : state) {
    if (key == "optimization_step") {
      PIG_CHECK(t.numel() == 1, "EMA state: optimization_step must be one value");
      step = t.dtype() == DType::I64 ? *t.data<int64_t>() : int64_t(std::llround(t.to_vector()[0]));
    } else {
      PIG_CHECK(key.rfind("shadow.", 0) == 0, "EMA state: unknown entry '", key,
                "' (expected shadow.<param> or optimization_step)");
      shadow[key.substr(7)] = t.as_f32().clone();
    }
  }
  PIG_CHECK(step >= 0, "EMA state: optimization_step is missing");
  shadow_ = std::move(shadow);
  step_ = step;
}

}  // namespace pigment::training
