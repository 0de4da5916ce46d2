// What diffusers' σ-space ("k-diffusion style") discrete schedulers share: Euler, Euler ancestral, Heun, LMS,
// KDPM2 and KDPM2 ancestral. The latent lives at scale σ; the model sees x / (σ² + 1)^½; timesteps are floats.
#pragma once
#include <string>
#include <vector>

#include "sampling/noise_schedule.h"
#include "sampling/scheduler.h"

namespace pigment {

class SigmaScheduler : public Scheduler {
 public:
  SigmaScheduler(const SchedulerConfig& c, std::string who);

  // The largest σ, or (σ_max² + 1)^½ for "leading" spacing (diffusers' init_noise_sigma, float32).
  double init_noise_sigma() const override;
  // x0 + σ(t) noise, σ taken at the call index of t (the second occurrence when t repeats).
  Tensor add_noise(const Tensor& original, const Tensor& noise, double t) const override;

 protected:
  // The per-step table of the Euler family: n timesteps (spacing, then Karras / exponential / polyexponential
  // σ if configured, their timesteps from σ→t) and n σ values (float32), without the final 0.
  struct StepTable {
    std::vector<double> timesteps;
    std::vector<double> sigmas;
  };
  StepTable step_table(int n, bool round_sigma_timesteps = false) const;
  // linspace spacing in float64 before σ is interpolated (DPMSolverSDEScheduler) instead of Euler's float32.
  bool linspace_f64_ = false;

  // The call index of timestep t as diffusers' index_for_timestep picks it.
  int index_for_timestep(double t) const;
  // The call index of this step() / scale_model_input: set from t on first use, advanced by next_step().
  int step_index(double t);
  void next_step() { ++step_index_; }
  void reset_steps() { step_index_ = -1; }
  // x / (σ² + 1)^½ with float32 σ math.
  static Tensor scale_by_sigma(const Tensor& x, double sigma);
  // Model output (epsilon, v_prediction or sample) → x0 for σ-space samples. Every σ-space sampler takes an x0
  // ("sample") model, Euler a and DPM2 (a) too, where diffusers raises NotImplementedError: the x0 is the output.
  Tensor predict_x0(const Tensor& model_output, const Tensor& sample, double sigma) const;
  // d = (x - x0) / σ
  static Tensor derivative(const Tensor& sample, const Tensor& x0, double sigma);

  SchedulerConfig cfg_;
  std::string who_;
  schedule::TrainSchedule train_;
  std::vector<float> train_sigmas_;  // ((1 - ᾱ) / ᾱ)^½ per training step

 private:
  int step_index_ = -1;
};

}  // namespace pigment
