#include "sampling/solver_schedule.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "ops/ops.h"

namespace pigment::solver {

schedule::TrainSchedule train_schedule(const SchedulerConfig& c) {
  auto t = schedule::TrainSchedule::from_config(c);
  if (c.rescale_betas_zero_snr) t.alphas_cumprod.back() = float(std::ldexp(1.0, -24));
  return t;
}

VP vp(double s) {
  VP v;
  v.alpha = 1.0 / std::sqrt(s * s + 1.0);
  v.sigma = s * v.alpha;
  v.lambda = s > 0 ? std::log(v.alpha) - std::log(v.sigma) : std::numeric_limits<double>::infinity();
  return v;
}

std::vector<double> solver_timesteps(const std::string& who, const std::string& spacing, int num_train_timesteps,
                                     int last_timestep, int n, int steps_offset) {
  PIG_CHECK(n >= 1 && n <= num_train_timesteps, who, ": num_inference_steps must be in [1, ", num_train_timesteps,
            "], got ", n);
  std::vector<double> ts;
  if (spacing == "linspace") {
    // numpy linspace: i·(stop/div) with the end point set exactly; np.round is half-to-even (nearbyint).
    const double stop = double(last_timestep - 1), step = stop / n;
    for (int i = n; i >= 1; --i) ts.push_back(std::nearbyint(i == n ? stop : i * step));
  } else if (spacing == "leading") {
    const int ratio = last_timestep / (n + 1);
    for (int i = n; i >= 1; --i) ts.push_back(double(i * ratio + steps_offset));
  } else if (spacing == "trailing") {
    // numpy arange(start, 0, -ratio): ceil(-start / -ratio) values start + k·((start - ratio) - start).
    const double ratio = double(num_train_timesteps) / n, start = double(last_timestep);
    const double delta = (start - ratio) - start;
    const auto len = int64_t(std::ceil((0.0 - start) / -ratio));
    for (int64_t k = 0; k < len; ++k) ts.push_back(std::nearbyint(start + double(k) * delta) - 1.0);
  } else {
    fail(who, ": timestep_spacing '", spacing, "' is not one of linspace, leading, trailing");
  }
  return ts;
}

int clipped_last_timestep(const schedule::TrainSchedule& train, double lambda_min_clipped) {
  // λ falls with t; diffusers counts, on the flipped (ascending) table, the entries below the threshold.
  int below = 0;
  for (float acp : train.alphas_cumprod) {
    const float a = std::sqrt(acp), s = std::sqrt(1.0f - acp);
    if (double(std::log(a) - std::log(s)) < lambda_min_clipped) ++below;
  }
  return train.size() - below;
}

SigmaSpacing sigma_spacing_from_config(const std::string& who, const SchedulerConfig& c) {
  const bool lu = schedule::extra_bool(c, "use_lu_lambdas", false);
  const int set = int(c.use_karras_sigmas) + int(c.use_exponential_sigmas) + int(lu);
  PIG_CHECK(set <= 1, who, ": use_karras_sigmas, use_exponential_sigmas and use_lu_lambdas exclude each other");
  if (c.use_karras_sigmas) return SigmaSpacing::karras;
  if (c.use_exponential_sigmas || lu) return SigmaSpacing::exponential;
  return SigmaSpacing::interpolated;
}

SolverTable solver_table(const schedule::TrainSchedule& train, std::vector<double> timesteps, int n,
                         SigmaSpacing spacing, bool final_zero) {
  const std::vector<float> table = train.sigmas();  // ascending in t
  SolverTable out;
  if (spacing == SigmaSpacing::interpolated) {
    for (double s : schedule::interp_table(timesteps, table)) out.sigmas.push_back(schedule::f32(s));
    out.sigmas.push_back(final_zero ? 0.0 : double(table.front()));
    out.timesteps = std::move(timesteps);
    return out;
  }
  const double smin = table.front(), smax = table.back();
  const std::vector<double> s = spacing == SigmaSpacing::karras ? schedule::karras_sigmas(smin, smax, n)
                                                                : schedule::exponential_sigmas(smin, smax, n);
  for (double v : s) {
    out.timesteps.push_back(std::nearbyint(schedule::sigma_to_t(v, table)));
    out.sigmas.push_back(schedule::f32(v));
  }
  out.sigmas.push_back(final_zero ? 0.0 : out.sigmas.back());
  return out;
}

Tensor data_prediction(const std::string& who, const std::string& prediction_type, const Tensor& model_output,
                       const Tensor& sample, const VP& v) {
  if (prediction_type == "epsilon") return lincomb({{1.0 / v.alpha, sample}, {-v.sigma / v.alpha, model_output}});
  if (prediction_type == "v_prediction") return lincomb({{v.alpha, sample}, {-v.sigma, model_output}});
  if (prediction_type == "sample") return model_output.as_f32().clone();
  fail(who, ": prediction_type '", prediction_type, "' is not one of epsilon, v_prediction, sample");
}

Tensor noise_prediction(const std::string& who, const std::string& prediction_type, const Tensor& model_output,
                        const Tensor& sample, const VP& v) {
  if (prediction_type == "epsilon") return model_output.as_f32().clone();
  if (prediction_type == "v_prediction") return lincomb({{v.alpha, model_output}, {v.sigma, sample}});
  if (prediction_type == "sample") {
    PIG_CHECK(v.sigma > 0, who, ": a sample prediction at σ = 0 gives no noise prediction");
    return lincomb({{1.0 / v.sigma, sample}, {-v.alpha / v.sigma, model_output}});
  }
  fail(who, ": prediction_type '", prediction_type, "' is not one of epsilon, v_prediction, sample");
}

int index_for_timestep(const std::vector<double>& timesteps, double t) {
  int first = -1;
  for (int i = 0; i < int(timesteps.size()); ++i) {
    if (timesteps[i] != t) continue;
    if (first >= 0) return i;
    first = i;
  }
  return first >= 0 ? first : int(timesteps.size()) - 1;
}

Tensor lincomb(const std::vector<std::pair<double, Tensor>>& terms) {
  PIG_CHECK(!terms.empty(), "solver lincomb: no terms");
  Tensor out = ops::scale(terms[0].second.as_f32(), float(terms[0].first));
  for (size_t i = 1; i < terms.size(); ++i) {
    PIG_CHECK(terms[i].second.shape() == out.shape(), "solver lincomb: shape ", shape_str(terms[i].second.shape()),
              " differs from ", shape_str(out.shape()));
    out = ops::add_scaled(out, terms[i].second.as_f32(), float(terms[i].first));
  }
  return out;
}

Tensor add_noise_vp(const std::string& who, const schedule::TrainSchedule& train, const std::vector<double>& timesteps,
                    const std::vector<double>& sigmas, const Tensor& original, const Tensor& noise, double t) {
  PIG_CHECK(original.shape() == noise.shape(), who, ": add_noise: noise shape ", shape_str(noise.shape()),
            " differs from the sample's ", shape_str(original.shape()));
  for (double s : timesteps)
    if (s == t) {
      const VP v = vp(sigmas.at(index_for_timestep(timesteps, t)));
      return lincomb({{v.alpha, original}, {v.sigma, noise}});
    }
  PIG_CHECK(t == std::floor(t) && t >= 0 && t < train.size(), who, ": add_noise: timestep ", t,
            " is neither in the schedule nor a training step in [0, ", train.size(), ")");
  const int ti = int(t);
  return lincomb({{train.sqrt_alpha_prod(ti), original}, {train.sqrt_one_minus_alpha_prod(ti), noise}});
}

SchedulerConfig with_default_extra(const SchedulerConfig& c, const std::string& key, const std::string& json_value) {
  if (schedule::extra_has(c, key)) return c;
  SchedulerConfig out = c;
  auto j = nlohmann::json::parse(c.json_extra.empty() ? std::string("{}") : c.json_extra);
  j[key] = nlohmann::json::parse(json_value);
  out.json_extra = j.dump();
  return out;
}

SolverScheduler::SolverScheduler(const SchedulerConfig& c, const char* who)
    : who_(who), cfg_(c), train_(train_schedule(c)), spacing_(sigma_spacing_from_config(who, c)) {}

void SolverScheduler::check_timestep_spacing() const {
  (void)solver_timesteps(who_, cfg_.timestep_spacing, cfg_.num_train_timesteps, cfg_.num_train_timesteps, 1,
                         cfg_.steps_offset);
}

void SolverScheduler::build_table(int n, const std::string& timestep_spacing, int last_timestep, int steps_offset,
                                  bool final_zero) {
  auto ts = solver_timesteps(who_, timestep_spacing, cfg_.num_train_timesteps, last_timestep, n, steps_offset);
  auto table = solver_table(train_, std::move(ts), n, spacing_, final_zero);
  timesteps_ = std::move(table.timesteps);
  sigmas_ = std::move(table.sigmas);
  step_index_ = -1;
}

void SolverScheduler::begin_step(const Tensor& model_output, const Tensor& sample, double t, size_t calls) {
  PIG_CHECK(!timesteps_.empty(), who_, ": step() called before set_timesteps()");
  if (step_index_ < 0) step_index_ = index_for_timestep(timesteps_, t);
  PIG_CHECK(size_t(step_index_) < calls, who_, ": step() called more often than the ", calls,
            " timesteps of set_timesteps()");
  PIG_CHECK(model_output.shape() == sample.shape(), who_, ": model output shape ", shape_str(model_output.shape()),
            " differs from the sample's ", shape_str(sample.shape()));
}

Tensor SolverScheduler::add_noise(const Tensor& original, const Tensor& noise, double t) const {
  PIG_CHECK(!timesteps_.empty(), who_, ": add_noise() called before set_timesteps()");
  return add_noise_vp(who_, train_, timesteps_, sigmas_, original, noise, t);
}

}  // namespace pigment::solver
