// DDPM ancestral sampler: the posterior mean of q(x_{t-1} | x_t, x0) plus noise of the posterior (or β_t) variance.
// Ho et al. 2020, "Denoising Diffusion Probabilistic Models". Matches diffusers' DDPMScheduler (fixed variances).
#include <algorithm>
#include <cmath>

#include "ops/ops.h"
#include "sampling/noise_schedule.h"

namespace pigment {
namespace {

class DDPM : public Scheduler {
 public:
  explicit DDPM(const SchedulerConfig& c) : cfg_(c), train_(schedule::TrainSchedule::from_config(c)) {
    variance_type_ = schedule::extra_string(c, "variance_type", "fixed_small");
    PIG_CHECK(variance_type_ == "fixed_small" || variance_type_ == "fixed_small_log" || variance_type_ == "fixed_large",
              "DDPMScheduler: variance_type '", variance_type_,
              "' is not supported (pigment takes fixed_small, fixed_small_log, fixed_large)");
  }

  void set_timesteps(int n) override {
    timesteps_ = schedule::spaced_timesteps(cfg_.timestep_spacing, train_.size(), n, cfg_.steps_offset, true);
    num_inference_steps_ = n;
  }

  Tensor step(const Tensor& model_output, double timestep, const Tensor& sample, Generator* gen) override {
    PIG_CHECK(num_inference_steps_ > 0, "DDPMScheduler: set_timesteps must be called before step()");
    const int t = int(timestep);
    const int prev_t = t - train_.size() / num_inference_steps_;
    const float a_t = alpha_prod(t), a_prev = prev_t >= 0 ? alpha_prod(prev_t) : 1.0f;
    const float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
    const float cur_alpha = a_t / a_prev, cur_beta = 1.0f - cur_alpha;
    Tensor x0 = schedule::alpha_prediction(cfg_.prediction_type, model_output, sample, a_t).x0;
    x0 = schedule::clip_x0(cfg_, x0);
    const float x0_coeff = std::sqrt(a_prev) * cur_beta / b_t;
    const float x_coeff = std::sqrt(cur_alpha) * b_prev / b_t;
    Tensor prev = schedule::lincomb(x0_coeff, x0, x_coeff, sample);
    if (t > 0) {
      PIG_CHECK(gen, "DDPMScheduler: step() needs a generator");
      Tensor noise = gen->randn(model_output.shape());
      const float var = std::max(b_prev / b_t * cur_beta, 1e-20f);
      float scale;
      if (variance_type_ == "fixed_small") scale = std::sqrt(var);
      else if (variance_type_ == "fixed_small_log") scale = std::exp(0.5f * std::log(var));
      else scale = std::sqrt(cur_beta);
      prev = ops::add_scaled(prev, noise, scale);
    }
    return prev;
  }

  Tensor add_noise(const Tensor& original, const Tensor& noise, double t) const override {
    return schedule::add_noise_alpha(train_, original, noise, index(t));
  }

 private:
  int index(double t) const { return std::clamp(int(t), 0, train_.size() - 1); }
  float alpha_prod(int t) const { return train_.alphas_cumprod[index(t)]; }

  SchedulerConfig cfg_;
  schedule::TrainSchedule train_;
  std::string variance_type_;
  int num_inference_steps_ = 0;
};

RegisterScheduler reg({"ddpm", "DDPMScheduler"}, [](const SchedulerConfig& c) { return std::make_unique<DDPM>(c); });

}  // namespace
}  // namespace pigment
