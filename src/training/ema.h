// Exponential moving average of the trained weights, as diffusers' EMAModel (training_utils.py, 0.25): after each
// optimizer step, shadow -= (1 - decay) * (shadow - param), with a decay that warms up over the first steps so
// that the average does not cling to the random or pretrained start.
#pragma once
#include <span>

#include "training/optimizer.h"

namespace pigment::training {

struct EmaOptions {
  double decay = 0.9999;  // the upper bound of the decay
  double min_decay = 0.0;
  int64_t update_after_step = 0;  // the first steps only copy (decay 0)
  // Ratio: decay = min(decay, (1 + s) / (10 + s)) (EMAModel's default); Power: 1 - (1 + s/inv_gamma)^-power
  // (EMAModel's use_ema_warmup); Constant: `decay` from the first counted step. s = step - update_after_step - 1.
  enum class Warmup { Ratio, Power, Constant } warmup = Warmup::Ratio;
  double inv_gamma = 1.0, power = 2.0 / 3.0;
};

class Ema {
 public:
  // Starts the average at the parameters' current values (a copy).
  Ema(std::span<const Param> params, EmaOptions options = {});
  // Call once after every optimizer step with the same parameters (by name; all of them are averaged).
  void update(std::span<const Param> params);
  // The decay that update number `optimization_step` (1, 2, ...) uses.
  double decay_at(int64_t optimization_step) const;
  int64_t optimization_step() const { return step_; }
  // The averaged weights, by parameter name.
  const std::map<std::string, Tensor>& shadow() const { return shadow_; }
  // Writes the averaged weights into the parameters' values (e.g. to sample or save with the EMA weights).
  void copy_to(std::span<Param> params) const;
  // "shadow.<param>" for every averaged weight and "optimization_step" (int64 [1]); load_state replaces both,
  // copying. state_view() holds the averaged weights themselves (no copy: for streaming into a checkpoint).
  StateDict state() const;
  StateDict state_view() const;
  void load_state(const StateDict& state);

 private:
  const Tensor& shadow_of(const Param& p) const;
  EmaOptions options_;
  std::map<std::string, Tensor> shadow_;
  int64_t step_ = 0;
};

}  // namespace pigment::training
