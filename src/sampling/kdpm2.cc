// KDPM2 sampler: DPM-Solver-2 in σ space — an Euler half-step to the geometric-mean σ, a model call there, and a
// full step with that midpoint derivative. Lu et al. 2022 (DPM-Solver) as Karras et al. 2022 / k-diffusion's
// sample_dpm_2 write it. Matches diffusers' KDPM2DiscreteScheduler, including its interpolated timesteps.
#include <cmath>

#include "ops/ops.h"
#include "sampling/sigma_scheduler.h"

namespace pigment {
namespace {

class KDPM2Discrete : public SigmaScheduler {
 public:
  explicit KDPM2Discrete(const SchedulerConfig& c) : SigmaScheduler(c, "KDPM2DiscreteScheduler") {}

  int order() const override { return 2; }

  void set_timesteps(int n) override {
    auto st = step_table(n, /*round_sigma_timesteps=*/true);
    std::vector<float> s(st.sigmas.begin(), st.sigmas.end());
    s.push_back(0.0f);
    // interpol[k] lies between σ_k and σ_{k-1} (k = 0 wraps to the final 0 and is never used).
    std::vector<float> interpol(s.size());
    for (size_t k = 0; k < s.size(); ++k) interpol[k] = schedule::log_midpoint(s[k], s[(k + s.size() - 1) % s.size()]);
    sigmas_.assign(1, s[0]);
    sigmas_interpol_.assign(1, interpol[0]);
    for (size_t k = 1; k < s.size(); ++k) {
      sigmas_.insert(sigmas_.end(), 2, s[k]);
      sigmas_interpol_.insert(sigmas_interpol_.end(), 2, interpol[k]);
    }
    sigmas_.push_back(s.back());
    sigmas_interpol_.push_back(interpol.back());
    // Calls: t0, then (interpolated t_k, t_k) for k = 1..n-1.
    timesteps_.assign(1, st.timesteps[0]);
    for (int k = 1; k < n; ++k) {
      timesteps_.push_back(double(schedule::sigma_to_t_f32(interpol[k], train_sigmas_)));
      timesteps_.push_back(st.timesteps[k]);
    }
    prev_sample_ = Tensor();
    reset_steps();
  }

  Tensor scale_model_input(const Tensor& sample, double t) override {
    const int i = step_index(t);
    return scale_by_sigma(sample, first_order() ? sigmas_[i] : sigmas_interpol_[i]);
  }

  Tensor step(const Tensor& model_output, double t, const Tensor& sample, Generator*) override {
    const int i = step_index(t);
    const bool first = first_order();
    const float sigma = float(first ? sigmas_[i] : sigmas_[i - 1]);
    const float sigma_interpol = float(first ? sigmas_interpol_[i + 1] : sigmas_interpol_[i]);
    const float sigma_next = float(first ? sigmas_[i + 1] : sigmas_[i]);
    Tensor x = sample.as_f32();
    Tensor x0 = predict_x0(model_output, x, first ? sigma : sigma_interpol);
    Tensor out;
    if (first) {
      Tensor d = derivative(x, x0, sigma);
      prev_sample_ = x;
      out = ops::add_scaled(x, d, sigma_interpol - sigma);
    } else {
      Tensor d = derivative(x, x0, sigma_interpol);
      out = ops::add_scaled(prev_sample_, d, sigma_next - sigma);
      prev_sample_ = Tensor();
    }
    next_step();
    return out;
  }

 private:
  bool first_order() const { return !prev_sample_.defined(); }

  std::vector<double> sigmas_interpol_;
  Tensor prev_sample_;
};

RegisterScheduler reg({"kdpm2", "dpm2", "KDPM2DiscreteScheduler"},
                      [](const SchedulerConfig& c) { return std::make_unique<KDPM2Discrete>(c); });

}  // namespace
}  // namespace pigment
