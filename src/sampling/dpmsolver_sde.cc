// DPM++ SDE (k-diffusion sample_dpmpp_sde as AUTOMATIC1111 runs it; diffusers DPMSolverSDEScheduler): a stochastic
// second-order DPM-Solver++ step through the log-σ midpoint (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided
// Sampling of Diffusion Probabilistic Models"). k-diffusion and diffusers draw the noise from a Brownian tree
// (torchsde); pigment draws independent Gaussians from its generator, two per step (one per model call).
#include <cmath>

#include "sampling/noise_schedule.h"
#include "sampling/two_stage_sampler.h"

namespace pigment {

namespace {

class DPMSolverSDE : public TwoStageSampler {
 public:
  explicit DPMSolverSDE(const SchedulerConfig& c) : TwoStageSampler(c, "DPMSolverSDEScheduler") {
    eta_ = schedule::extra_number(c, "eta_ancestral", 1.0);
    s_noise_ = schedule::extra_number(c, "s_noise", 1.0);
    PIG_CHECK(eta_ >= 0 && s_noise_ >= 0, who_, ": eta_ancestral and s_noise must not be negative");
  }

 protected:
  // The midpoint of the step in log σ (r = 1/2); the last step, to σ = 0, is a single Euler call.
  double midpoint_sigma(double s, double s_next) const override { return s_next > 0 ? std::sqrt(s * s_next) : 0.0; }

  Tensor single_call(const Tensor& x, const Tensor& d, double s, double s_next, Generator*) override {
    return step_to(x, d, s, s_next);
  }

  Tensor first_stage(const Tensor& x, const Tensor& d, double s, double s_mid, double, Generator* gen) override {
    const auto [down, up] = ancestral_step(s, s_mid, eta_);
    return add_fresh_noise(step_to(x, d, s, down), gen, s_noise_ * up);
  }

  // With r = 1/2 the update uses the midpoint's denoised estimate alone.
  Tensor second_stage(const Tensor& x, const Tensor&, const Tensor& d_mid, double s, double, double s_next,
                      Generator* gen) override {
    const auto [down, up] = ancestral_step(s, s_next, eta_);
    return add_fresh_noise(step_to(x, d_mid, s, down), gen, s_noise_ * up);
  }

 private:
  double eta_ = 1.0, s_noise_ = 1.0;
};

std::unique_ptr<Scheduler> make(SchedulerConfig c, bool karras) {
  if (karras) c.use_karras_sigmas = true;
  return std::make_unique<DPMSolverSDE>(c);
}

RegisterScheduler reg({"DPMSolverSDEScheduler", "dpmpp_sde"}, [](const SchedulerConfig& c) { return make(c, false); });
RegisterScheduler reg_karras({"dpmpp_sde_karras"}, [](const SchedulerConfig& c) { return make(c, true); });

}  // namespace

}  // namespace pigment
