// Test helper for the sampler unit tests: a loop with an exact noise predictor. The sample starts at
// add_noise(x0, eps, t0) and the model always answers eps; a consistent deterministic sampler must then end at x0.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "sampling/rng.h"
#include "sampling/scheduler.h"

namespace pigment::sampler_checks {

inline Tensor pattern(Shape shape, double phase) {
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = float(std::sin(0.37 * double(i) + phase));
  return t;
}

struct ExactRun {
  Tensor out;
  Tensor x0;
  int draws = 0;
};

// Counts the draws of a real CPU generator.
class CountingCpuGenerator : public Generator {
 public:
  CountingCpuGenerator() : g_(make_generator("cpu", 1234)) {}
  Tensor randn(const Shape& s) override {
    ++draws;
    return g_->randn(s);
  }
  Tensor rand(const Shape& s) override { return g_->rand(s); }
  int draws = 0;

 private:
  std::unique_ptr<Generator> g_;
};

inline ExactRun run_exact_model(const std::string& name, const std::string& config_json, int steps) {
  auto s = make_scheduler(name, SchedulerConfig::from_json(config_json));
  s->set_timesteps(steps);
  ExactRun r;
  r.x0 = pattern({1, 4, 4, 8}, 0.2);
  const Tensor eps = pattern({1, 4, 4, 8}, 1.1);
  CountingCpuGenerator gen;
  Tensor x = s->add_noise(r.x0, eps, s->timesteps().front());
  for (double t : s->timesteps()) {
    Tensor x_in = s->scale_model_input(x, t);
    EXPECT_EQ(x_in.shape(), x.shape());
    x = s->step(eps, t, x, &gen);
  }
  r.out = x;
  r.draws = gen.draws;
  return r;
}

// Largest |a - b|; NaN counts as infinite.
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double d = std::fabs(double(a.f32()[i]) - b.f32()[i]);
    m = std::isnan(d) ? INFINITY : std::max(m, d);
  }
  return m;
}

// The given step counts all land on x0.
inline void expect_recovers_x0(const std::string& name, const std::string& config_json,
                               std::vector<int> step_counts = {1, 7, 1000}, double tol = 2e-3) {
  for (int steps : step_counts) {
    auto r = run_exact_model(name, config_json, steps);
    EXPECT_LT(max_abs_diff(r.out, r.x0), tol) << name << " with " << steps << " steps";
  }
}

}  // namespace pigment::sampler_checks
