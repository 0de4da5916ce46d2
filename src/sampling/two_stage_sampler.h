// σ-space samplers from k-diffusion whose steps take one or two model calls (DPM++ SDE, DPM++ 2S ancestral),
// driven through diffusers' step() protocol as diffusers drives Heun: timesteps() lists every model call, the second
// call of a step sits at a midpoint σ (its timestep is the fractional σ→t), and each step() consumes one call.
// The step σ come from the Euler family's table (SigmaScheduler::step_table) followed by a final 0.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "sampling/sigma_scheduler.h"

namespace pigment {

class TwoStageSampler : public SigmaScheduler {
 public:
  TwoStageSampler(const SchedulerConfig& c, std::string who);

  // timesteps() lists every model call; sigmas() is diffusers' table for second-order samplers: σ_0, then each
  // later step σ twice (the end of one step, the start of the next), then 0. The midpoint σ is internal.
  void set_timesteps(int n) override;
  // sample / (σ² + 1)^½ at the σ of the current model call.
  Tensor scale_model_input(const Tensor& sample, double t) override;
  Tensor step(const Tensor& model_output, double t, const Tensor& sample, Generator* gen) override;
  int order() const override { return 2; }

 protected:
  // The σ of the second model call of the step from s to s_next, or 0 when the step takes one call.
  virtual double midpoint_sigma(double s, double s_next) const = 0;
  // A one-call step from x at σ s with its denoised estimate d.
  virtual Tensor single_call(const Tensor& x, const Tensor& d, double s, double s_next, Generator* gen) = 0;
  // The first call of a two-call step: returns the input of the second call (the sample at s_mid).
  virtual Tensor first_stage(const Tensor& x, const Tensor& d, double s, double s_mid, double s_next,
                             Generator* gen) = 0;
  // The second call: x and d from the first call, d_mid the denoised estimate at s_mid.
  virtual Tensor second_stage(const Tensor& x, const Tensor& d, const Tensor& d_mid, double s, double s_mid,
                              double s_next, Generator* gen) = 0;

  // k-diffusion get_ancestral_step: (σ_down, σ_up) for a step from s to s_next with noise fraction eta.
  static std::pair<double, double> ancestral_step(double s, double s_next, double eta);
  // x + scale·(fresh Gaussian noise). The noise is drawn whenever a generator is given, so the stream advances the
  // same way whatever eta is; a non-zero scale without a generator throws naming the sampler.
  Tensor add_fresh_noise(const Tensor& x, Generator* gen, double scale) const;
  // The exponential-integrator (DPM-Solver++ first-order) step from σ s to σ `to` with denoised d:
  // (to/s)·x + (1 - to/s)·d, which is also the Euler step of the probability-flow ODE.
  static Tensor step_to(const Tensor& x, const Tensor& d, double s, double to);
  // σ at the N + 1 step boundaries after set_timesteps (the last 0), without the midpoints.
  const std::vector<double>& step_sigmas() const { return bounds_; }

 private:
  struct Call {
    int step;     // the sampling step it belongs to
    bool second;  // the midpoint call of a two-call step
  };
  std::vector<Call> calls_;
  std::vector<double> bounds_;  // σ at the N + 1 step boundaries (the last 0)
  std::vector<double> mids_;    // midpoint σ per step (0: one call)
  std::vector<double> call_sigmas_;  // the σ each model call sees (the midpoint for a second call)
  Tensor x_, d_;                // the first call's sample and denoised estimate
};

}  // namespace pigment
