#include "sampling/noise_schedule.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "ops/ops.h"

namespace pigment::schedule {

namespace {

// torch.linspace(start, end, n, dtype=float32) on the CPU (AVX2 build) to the bit: the first half counted from
// start and the second half from end; in blocks of 8, each block's base is a fused multiply-add and its lanes add
// k·step to it; the tail after the last pair of blocks is scalar. This exactness matters: the betas feed ᾱ, whose
// rounding moves KDPM2's interpolated timesteps by more than their tolerance.
std::vector<float> torch_linspace_f32(float start, float end, int n) {
  std::vector<float> v(n);
  if (n == 1) {
    v[0] = start;
    return v;
  }
  const float step = (end - start) / float(n - 1);
  const int halfway = n / 2;
  auto at = [&](int i) {
    return i < halfway ? std::fma(step, float(i), start) : std::fma(-step, float(n - i - 1), end);
  };
  constexpr int kLanes = 8;
  int i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes)
    for (int b = i; b < i + 2 * kLanes; b += kLanes) {
      const float base = at(b);
      for (int k = 0; k < kLanes; ++k) v[b + k] = base + float(k) * step;
    }
  for (; i < n; ++i) v[i] = at(i);
  return v;
}

// numpy.linspace(start, stop, n) in float64.
std::vector<double> np_linspace(double start, double stop, int n) {
  std::vector<double> v(n);
  if (n == 1) {
    v[0] = start;
    return v;
  }
  const double step = (stop - start) / double(n - 1);
  for (int i = 0; i < n; ++i) v[i] = double(i) * step + start;
  v[n - 1] = stop;
  return v;
}

// numpy.arange(start, stop, step) for floats: length ceil((stop - start) / step), values start + i·step.
std::vector<double> np_arange(double start, double stop, double step) {
  const double len = std::ceil((stop - start) / step);
  std::vector<double> v;
  for (int64_t i = 0; i < int64_t(std::max(0.0, len)); ++i) v.push_back(start + double(i) * step);
  return v;
}

nlohmann::json extras(const SchedulerConfig& c) {
  try {
    return nlohmann::json::parse(c.json_extra);
  } catch (const std::exception&) {
    fail("scheduler config: json_extra is not valid JSON");
  }
}

}  // namespace

// ---- training schedule ----

std::vector<float> make_betas(const std::string& beta_schedule, int n, double beta_start, double beta_end) {
  PIG_CHECK(n >= 1, "scheduler config: num_train_timesteps must be at least 1, got ", n);
  if (beta_schedule == "linear") return torch_linspace_f32(float(beta_start), float(beta_end), n);
  if (beta_schedule == "scaled_linear") {
    // linspace of the square roots in float32, then squared in float32.
    auto v = torch_linspace_f32(float(std::sqrt(beta_start)), float(std::sqrt(beta_end)), n);
    for (auto& b : v) b = b * b;
    return v;
  }
  if (beta_schedule == "squaredcos_cap_v2") {
    // Nichol & Dhariwal cosine ᾱ(t), betas capped at 0.999, computed in float64 then stored as float32.
    auto alpha_bar = [](double t) {
      const double c = std::cos((t + 0.008) / 1.008 * M_PI / 2);
      return c * c;
    };
    std::vector<float> v(n);
    for (int i = 0; i < n; ++i) {
      const double t1 = double(i) / n, t2 = double(i + 1) / n;
      v[i] = float(std::min(1 - alpha_bar(t2) / alpha_bar(t1), 0.999));
    }
    return v;
  }
  fail("scheduler config: beta_schedule '", beta_schedule, "' is not one of linear, scaled_linear, squaredcos_cap_v2");
}

std::vector<float> alphas_cumprod_from_betas(const std::vector<float>& betas) {
  std::vector<float> out(betas.size());
  double acc = 1.0;
  for (size_t i = 0; i < betas.size(); ++i) {
    acc *= double(1.0f - betas[i]);
    out[i] = float(acc);
  }
  return out;
}

