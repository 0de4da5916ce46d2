// Euler ancestral sampler: an Euler step down to σ_down followed by fresh noise of scale σ_up.
// Karras et al. 2022 / Crowson's k-diffusion (sample_euler_ancestral, after Song et al. 2021's ancestral sampling).
// Matches diffusers' EulerAncestralDiscreteScheduler.
#include <cmath>

#include "ops/ops.h"
#include "sampling/sigma_scheduler.h"

namespace pigment {
namespace {

class EulerAncestral : public SigmaScheduler {
 public:
  explicit EulerAncestral(const SchedulerConfig& c) : SigmaScheduler(c, "EulerAncestralDiscreteScheduler") {}

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
    PIG_CHECK(gen, who_, ": step() needs a generator");
    const int i = step_index(t);
    const float sigma = float(sigmas_[i]), sigma_to = float(sigmas_[i + 1]);
    Tensor x = sample.as_f32();
    Tensor x0 = predict_x0(model_output, x, sigma);
    const float from2 = sigma * sigma, to2 = sigma_to * sigma_to;
    const float sigma_up = std::sqrt(to2 * (from2 - to2) / from2);
    const float sigma_down = std::sqrt(to2 - sigma_up * sigma_up);
    Tensor d = derivative(x, x0, sigma);
    Tensor prev = ops::add_scaled(x, d, sigma_down - sigma);
    Tensor noise = gen->randn(model_output.shape());
    next_step();
    return ops::add_scaled(prev, noise, sigma_up);
  }
};

RegisterScheduler reg({"euler_a", "euler_ancestral", "EulerAncestralDiscreteScheduler"},
                      [](const SchedulerConfig& c) { return std::make_unique<EulerAncestral>(c); });

}  // namespace
}  // namespace pigment
