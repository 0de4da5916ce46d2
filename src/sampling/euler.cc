// Euler sampler: one explicit Euler step of the probability-flow ODE dx/dσ = (x - x0)/σ, with optional churn.
// Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models" (Algorithm 2).
// Matches diffusers' EulerDiscreteScheduler (which draws noise in every step, even when it is unused).
#include <cmath>

#include "ops/ops.h"
#include "sampling/sigma_scheduler.h"

namespace pigment {
namespace {

class EulerDiscrete : public SigmaScheduler {
 public:
  explicit EulerDiscrete(const SchedulerConfig& c) : SigmaScheduler(c, "EulerDiscreteScheduler") {
    s_churn_ = schedule::extra_number(c, "s_churn", 0.0);
    s_tmin_ = schedule::extra_number(c, "s_tmin", 0.0);
    s_tmax_ = schedule::extra_number(c, "s_tmax", INFINITY);
    s_noise_ = schedule::extra_number(c, "s_noise", 1.0);
  }

  void set_timesteps(int n) override {
    auto st = step_table(n);
    timesteps_ = st.timesteps;
    sigmas_ = st.sigmas;
    sigmas_.push_back(0.0);
    reset_steps();
  }

  Tensor scale_model_input(const Tensor& sample, double t) override {
    return scale_by_sigma(sample, sigmas_[step_index(t)]);
  }

  Tensor step(const Tensor& model_output, double t, const Tensor& sample, Generator* gen) override {
    const int i = step_index(t);
    const float sigma = float(sigmas_[i]);
    const double gamma =
        (s_tmin_ <= sigma && sigma <= s_tmax_) ? std::min(s_churn_ / double(sigmas_.size() - 1), std::sqrt(2.0) - 1)
                                               : 0.0;
    // diffusers draws here unconditionally; keep the generator in step with it.
    PIG_CHECK(gen, who_, ": step() needs a generator");
    Tensor eps = ops::scale(gen->randn(model_output.shape()), float(s_noise_));
    const float sigma_hat = sigma * float(gamma + 1);
    Tensor x = sample.as_f32();
    if (gamma > 0) x = ops::add_scaled(x, eps, std::sqrt(sigma_hat * sigma_hat - sigma * sigma));
    Tensor x0 = cfg_.prediction_type == "epsilon" ? ops::add_scaled(x, model_output.as_f32(), -sigma_hat)
                                                  : predict_x0(model_output, x, sigma);
    Tensor d = derivative(x, x0, sigma_hat);
    const float dt = float(sigmas_[i + 1]) - sigma_hat;
    next_step();
    return ops::add_scaled(x, d, dt);
  }

 private:
  double s_churn_, s_tmin_, s_tmax_, s_noise_;
};

RegisterScheduler reg({"euler", "EulerDiscreteScheduler"},
                      [](const SchedulerConfig& c) { return std::make_unique<EulerDiscrete>(c); });

}  // namespace
}  // namespace pigment