std::vector<float> rescale_zero_terminal_snr(const std::vector<float>& betas) {
  PIG_CHECK(betas.size() >= 2, "rescale_betas_zero_snr needs at least 2 training steps");
  auto ac = alphas_cumprod_from_betas(betas);
  std::vector<float> s(ac.size());
  for (size_t i = 0; i < ac.size(); ++i) s[i] = std::sqrt(ac[i]);
  const float a0 = s.front(), aT = s.back();
  const float k = a0 / (a0 - aT);
  for (auto& v : s) {
    v = v - aT;
    v = v * k;
  }
  std::vector<float> bar(s.size());
  for (size_t i = 0; i < s.size(); ++i) bar[i] = s[i] * s[i];
  std::vector<float> out(betas.size());
  out[0] = 1.0f - bar[0];
  for (size_t i = 1; i < bar.size(); ++i) out[i] = 1.0f - bar[i] / bar[i - 1];
  return out;
}

TrainSchedule TrainSchedule::from_config(const SchedulerConfig& c) {
  TrainSchedule s;
  auto ex = extras(c);
  if (ex.contains("trained_betas") && ex["trained_betas"].is_array()) {
    for (const auto& b : ex["trained_betas"]) {
      PIG_CHECK(b.is_number(), "scheduler config: trained_betas must be a list of numbers");
      s.betas.push_back(b.get<float>());
    }
    PIG_CHECK(!s.betas.empty(), "scheduler config: trained_betas is empty");
  } else {
    s.betas = make_betas(c.beta_schedule, c.num_train_timesteps, c.beta_start, c.beta_end);
  }
  if (c.rescale_betas_zero_snr) s.betas = rescale_zero_terminal_snr(s.betas);
  s.alphas.resize(s.betas.size());
  for (size_t i = 0; i < s.betas.size(); ++i) s.alphas[i] = 1.0f - s.betas[i];
  s.alphas_cumprod = alphas_cumprod_from_betas(s.betas);
  return s;
}

std::vector<float> TrainSchedule::sigmas() const {
  std::vector<float> v(alphas_cumprod.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const float a = alphas_cumprod[i];
    v[i] = std::sqrt((1.0f - a) / a);
  }
  return v;
}

float TrainSchedule::sqrt_alpha_prod(int t) const {
  PIG_CHECK(t >= 0 && t < size(), "timestep ", t, " is outside the training schedule [0, ", size(), ")");
  return std::sqrt(alphas_cumprod[t]);
}

float TrainSchedule::sqrt_one_minus_alpha_prod(int t) const {
  PIG_CHECK(t >= 0 && t < size(), "timestep ", t, " is outside the training schedule [0, ", size(), ")");
  return std::sqrt(1.0f - alphas_cumprod[t]);
}

// ---- inference timesteps ----

std::vector<double> spaced_timesteps(const std::string& spacing, int num_train_timesteps, int n, int steps_offset,
                                     bool round_linspace, bool f32_linspace) {
  const int T = num_train_timesteps;
  PIG_CHECK(n >= 1 && n <= T, "num_inference_steps must be in [1, ", T, "] (num_train_timesteps), got ", n);
  std::vector<double> ts;
  if (spacing == "leading") {
    const int ratio = T / n;
    for (int i = n - 1; i >= 0; --i) ts.push_back(double(int64_t(i) * ratio + steps_offset));
  } else if (spacing == "trailing") {
    for (double v : np_arange(T, 0, -double(T) / n)) ts.push_back(std::nearbyint(v) - 1);
  } else if (spacing == "linspace") {
    auto v = np_linspace(0, T - 1, n);
    for (auto it = v.rbegin(); it != v.rend(); ++it) ts.push_back(round_linspace ? std::nearbyint(*it) : f32_linspace ? f32(*it) : *it);
  } else {
    fail("scheduler config: timestep_spacing '", spacing, "' is not one of leading, trailing, linspace");
  }
  return ts;
}

