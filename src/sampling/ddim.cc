// DDIM sampler: the non-Markovian update x_{t-1} = √ᾱ_prev x0 + √(1 - ᾱ_prev - σ²) ε + σ z, σ = η·(posterior std).
// Song et al. 2021, "Denoising Diffusion Implicit Models". Matches diffusers' DDIMScheduler (η from config.eta).
#include <algorithm>
#include <cmath>

#include "ops/ops.h"
#include "sampling/noise_schedule.h"

namespace pigment {
namespace {

class DDIM : public Scheduler {
 public:
  explicit DDIM(const SchedulerConfig& c) : cfg_(c), train_(schedule::TrainSchedule::from_config(c)) {
    final_alpha_ = c.set_alpha_to_one ? 1.0f : train_.alphas_cumprod[0];
    use_clipped_ = schedule::extra_bool(c, "use_clipped_model_output", false);
    PIG_CHECK(c.eta >= 0, "DDIMScheduler: eta must be non-negative, got ", c.eta);
  }

  void set_timesteps(int n) override {
    timesteps_ = schedule::spaced_timesteps(cfg_.timestep_spacing, train_.size(), n, cfg_.steps_offset, true);
    num_inference_steps_ = n;
  }

  Tensor step(const Tensor& model_output, double timestep, const Tensor& sample, Generator* gen) override {
    PIG_CHECK(num_inference_steps_ > 0, "DDIMScheduler: set_timesteps must be called before step()");
    const int t = int(timestep);
    const int prev_t = t - train_.size() / num_inference_steps_;
    const float a_t = alpha_prod(t), a_prev = prev_t >= 0 ? alpha_prod(prev_t) : final_alpha_;
    const float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
    auto pred = schedule::alpha_prediction(cfg_.prediction_type, model_output, sample, a_t);
    pred.x0 = schedule::clip_x0(cfg_, pred.x0);
    const float variance = (b_prev / b_t) * (1.0f - a_t / a_prev);
    const float std_dev = float(cfg_.eta) * std::sqrt(variance);
    if (use_clipped_)
      pred.eps = ops::scale(ops::add_scaled(sample.as_f32(), pred.x0, -std::sqrt(a_t)), 1.0f / std::sqrt(b_t));
    const float dir = std::sqrt(1.0f - a_prev - std_dev * std_dev);
    Tensor prev = schedule::lincomb(std::sqrt(a_prev), pred.x0, dir, pred.eps);
    if (cfg_.eta > 0) {
      PIG_CHECK(gen, "DDIMScheduler: step() with eta > 0 needs a generator");
      prev = ops::add_scaled(prev, gen->randn(model_output.shape()), std_dev);
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
  float final_alpha_ = 1.0f;
  bool use_clipped_ = false;
  int num_inference_steps_ = 0;
};

RegisterScheduler reg({"ddim", "DDIMScheduler"}, [](const SchedulerConfig& c) { return std::make_unique<DDIM>(c); });

}  // namespace
}  // namespace pigment
