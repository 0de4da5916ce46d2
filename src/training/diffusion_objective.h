// The diffusion training objective: noise a clean latent in one shot at a training timestep, and score the model's
// prediction against the target its parameterisation asks for.
//   noisy  = √ᾱ_t · x0 + √(1−ᾱ_t) · ε                      (DDPMScheduler.add_noise)
//   target = ε (epsilon) | √ᾱ_t · ε − √(1−ᾱ_t) · x0 (v_prediction) | x0 (sample)
//   loss   = mean_b w_b · mean((pred_b − target_b)²),  w_b = 1, or min(SNR_t, γ) / SNR_t with min-SNR-γ
//            (SNR_t = ᾱ_t / (1 − ᾱ_t), plus 1 for v-prediction, as diffusers' train_text_to_image.py)
// All in float32 in diffusers' operation order, so the golden training cases match.
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"
#include "sampling/noise_schedule.h"

namespace pigment::training {

enum class Prediction { Epsilon, V, Sample };
// "epsilon" | "v_prediction" | "sample" (diffusers' prediction_type); anything else is an error naming the value.
Prediction prediction_from_name(const std::string& name);
const char* prediction_name(Prediction p);

struct ObjectiveOptions {
  Prediction prediction = Prediction::Epsilon;
  float min_snr_gamma = 0;  // 0: off
};

class DiffusionObjective {
 public:
  DiffusionObjective(schedule::TrainSchedule train_schedule, ObjectiveOptions options);

  // x0, noise [B, ...]; one integer timestep per sample.
  Tensor add_noise(const Tensor& x0, const Tensor& noise, const std::vector<int>& timesteps) const;
  Tensor target(const Tensor& x0, const Tensor& noise, const std::vector<int>& timesteps) const;
  // SNR_t as the loss weighting reads it (plus 1 for v-prediction).
  std::vector<float> snr(const std::vector<int>& timesteps) const;
  std::vector<float> loss_weights(const std::vector<int>& timesteps) const;

  struct Loss {
    float value = 0;
    std::vector<float> per_sample_mse;  // mean over each sample's elements, before weighting
    Tensor dpred;                       // d value / d pred
  };
  Loss loss(const Tensor& pred, const Tensor& target, const std::vector<int>& timesteps) const;

  const schedule::TrainSchedule& schedule() const { return schedule_; }
  const ObjectiveOptions& options() const { return options_; }

 private:
  // out_b = a_t(b) · x_b + c_t(b) · y_b per sample.
  Tensor combine(const Tensor& x, float (*a)(const schedule::TrainSchedule&, int), const Tensor& y,
                 float (*c)(const schedule::TrainSchedule&, int), const std::vector<int>& timesteps) const;
  schedule::TrainSchedule schedule_;
  ObjectiveOptions options_;
};

}  // namespace pigment::training