std::vector<double> interp_table(const std::vector<double>& xs, const std::vector<float>& table) {
  PIG_CHECK(!table.empty(), "interp_table: empty table");
  const int64_t n = int64_t(table.size());
  std::vector<double> out;
  out.reserve(xs.size());
  for (double x : xs) {
    if (std::isnan(x)) {
      out.push_back(x);
    } else if (x <= 0) {
      out.push_back(table[0]);
    } else if (x >= double(n - 1)) {
      out.push_back(table[n - 1]);
    } else {
      const int64_t j = int64_t(std::floor(x));
      const double slope = double(table[j + 1]) - double(table[j]);
      out.push_back(slope * (x - double(j)) + double(table[j]));
    }
  }
  return out;
}

double sigma_to_t(double sigma, const std::vector<float>& train_sigmas) {
  const int64_t n = int64_t(train_sigmas.size());
  PIG_CHECK(n >= 2, "sigma_to_t: the sigma table needs at least 2 entries");
  const double log_sigma = std::log(std::max(sigma, 1e-10));
  // Last index whose log σ is ≤ log_sigma (0 when none), kept below the top so that it has an upper neighbour.
  int64_t low = 0;
  for (int64_t i = 0; i < n; ++i)
    if (log_sigma - double(float(std::log(double(train_sigmas[i])))) >= 0) low = i;
  low = std::min(low, n - 2);
  const double lo = float(std::log(double(train_sigmas[low])));
  const double hi = float(std::log(double(train_sigmas[low + 1])));
  double w = (lo - log_sigma) / (lo - hi);
  w = std::clamp(w, 0.0, 1.0);
  return (1 - w) * double(low) + w * double(low + 1);
}

float sigma_to_t_f32(float sigma, const std::vector<float>& train_sigmas) {
  const int64_t n = int64_t(train_sigmas.size());
  PIG_CHECK(n >= 2, "sigma_to_t: the sigma table needs at least 2 entries");
  const float log_sigma = float(std::log(std::max(double(sigma), 1e-10)));
  auto log_at = [&](int64_t i) { return float(std::log(double(train_sigmas[i]))); };
  int64_t low = 0;
  for (int64_t i = 0; i < n; ++i)
    if (log_sigma - log_at(i) >= 0.0f) low = i;
  low = std::min(low, n - 2);
  const float lo = log_at(low), hi = log_at(low + 1);
  float w = (lo - log_sigma) / (lo - hi);
  w = std::clamp(w, 0.0f, 1.0f);
  return (1.0f - w) * float(low) + w * float(low + 1);
}

std::vector<double> sigmas_to_t(const std::vector<double>& sigmas, const std::vector<float>& train_sigmas) {
  std::vector<double> t;
  t.reserve(sigmas.size());
  for (double s : sigmas) t.push_back(sigma_to_t(s, train_sigmas));
  return t;
}

std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int n, double rho) {
  PIG_CHECK(n >= 1, "Karras sigmas: need at least 1 step, got ", n);
  PIG_CHECK(sigma_min > 0 && sigma_max > 0, "Karras sigmas: sigma_min and sigma_max must be positive (got ", sigma_min,
            ", ", sigma_max, ")");
  PIG_CHECK(sigma_min <= sigma_max, "Karras sigmas: sigma_min (", sigma_min, ") is larger than sigma_max (", sigma_max,
            ")");
  const auto ramp = np_linspace(0, 1, n);
  const double min_inv = std::pow(sigma_min, 1 / rho), max_inv = std::pow(sigma_max, 1 / rho);
  std::vector<double> v(n);
  for (int i = 0; i < n; ++i) v[i] = std::pow(max_inv + ramp[i] * (min_inv - max_inv), rho);
  return v;
}

std::vector<double> exponential_sigmas(double sigma_min, double sigma_max, int n) {
  PIG_CHECK(n >= 1, "exponential sigmas: need at least 1 step, got ", n);
  PIG_CHECK(sigma_min > 0 && sigma_max > 0 && sigma_min <= sigma_max,
            "exponential sigmas: need 0 < sigma_min <= sigma_max (got ", sigma_min, ", ", sigma_max, ")");
  auto v = np_linspace(std::log(sigma_max), std::log(sigma_min), n);
  for (auto& x : v) x = std::exp(x);
  return v;
}

