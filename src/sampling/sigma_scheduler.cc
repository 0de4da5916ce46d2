#include "sampling/sigma_scheduler.h"

#include <algorithm>
#include <cmath>

#include "ops/ops.h"

namespace pigment {

using namespace schedule;

SigmaScheduler::SigmaScheduler(const SchedulerConfig& c, std::string who)
    : cfg_(c), who_(std::move(who)), train_(TrainSchedule::from_config(c)) {
  // Zero terminal SNR makes the last ᾱ 0 and its σ infinite; diffusers nudges it to 2^-24.
  if (c.rescale_betas_zero_snr) train_.alphas_cumprod.back() = float(std::ldexp(1.0, -24));
  train_sigmas_ = train_.sigmas();
  const std::string p = c.prediction_type;
  PIG_CHECK(p == "epsilon" || p == "v_prediction" || p == "sample", who_, ": prediction_type '", p,
            "' is not one of epsilon, v_prediction, sample");
  const int schedules = int(c.use_karras_sigmas) + int(c.use_exponential_sigmas) +
                        int(extra_bool(c, "use_polyexponential_sigmas", false));
  PIG_CHECK(schedules <= 1, who_,
            ": use_karras_sigmas, use_exponential_sigmas and use_polyexponential_sigmas exclude each other");
}

SigmaScheduler::StepTable SigmaScheduler::step_table(int n, bool round_sigma_timesteps) const {
  const int T = train_.size();
  StepTable st;
  st.timesteps =
      spaced_timesteps(cfg_.timestep_spacing, T, n, cfg_.steps_offset, /*round_linspace=*/false, !linspace_f64_);
  const std::string interpolation = extra_string(cfg_, "interpolation_type", "linear");
  if (interpolation == "linear") {
    st.sigmas = interp_table(st.timesteps, train_sigmas_);
  } else if (interpolation == "log_linear") {
    // diffusers spaces log σ evenly over the whole training range with n + 1 points.
    const double lo = std::log(double(train_sigmas_.back())), hi = std::log(double(train_sigmas_.front()));
    st.sigmas.resize(n + 1);
    for (int i = 0; i <= n; ++i) st.sigmas[i] = std::exp(n == 0 ? lo : lo + (hi - lo) * double(i) / double(n));
  } else {
    fail(who_, ": interpolation_type '", interpolation, "' is not one of linear, log_linear");
  }
  const bool poly = extra_bool(cfg_, "use_polyexponential_sigmas", false);
  if (cfg_.use_karras_sigmas || cfg_.use_exponential_sigmas || poly) {
    const double smin = extra_number(cfg_, "sigma_min", st.sigmas.back());
    const double smax = extra_number(cfg_, "sigma_max", st.sigmas.front());
    if (cfg_.use_karras_sigmas)
      st.sigmas = karras_sigmas(smin, smax, n, extra_number(cfg_, "rho", 7.0));
    else if (cfg_.use_exponential_sigmas)
      st.sigmas = exponential_sigmas(smin, smax, n);
    else
      st.sigmas = polyexponential_sigmas(smin, smax, n, extra_number(cfg_, "rho", 1.0));
    st.timesteps = sigmas_to_t(st.sigmas, train_sigmas_);
    if (round_sigma_timesteps)
      for (auto& t : st.timesteps) t = std::nearbyint(t);
  }
  for (auto& t : st.timesteps) t = f32(t);
  for (auto& s : st.sigmas) s = f32(s);
  return st;
}

double SigmaScheduler::init_noise_sigma() const {
  PIG_CHECK(!sigmas_.empty(), who_, ": init_noise_sigma needs set_timesteps first");
  float m = 0;
  for (double s : sigmas_)
    if (!std::isnan(s)) m = std::max(m, float(s));
  if (cfg_.timestep_spacing == "linspace" || cfg_.timestep_spacing == "trailing") return m;
  return std::sqrt(m * m + 1.0f);
}

int SigmaScheduler::index_for_timestep(double t) const {
  std::vector<int> hits;
  for (size_t i = 0; i < timesteps_.size(); ++i)
    if (timesteps_[i] == t) hits.push_back(int(i));
  PIG_CHECK(!hits.empty(), who_, ": timestep ", t, " is not one of the scheduler's timesteps");
  return hits.size() > 1 ? hits[1] : hits[0];
}

int SigmaScheduler::step_index(double t) {
  PIG_CHECK(!timesteps_.empty(), who_, ": set_timesteps must be called before stepping");
  if (step_index_ < 0) step_index_ = index_for_timestep(t);
  PIG_CHECK(step_index_ < int(timesteps_.size()), who_, ": step() called more often than there are timesteps (",
            timesteps_.size(), ")");
  return step_index_;
}

Tensor SigmaScheduler::add_noise(const Tensor& original, const Tensor& noise, double t) const {
  return add_noise_sigma(original, noise, sigmas_.at(index_for_timestep(t)));
}

Tensor SigmaScheduler::scale_by_sigma(const Tensor& x, double sigma) {
  const float s = float(sigma);
  return ops::scale(x.as_f32(), 1.0f / std::sqrt(s * s + 1.0f));
}

Tensor SigmaScheduler::predict_x0(const Tensor& model_output, const Tensor& sample, double sigma) const {
  return sigma_prediction_x0(cfg_.prediction_type, model_output, sample, sigma);
}

Tensor SigmaScheduler::derivative(const Tensor& sample, const Tensor& x0, double sigma) {
  return ops::scale(ops::sub(sample.as_f32(), x0), 1.0f / float(sigma));
}

}  // namespace pigment
