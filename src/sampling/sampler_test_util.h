// Helpers for the sampler unit tests: the synthetic model of the golden scheduler cases, a full sampling loop, a
// generator that counts its draws, and tensor comparisons.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "sampling/rng.h"
#include "sampling/scheduler.h"

namespace pigment::testing {

// Deterministic stand-in for a random generator: values from a fixed sine sequence, with a draw counter.
class CountingGenerator : public Generator {
 public:
  Tensor randn(const Shape& shape) override { return fill(shape, 1.0f); }
  Tensor rand(const Shape& shape) override { return fill(shape, 0.5f); }
  int draws = 0;

 private:
  Tensor fill(const Shape& shape, float amp) {
    ++draws;
    Tensor t = Tensor::empty(shape);
    for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = amp * float(std::sin(0.7 * double(next_++) + 0.3));
    return t;
  }
  int64_t next_ = 0;
};

// A small latent with values of order 1.
inline Tensor test_latents(Shape shape = {1, 4, 4, 8}) {
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = float(std::cos(1.3 * double(i) + 0.5));
  return t;
}

// The golden cases' model: 0.3 · x_in · cos(t / 1000) + 0.1.
inline Tensor synthetic_model(const Tensor& x_in, double t) {
  Tensor out = Tensor::empty(x_in.shape());
  const float c = float(std::cos(t / 1000.0));
  for (int64_t i = 0; i < out.numel(); ++i) out.f32()[i] = 0.3f * x_in.f32()[i] * c + 0.1f;
  return out;
}

// set_timesteps(n), then the whole loop from `latents` with `model` (defaults to the synthetic model).
template <typename Model>
Tensor run_loop(Scheduler& s, int n, const Tensor& latents, Generator* gen, Model model) {
  s.set_timesteps(n);
  Tensor x = latents.clone();
  const float init = float(s.init_noise_sigma());
  for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] *= init;
  for (double t : s.timesteps()) x = s.step(model(s.scale_model_input(x, t), t), t, x, gen);
  return x;
}
inline Tensor run_loop(Scheduler& s, int n, const Tensor& latents, Generator* gen = nullptr) {
  return run_loop(s, n, latents, gen, synthetic_model);
}

inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double m = 0;
  for (int64_t i = 0; i < a.numel() && i < b.numel(); ++i)
    m = std::max(m, std::fabs(double(a.f32()[i]) - double(b.f32()[i])));
  return m;
}

// A config as diffusers' SD 1.5 scheduler configs give it, with the fields of `overrides` (JSON) on top.
inline SchedulerConfig sd_config(const std::string& overrides = "{}") {
  auto j = nlohmann::json::parse(R"({"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "prediction_type": "epsilon", "timestep_spacing": "leading",
    "steps_offset": 1})");
  j.update(nlohmann::json::parse(overrides));
  return SchedulerConfig::from_json(j.dump());
}

// How far n linspace steps of the sampler `name` (with `overrides`) land from 320 steps of the same sampler: the
// self-convergence of its ODE solution under the synthetic model.
inline double ode_error(const std::string& name, const std::string& overrides, int n) {
  auto j = nlohmann::json::parse(overrides);
  j["timestep_spacing"] = "linspace";
  auto run = [&](int steps) { return run_loop(*make_scheduler(name, sd_config(j.dump())), steps, test_latents()); };
  return max_abs_diff(run(n), run(320));
}

}  // namespace pigment::testing