std::vector<double> polyexponential_sigmas(double sigma_min, double sigma_max, int n, double rho) {
  PIG_CHECK(n >= 1, "polyexponential sigmas: need at least 1 step, got ", n);
  PIG_CHECK(sigma_min > 0 && sigma_max > 0 && sigma_min <= sigma_max,
            "polyexponential sigmas: need 0 < sigma_min <= sigma_max (got ", sigma_min, ", ", sigma_max, ")");
  auto ramp = np_linspace(1, 0, n);
  const double lmin = std::log(sigma_min), lmax = std::log(sigma_max);
  std::vector<double> v(n);
  for (int i = 0; i < n; ++i) v[i] = std::exp(std::pow(ramp[i], rho) * (lmax - lmin) + lmin);
  return v;
}

// ---- noise and predictions ----

Tensor add_noise_alpha(const TrainSchedule& s, const Tensor& original, const Tensor& noise, int t) {
  PIG_CHECK(original.shape() == noise.shape(), "add_noise: latent shape ", shape_str(original.shape()),
            " and noise shape ", shape_str(noise.shape()), " differ");
  return lincomb(s.sqrt_alpha_prod(t), original, s.sqrt_one_minus_alpha_prod(t), noise);
}

Tensor add_noise_sigma(const Tensor& original, const Tensor& noise, double sigma) {
  PIG_CHECK(original.shape() == noise.shape(), "add_noise: latent shape ", shape_str(original.shape()),
            " and noise shape ", shape_str(noise.shape()), " differ");
  return ops::add(original.as_f32(), ops::scale(noise.as_f32(), float(sigma)));
}

X0Eps alpha_prediction(const std::string& prediction_type, const Tensor& model_output, const Tensor& sample,
                       float alpha_prod_t) {
  const float beta_prod_t = 1.0f - alpha_prod_t;
  const float a = std::sqrt(alpha_prod_t), b = std::sqrt(beta_prod_t);
  X0Eps r;
  if (prediction_type == "epsilon") {
    r.x0 = ops::scale(ops::add_scaled(sample.as_f32(), model_output.as_f32(), -b), 1.0f / a);
    r.eps = model_output.as_f32();
  } else if (prediction_type == "sample") {
    r.x0 = model_output.as_f32();
    r.eps = ops::scale(ops::add_scaled(sample.as_f32(), r.x0, -a), 1.0f / b);
  } else if (prediction_type == "v_prediction") {
    r.x0 = lincomb(a, sample, -b, model_output);
    r.eps = lincomb(a, model_output, b, sample);
  } else {
    fail("scheduler config: prediction_type '", prediction_type, "' is not one of epsilon, v_prediction, sample");
  }
  return r;
}

Tensor sigma_prediction_x0(const std::string& prediction_type, const Tensor& model_output, const Tensor& sample,
                           double sigma) {
  const float s = float(sigma);
  if (prediction_type == "epsilon") return ops::add_scaled(sample.as_f32(), model_output.as_f32(), -s);
  if (prediction_type == "v_prediction") {
    const float s2 = s * s + 1.0f;
    return lincomb(-s / std::sqrt(s2), model_output, 1.0f / s2, sample);
  }
  if (prediction_type == "sample") return model_output.as_f32();
  fail("scheduler config: prediction_type '", prediction_type, "' is not one of epsilon, v_prediction, sample");
}

Tensor lincomb(float a, const Tensor& x, float b, const Tensor& y) {
  PIG_CHECK(x.shape() == y.shape(), "lincomb: shapes ", shape_str(x.shape()), " and ", shape_str(y.shape()), " differ");
  return ops::add(ops::scale(x.as_f32(), a), ops::scale(y.as_f32(), b));
}

Tensor clamp_abs(const Tensor& x, float r) {
  Tensor y = x.as_f32().clone();
  float* p = y.f32();
  for (int64_t k = 0; k < y.numel(); ++k) p[k] = std::min(std::max(p[k], -r), r);
  return y;
}

