// The common interface of every sampler ("scheduler" in diffusers' words). It mirrors diffusers' scheduler
// protocol so that each one can be held to the golden loops exactly:
//   s.set_timesteps(N); x = noise * s.init_noise_sigma();
//   for t in s.timesteps(): x = s.step(model(s.scale_model_input(x, t), t), t, x, gen);
// Samplers are model-agnostic: pipelines own the model call (and classifier-free guidance).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "sampling/rng.h"

namespace pigment {

// The fields of diffusers' scheduler config.json that pigment's samplers read.
struct SchedulerConfig {
  int num_train_timesteps = 1000;
  double beta_start = 0.00085;
  double beta_end = 0.012;
  std::string beta_schedule = "scaled_linear";  // scaled_linear | linear | squaredcos_cap_v2
  std::string prediction_type = "epsilon";      // epsilon | v_prediction | sample
  std::string timestep_spacing = "leading";     // leading | trailing | linspace
  int steps_offset = 1;
  bool clip_sample = false;
  double clip_sample_range = 1.0;
  bool set_alpha_to_one = false;
  bool rescale_betas_zero_snr = false;
  bool use_karras_sigmas = false;
  bool use_exponential_sigmas = false;
  double eta = 0.0;  // DDIM's η (step argument in diffusers)
  // Sampler-specific options (solver_order, algorithm_type, skip_prk_steps, ...) as diffusers names them.
  std::string json_extra = "{}";

  // Reads a diffusers scheduler config (JSON text); unknown keys are kept in json_extra.
  static SchedulerConfig from_json(const std::string& json_text);
};

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  virtual void set_timesteps(int num_inference_steps) = 0;
  // Every timestep the loop visits, in order (second-order samplers list each model call).
  const std::vector<double>& timesteps() const { return timesteps_; }
  // The sigma table after set_timesteps (empty for samplers that do not use one).
  const std::vector<double>& sigmas() const { return sigmas_; }
  virtual double init_noise_sigma() const { return 1.0; }
  virtual Tensor scale_model_input(const Tensor& sample, double t) { return sample; }
  // One step: the sample after this model call. `gen` may be null for samplers that draw no noise.
  virtual Tensor step(const Tensor& model_output, double t, const Tensor& sample, Generator* gen) = 0;
  // x_t for img2img/inpainting: noise added to a clean latent at timestep t.
  virtual Tensor add_noise(const Tensor& original, const Tensor& noise, double t) const = 0;
  // Number of model calls per sampling step (2 for Heun / DPM2).
  virtual int order() const { return 1; }

  // For the golden runner and tests: samplers whose noise does not come from the step generator (DPM++ SDE's
  // Brownian tree) report each noise tensor they add ("noise", unit variance, before its σ scale) and the raw
  // increment behind it ("brownian_increment"), in the order they draw them.
  using NoiseObserver = std::function<void(const std::string& what, const Tensor& value)>;
  void set_noise_observer(NoiseObserver observer) { noise_observer_ = std::move(observer); }

 protected:
  NoiseObserver noise_observer_;
  std::vector<double> timesteps_;
  std::vector<double> sigmas_;
};

using SchedulerFactory = std::function<std::unique_ptr<Scheduler>(const SchedulerConfig&)>;
// Each sampler file registers itself under its names: pigment's own ("euler") and diffusers' class name
// ("EulerDiscreteScheduler"). Names are matched case-insensitively.
struct RegisterScheduler {
  RegisterScheduler(std::vector<std::string> names, SchedulerFactory make);
};
// Creates a sampler by any registered name; an unknown name throws, listing the valid ones.
std::unique_ptr<Scheduler> make_scheduler(const std::string& name, const SchedulerConfig& config);
// Every registered name, sorted.
std::vector<std::string> scheduler_names();

}  // namespace pigment
