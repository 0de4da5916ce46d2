// LCM (diffusers LCMScheduler, 0.25): multistep consistency sampling for latent consistency models: each step
// maps the sample to a denoised estimate through the consistency boundary condition, then re-noises it to the next
// timestep (Luo et al. 2023, "Latent Consistency Models: Synthesizing High-Resolution Images with Few-Step
// Inference").
#include <algorithm>
#include <cmath>

#include "ops/ops.h"
#include "sampling/noise_schedule.h"
#include "sampling/scheduler.h"

namespace pigment {

namespace {

constexpr const char* kWho = "LCMScheduler";

class LCM : public Scheduler {
 public:
  explicit LCM(const SchedulerConfig& c) : cfg_(c), train_(schedule::TrainSchedule::from_config(c)) {
    original_steps_ = int(schedule::extra_number(c, "original_inference_steps", 50));
    PIG_CHECK(original_steps_ >= 1 && original_steps_ <= c.num_train_timesteps, kWho, ": original_inference_steps ",
              original_steps_, " must be in [1, ", c.num_train_timesteps, "]");
    timestep_scaling_ = schedule::extra_number(c, "timestep_scaling", 10.0);
    PIG_CHECK(!schedule::extra_bool(c, "thresholding", false), kWho,
              ": dynamic thresholding (thresholding: true) is not supported");
    PIG_CHECK(c.prediction_type == "epsilon" || c.prediction_type == "v_prediction" || c.prediction_type == "sample",
              kWho, ": prediction_type '", c.prediction_type, "' is not one of epsilon, v_prediction, sample");
    final_alpha_cumprod_ = c.set_alpha_to_one ? 1.0f : train_.alphas_cumprod[0];
  }

  void set_timesteps(int n) override {
    PIG_CHECK(n >= 1 && n <= original_steps_, kWho,
              ": num_inference_steps must be in [1, original_inference_steps = ", original_steps_, "], got ", n);
    // The distillation schedule k·[1..original] - 1 (k = T / original), descending, sampled at evenly spaced
    // indices floor(linspace(0, original, n, endpoint=False)).
    const int k = cfg_.num_train_timesteps / original_steps_;
    const double stride = double(original_steps_) / n;
    timesteps_.clear();
    for (int i = 0; i < n; ++i) {
      const int idx = int(std::floor(i * stride));
      timesteps_.push_back(double((original_steps_ - idx) * k - 1));
    }
    step_index_ = -1;
  }

  Tensor step(const Tensor& model_output, double t, const Tensor& sample, Generator* gen) override {
    PIG_CHECK(!timesteps_.empty(), kWho, ": step() called before set_timesteps()");
    if (step_index_ < 0) step_index_ = index_of(t);
    const int n = int(timesteps_.size());
    PIG_CHECK(step_index_ < n, kWho, ": step() called more often than the ", n, " timesteps of set_timesteps()");
    PIG_CHECK(model_output.shape() == sample.shape(), kWho, ": model output shape ", shape_str(model_output.shape()),
              " differs from the sample's ", shape_str(sample.shape()));
    const int ti = training_step(t);
    const int prev_t = step_index_ + 1 < n ? int(timesteps_[step_index_ + 1]) : ti;
    const float acp = train_.alphas_cumprod[ti];
    const float acp_prev = prev_t >= 0 ? train_.alphas_cumprod[prev_t] : final_alpha_cumprod_;

    // Consistency boundary condition (σ_data = 0.5) at the scaled timestep.
    const double scaled = t * timestep_scaling_;
    const double c_skip = 0.25 / (scaled * scaled + 0.25);
    const double c_out = scaled / std::sqrt(scaled * scaled + 0.25);

    Tensor x0 = schedule::alpha_prediction(cfg_.prediction_type, model_output, sample, acp).x0;
    if (cfg_.clip_sample) x0 = clamp(x0, float(cfg_.clip_sample_range));
    const Tensor denoised = schedule::lincomb(float(c_out), x0, float(c_skip), sample);

    ++step_index_;
    if (step_index_ == n) return denoised;  // no fresh noise after the last step
    PIG_CHECK(gen != nullptr, kWho, ": step() draws noise before every step but the last and needs a generator");
    const Tensor noise = gen->randn(model_output.shape());
    return schedule::lincomb(std::sqrt(acp_prev), denoised, std::sqrt(1.0f - acp_prev), noise);
  }

  Tensor add_noise(const Tensor& original, const Tensor& noise, double t) const override {
    return schedule::add_noise_alpha(train_, original, noise, training_step(t));
  }

 private:
  // Position of t in the schedule (the second one if repeated); LCM accepts only its own timesteps.
  int index_of(double t) const {
    std::vector<int> hits;
    for (int i = 0; i < int(timesteps_.size()); ++i)
      if (timesteps_[i] == t) hits.push_back(i);
    PIG_CHECK(!hits.empty(), kWho, ": timestep ", t, " is not in the schedule of set_timesteps()");
    return hits[hits.size() > 1 ? 1 : 0];
  }

  int training_step(double t) const {
    PIG_CHECK(t == std::floor(t) && t >= 0 && t < train_.size(), kWho, ": timestep ", t,
              " is not a training step in [0, ", train_.size(), ")");
    return int(t);
  }

  static Tensor clamp(const Tensor& x, float range) {
    Tensor y = x.as_f32().clone();
    float* p = y.f32();
    for (int64_t i = 0; i < y.numel(); ++i) p[i] = std::clamp(p[i], -range, range);
    return y;
  }

  SchedulerConfig cfg_;
  schedule::TrainSchedule train_;
  int original_steps_ = 50;
  double timestep_scaling_ = 10.0;
  float final_alpha_cumprod_ = 1.0f;
  int step_index_ = -1;
};

RegisterScheduler reg({"LCMScheduler", "lcm"}, [](const SchedulerConfig& c) { return std::make_unique<LCM>(c); });

}  // namespace

}  // namespace pigment