Tensor dynamic_threshold(const Tensor& x, double ratio, double max_value) {
  PIG_CHECK(x.ndim() >= 2 && x.dim(0) > 0, "dynamic thresholding: expected a batched sample, got shape ",
            shape_str(x.shape()));
  PIG_CHECK(ratio >= 0 && ratio <= 1, "dynamic_thresholding_ratio must be in [0, 1], got ", ratio);
  Tensor y = x.as_f32().clone();
  const int64_t batch = y.dim(0), per = y.numel() / batch;
  float* p = y.f32();
  std::vector<float> mags(static_cast<size_t>(per));
  for (int64_t b = 0; b < batch; ++b) {
    float* row = p + b * per;
    for (int64_t i = 0; i < per; ++i) mags[size_t(i)] = std::fabs(row[i]);
    std::sort(mags.begin(), mags.end());
    // torch.quantile's linear interpolation between the two nearest ranks.
    const double pos = ratio * double(per - 1);
    const int64_t lo = int64_t(std::floor(pos)), hi = std::min(lo + 1, per - 1);
    const float q = mags[size_t(lo)] + float(pos - double(lo)) * (mags[size_t(hi)] - mags[size_t(lo)]);
    const float s = std::min(std::max(q, 1.0f), float(max_value));
    for (int64_t i = 0; i < per; ++i) row[i] = std::min(std::max(row[i], -s), s) / s;
  }
  return y;
}

Tensor clip_x0(const SchedulerConfig& c, const Tensor& x0) {
  if (extra_bool(c, "thresholding", false))
    return dynamic_threshold(x0, extra_number(c, "dynamic_thresholding_ratio", 0.995),
                             extra_number(c, "sample_max_value", 1.0));
  if (c.clip_sample) return clamp_abs(x0, float(c.clip_sample_range));
  return x0;
}

// ---- config extras ----

bool extra_has(const SchedulerConfig& c, const std::string& key) {
  auto ex = extras(c);
  return ex.contains(key) && !ex[key].is_null();
}

double extra_number(const SchedulerConfig& c, const std::string& key, double fallback) {
  auto ex = extras(c);
  if (!ex.contains(key) || ex[key].is_null()) return fallback;
  PIG_CHECK(ex[key].is_number(), "scheduler config: '", key, "' must be a number, got ", ex[key].dump());
  return ex[key].get<double>();
}

bool extra_bool(const SchedulerConfig& c, const std::string& key, bool fallback) {
  auto ex = extras(c);
  if (!ex.contains(key) || ex[key].is_null()) return fallback;
  PIG_CHECK(ex[key].is_boolean(), "scheduler config: '", key, "' must be true or false, got ", ex[key].dump());
  return ex[key].get<bool>();
}

std::string extra_string(const SchedulerConfig& c, const std::string& key, const std::string& fallback) {
  auto ex = extras(c);
  if (!ex.contains(key) || ex[key].is_null()) return fallback;
  PIG_CHECK(ex[key].is_string(), "scheduler config: '", key, "' must be a string, got ", ex[key].dump());
  return ex[key].get<std::string>();
}

// ---- img2img ----

Img2ImgTimesteps img2img_timesteps(const Scheduler& s, int num_inference_steps, double strength) {
  PIG_CHECK(strength >= 0 && strength <= 1, "img2img strength must be in [0, 1], got ", strength);
  PIG_CHECK(num_inference_steps >= 1, "img2img: num_inference_steps must be at least 1, got ", num_inference_steps);
  const int n = num_inference_steps;
  const int init = std::min(int(double(n) * strength), n);
  Img2ImgTimesteps r;
  r.t_start = std::max(n - init, 0);
  r.num_inference_steps = n - r.t_start;
  const auto& all = s.timesteps();
  const size_t from = size_t(r.t_start) * size_t(s.order());
  if (from < all.size()) r.timesteps.assign(all.begin() + int64_t(from), all.end());
  if (!r.timesteps.empty()) r.start_timestep = r.timesteps.front();
  return r;
}

float log_midpoint(float a, float b) {
  const float la = std::log(a), lb = std::log(b);
  return std::exp(lb - (lb - la) * 0.5f);
}

}  // namespace pigment::schedule
