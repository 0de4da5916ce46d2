// Heun sampler: Euler predictor plus trapezoidal corrector (two model calls per step, none on the last step).
// Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models" (Algorithm 1).
// Matches diffusers' HeunDiscreteScheduler: timesteps list each model call, so step() runs twice per step.
#include "ops/ops.h"
#include "sampling/sigma_scheduler.h"

namespace pigment {
namespace {

class HeunDiscrete : public SigmaScheduler {
 public:
  explicit HeunDiscrete(const SchedulerConfig& c) : SigmaScheduler(c, "HeunDiscreteScheduler") {}

  int order() const override { return 2; }

  void set_timesteps(int n) override {
    auto st = step_table(n);
    st.sigmas.push_back(0.0);
    // σ: [s0, s1, s1, ..., s_{n-1}, s_{n-1}, 0]; t: [t0, t1, t1, ..., t_{n-1}, t_{n-1}].
    sigmas_ = {st.sigmas.front()};
    for (size_t k = 1; k + 1 < st.sigmas.size(); ++k) sigmas_.insert(sigmas_.end(), 2, st.sigmas[k]);
    sigmas_.push_back(st.sigmas.back());
    timesteps_ = {st.timesteps.front()};
    for (size_t k = 1; k < st.timesteps.size(); ++k) timesteps_.insert(timesteps_.end(), 2, st.timesteps[k]);
    first_order_ = true;
    reset_steps();
  }

  Tensor scale_model_input(const Tensor& sample, double t) override {
    return scale_by_sigma(sample, sigmas_[step_index(t)]);
  }

  Tensor step(const Tensor& model_output, double t, const Tensor& sample, Generator*) override {
    const int i = step_index(t);
    const double sigma = first_order_ ? sigmas_[i] : sigmas_[i - 1];
    const double sigma_next = first_order_ ? sigmas_[i + 1] : sigmas_[i];
    Tensor x = sample.as_f32();
    Tensor x0 = predict_x0(model_output, x, first_order_ ? sigma : sigma_next);
    if (cfg_.clip_sample) x0 = schedule::clamp_abs(x0, float(cfg_.clip_sample_range));
    Tensor out;
    if (first_order_) {
      Tensor d = derivative(x, x0, sigma);
      dt_ = float(sigma_next) - float(sigma);
      prev_derivative_ = d;
      prev_sample_ = x;
      out = ops::add_scaled(x, d, dt_);
      first_order_ = false;
    } else {
      Tensor d = derivative(x, x0, sigma_next);
      d = ops::scale(ops::add(prev_derivative_, d), 0.5f);
      out = ops::add_scaled(prev_sample_, d, dt_);
      prev_derivative_ = Tensor();
      prev_sample_ = Tensor();
      first_order_ = true;
    }
    next_step();
    return out;
  }

 private:
  bool first_order_ = true;
  float dt_ = 0;
  Tensor prev_derivative_, prev_sample_;
};

RegisterScheduler reg({"heun", "HeunDiscreteScheduler"},
                      [](const SchedulerConfig& c) { return std::make_unique<HeunDiscrete>(c); });

}  // namespace
}  // namespace pigment
