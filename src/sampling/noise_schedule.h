// Noise schedules shared by every sampler: the training betas / ᾱ (as diffusers builds them in float32), the
// inference timestep spacings, sigma tables (Karras, exponential, polyexponential) and σ↔t interpolation,
// add-noise, prediction-type conversions and the img2img timestep truncation.
// Values that diffusers keeps in float32 tensors are float here; values it keeps in numpy float64 are double.
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"
#include "sampling/scheduler.h"

namespace pigment::schedule {

// Rounds to float32 (diffusers stores most tables as float32 tensors).
inline double f32(double v) { return double(float(v)); }

// ---- training schedule ----
// betas for "linear" | "scaled_linear" | "squaredcos_cap_v2" over n training steps (float32, as diffusers).
std::vector<float> make_betas(const std::string& beta_schedule, int n, double beta_start, double beta_end);
// Zero-terminal-SNR rescale of betas (Lin et al. 2023, diffusers rescale_zero_terminal_snr).
std::vector<float> rescale_zero_terminal_snr(const std::vector<float>& betas);
// cumprod(1 - betas) as torch.cumprod on CPU (double accumulator, float32 outputs).
std::vector<float> alphas_cumprod_from_betas(const std::vector<float>& betas);

// The training schedule of a config: beta_schedule, beta_start/end, num_train_timesteps,
// rescale_betas_zero_snr, and "trained_betas" from json_extra when present. With zero terminal SNR the last ᾱ is
// exactly 0; σ-space samplers set it to 2^-24 themselves (as diffusers' Euler does) before building σ.
struct TrainSchedule {
  std::vector<float> betas, alphas, alphas_cumprod;
  static TrainSchedule from_config(const SchedulerConfig& c);
  int size() const { return int(betas.size()); }
  // ((1 - ᾱ) / ᾱ)^½ per training step, float32 (diffusers' sigma table before interpolation).
  std::vector<float> sigmas() const;
  // ᾱ^½ and (1 - ᾱ)^½ at an integer training step (float32 math, as diffusers' add_noise).
  float sqrt_alpha_prod(int t) const;
  float sqrt_one_minus_alpha_prod(int t) const;
};

// ---- inference timesteps ----
// The common diffusers spacing (DDIM, DDPM, Euler family), descending, n values:
//   leading:  (arange(n) * (T // n)).round()[::-1] + steps_offset
//   trailing: round(arange(T, 0, -T / n)) - 1
//   linspace: linspace(0, T - 1, n)[::-1], rounded when round_linspace (DDIM/DDPM) and left as floats: float32
//             (Euler's dtype=np.float32) or, with f32_linspace false, float64 (DPMSolverSDEScheduler's dtype=float)
// An unknown spacing or n outside [1, T] throws.
std::vector<double> spaced_timesteps(const std::string& spacing, int num_train_timesteps, int n, int steps_offset,
                                     bool round_linspace, bool f32_linspace = true);

// np.interp(x, arange(len(table)), table) for each x (float64 result).
std::vector<double> interp_table(const std::vector<double>& xs, const std::vector<float>& table);
// diffusers _sigma_to_t: the (fractional) training timestep of sigma by log-sigma interpolation in the training
// sigma table (ascending in t).
double sigma_to_t(double sigma, const std::vector<float>& train_sigmas);
std::vector<double> sigmas_to_t(const std::vector<double>& sigmas, const std::vector<float>& train_sigmas);
// The same in float32 arithmetic, as diffusers computes it when σ and the log-σ table are torch tensors (KDPM2's
// interpolated timesteps).
float sigma_to_t_f32(float sigma, const std::vector<float>& train_sigmas);
// exp(lerp(log a, log b, 0.5)) in float32 as torch computes it (weight 0.5 takes the "from the end" branch): the
// geometric-mean σ the DPM2 samplers evaluate their midpoint at.
float log_midpoint(float a, float b);

// Karras et al. 2022 schedule, n values from sigma_max down to sigma_min (rho 7). sigma_min > sigma_max or
// non-positive sigmas throw.
std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int n, double rho = 7.0);
// Log-linear from sigma_max to sigma_min (k-diffusion get_sigmas_exponential), n values.
std::vector<double> exponential_sigmas(double sigma_min, double sigma_max, int n);
// k-diffusion get_sigmas_polyexponential, n values (no trailing zero).
std::vector<double> polyexponential_sigmas(double sigma_min, double sigma_max, int n, double rho = 1.0);

// ---- noise and predictions ----
// x_t = ᾱ_t^½ x0 + (1 - ᾱ_t)^½ noise at integer training step t (DDPM / DDIM / PNDM add_noise).
Tensor add_noise_alpha(const TrainSchedule& s, const Tensor& original, const Tensor& noise, int t);
// x = x0 + σ noise (Euler-family add_noise; the latent scale is σ-space).
Tensor add_noise_sigma(const Tensor& original, const Tensor& noise, double sigma);

// Model output → (x0, eps) for a sample x_t = α x0 + σ eps with α = ᾱ^½, σ = (1 - ᾱ)^½.
// prediction_type: "epsilon" | "v_prediction" | "sample"; anything else throws.
struct X0Eps {
  Tensor x0, eps;
};
X0Eps alpha_prediction(const std::string& prediction_type, const Tensor& model_output, const Tensor& sample,
                       float alpha_prod_t);
// Model output → x0 for a σ-space sample (Euler family: the model saw sample / (σ² + 1)^½).
Tensor sigma_prediction_x0(const std::string& prediction_type, const Tensor& model_output, const Tensor& sample,
                           double sigma);

// ---- small tensor helpers (float32, same shapes) ----
// a·x + b·y with float32 coefficients.
Tensor lincomb(float a, const Tensor& x, float b, const Tensor& y);
// clamp(x, -r, r) elementwise (clip_sample).
Tensor clamp_abs(const Tensor& x, float r);
// Dynamic thresholding of a predicted x0 (Saharia et al. 2022, Imagen; diffusers _threshold_sample): per batch
// element, s = clamp(quantile(|x|, ratio), 1, max_value) and x → clamp(x, -s, s) / s.
Tensor dynamic_threshold(const Tensor& x, double ratio, double max_value);
// The x0 clipping a config asks for: "thresholding" (with dynamic_thresholding_ratio, sample_max_value from
// json_extra) takes precedence over clip_sample; neither returns x0 as it is.
Tensor clip_x0(const SchedulerConfig& c, const Tensor& x0);

// ---- config extras (json_extra) ----
bool extra_has(const SchedulerConfig& c, const std::string& key);
double extra_number(const SchedulerConfig& c, const std::string& key, double fallback);
bool extra_bool(const SchedulerConfig& c, const std::string& key, bool fallback);
std::string extra_string(const SchedulerConfig& c, const std::string& key, const std::string& fallback);

// ---- img2img ----
// diffusers' img2img get_timesteps: init = min(int(N·strength), N); t_start = max(N - init, 0);
// timesteps[t_start·order:]. `start_timestep` is the first kept timestep (for add_noise); with strength 0 the
// list is empty. strength outside [0, 1] throws.
struct Img2ImgTimesteps {
  std::vector<double> timesteps;
  int t_start = 0;             // in sampling steps
  int num_inference_steps = 0;  // N - t_start
  double start_timestep = 0;
};
Img2ImgTimesteps img2img_timesteps(const Scheduler& s, int num_inference_steps, double strength);

}  // namespace pigment::schedule
