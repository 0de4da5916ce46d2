// DPM++ 2S ancestral (k-diffusion sample_dpmpp_2s_ancestral, as AUTOMATIC1111 runs it): a single-step
// second-order DPM-Solver++ step to the ancestral σ_down through its log-σ midpoint, then fresh noise of σ_up
// (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic Models").
// Noise is drawn from pigment's generator once per step that does not end at σ = 0.
#include <cmath>

#include "sampling/noise_schedule.h"
#include "sampling/two_stage_sampler.h"

namespace pigment {

namespace {

class DPMPP2SAncestral : public TwoStageSampler {
 public:
  explicit DPMPP2SAncestral(const SchedulerConfig& c) : TwoStageSampler(c, "DPM++ 2S ancestral") {
    eta_ = schedule::extra_number(c, "eta_ancestral", 1.0);
    s_noise_ = schedule::extra_number(c, "s_noise", 1.0);
    PIG_CHECK(eta_ >= 0 && s_noise_ >= 0, who_, ": eta_ancestral and s_noise must not be negative");
  }

 protected:
  // The log-σ midpoint between s and σ_down; a step whose σ_down is 0 is a single Euler call.
  double midpoint_sigma(double s, double s_next) const override {
    const double down = ancestral_step(s, s_next, eta_).first;
    return down > 0 ? std::sqrt(s * down) : 0.0;
  }

  Tensor single_call(const Tensor& x, const Tensor& d, double s, double s_next, Generator* gen) override {
    const auto [down, up] = ancestral_step(s, s_next, eta_);
    return renoise(step_to(x, d, s, down), s_next, up, gen);
  }

  Tensor first_stage(const Tensor& x, const Tensor& d, double s, double s_mid, double, Generator*) override {
    return step_to(x, d, s, s_mid);
  }

  Tensor second_stage(const Tensor& x, const Tensor&, const Tensor& d_mid, double s, double, double s_next,
                      Generator* gen) override {
    const auto [down, up] = ancestral_step(s, s_next, eta_);
    return renoise(step_to(x, d_mid, s, down), s_next, up, gen);
  }

 private:
  // k-diffusion adds noise only when the step does not end at σ = 0.
  Tensor renoise(const Tensor& x, double s_next, double up, Generator* gen) const {
    return s_next > 0 ? add_fresh_noise(x, gen, s_noise_ * up) : x;
  }

  double eta_ = 1.0, s_noise_ = 1.0;
};

std::unique_ptr<Scheduler> make(SchedulerConfig c, bool karras) {
  if (karras) c.use_karras_sigmas = true;
  return std::make_unique<DPMPP2SAncestral>(c);
}

RegisterScheduler reg({"dpmpp_2s_ancestral", "dpmpp_2s_a"}, [](const SchedulerConfig& c) { return make(c, false); });
RegisterScheduler reg_karras({"dpmpp_2s_ancestral_karras", "dpmpp_2s_a_karras"},
                             [](const SchedulerConfig& c) { return make(c, true); });

}  // namespace

}  // namespace pigment
