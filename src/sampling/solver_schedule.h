// What the exponential-integrator solvers (DPM-Solver++ multistep and single-step, UniPC, DEIS) share, as
// diffusers 0.25 builds it: their timestep spacing (which differs from DDIM's), the σ table after set_timesteps,
// the VP view (α, σ, λ) of a σ-space sigma, model output → data / noise prediction, the first-step index lookup,
// and linear combinations of tensors written with the op set.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "sampling/noise_schedule.h"
#include "sampling/scheduler.h"

namespace pigment::solver {

// The training schedule of a config; with rescale_betas_zero_snr the last ᾱ (0) becomes 2^-24 so that its σ stays
// finite, as diffusers' solvers do.
schedule::TrainSchedule train_schedule(const SchedulerConfig& c);

// The VP quantities of a σ-space sigma s (s² = (1 - ᾱ) / ᾱ): α = 1/√(s²+1), σ = s·α, λ = log α - log σ.
// s = 0 gives α = 1, σ = 0, λ = +∞ (a final step to the clean sample).
struct VP {
  double alpha, sigma, lambda;
};
VP vp(double s);

// The solvers' timesteps, descending, integers as doubles:
//   linspace: linspace(0, last_timestep - 1, n + 1).round()[::-1][:-1]
//   leading:  (arange(n + 1) * (last_timestep // (n + 1)))[::-1][:-1] + steps_offset
//   trailing: round(arange(last_timestep, 0, -T / n)) - 1
// Rounding is half-to-even, as numpy's. An unknown spacing or n outside [1, T] throws naming `who`.
std::vector<double> solver_timesteps(const std::string& who, const std::string& spacing, int num_train_timesteps,
                                     int last_timestep, int n, int steps_offset);

// The last timestep the solvers may start from: T minus the number of training steps whose λ lies below
// lambda_min_clipped (diffusers clips λ for the cosine schedule; -inf keeps all).
int clipped_last_timestep(const schedule::TrainSchedule& train, double lambda_min_clipped);

// How the σ table is built after set_timesteps.
enum class SigmaSpacing {
  interpolated,  // σ interpolated at each timestep from the training table
  karras,        // Karras et al. ρ = 7 between the training σ_min and σ_max; timesteps = round(σ→t)
  exponential,   // log-linear between σ_max and σ_min (use_lu_lambdas / use_exponential_sigmas)
};
struct SolverTable {
  std::vector<double> timesteps;  // n entries
  std::vector<double> sigmas;     // n + 1 entries, float32 values
};
// The n + 1 sigmas for `timesteps`. The last entry is, as in diffusers 0.25, σ at t = 0 for interpolated tables
// and a repeat of the last σ for Karras / exponential ones; `final_zero` makes it 0 instead.
SolverTable solver_table(const schedule::TrainSchedule& train, std::vector<double> timesteps, int n,
                         SigmaSpacing spacing, bool final_zero);
// SigmaSpacing from the config flags (use_karras_sigmas, use_exponential_sigmas, and use_lu_lambdas in
// json_extra); more than one set throws naming `who`.
SigmaSpacing sigma_spacing_from_config(const std::string& who, const SchedulerConfig& c);

// Data prediction x0 from a model output at VP point v: epsilon (x - σ·out)/α, v_prediction α·x - σ·out,
// sample out. Anything else throws naming `who`.
Tensor data_prediction(const std::string& who, const std::string& prediction_type, const Tensor& model_output,
                       const Tensor& sample, const VP& v);
// Noise prediction ε: epsilon out, v_prediction α·out + σ·x, sample (x - α·out)/σ.
Tensor noise_prediction(const std::string& who, const std::string& prediction_type, const Tensor& model_output,
                        const Tensor& sample, const VP& v);

// diffusers' index_for_timestep for the first step: the position of t in the schedule, the second one when t
// occurs more than once, and the last index when it does not occur.
int index_for_timestep(const std::vector<double>& timesteps, double t);

// Σ cᵢ·xᵢ over tensors of one shape (the coefficients are rounded to float32 as torch scalars would be).
Tensor lincomb(const std::vector<std::pair<double, Tensor>>& terms);

// x_t = α·x0 + σ·noise at the σ of timestep t in `timesteps` / `sigmas` (diffusers' σ-based add_noise); a t that
// is not in the schedule uses the training ᾱ at integer t. Anything else throws naming `who`.
Tensor add_noise_vp(const std::string& who, const schedule::TrainSchedule& train, const std::vector<double>& timesteps,
                    const std::vector<double>& sigmas, const Tensor& original, const Tensor& noise, double t);

// A copy of c with json_extra[key] = the JSON text `json_value`, unless the config already sets key (pigment's
// sampler names preset options such as algorithm_type this way).
SchedulerConfig with_default_extra(const SchedulerConfig& c, const std::string& key, const std::string& json_value);

// What the solvers keep alike: the config and its training schedule, the σ spacing of the table, the position in
// the schedule, the checks at the top of step() and the σ-based add_noise. Each solver adds its history and update.
class SolverScheduler : public Scheduler {
 public:
  Tensor add_noise(const Tensor& original, const Tensor& noise, double t) const override;

 protected:
  SolverScheduler(const SchedulerConfig& c, const char* who);
  // Refuses an unknown timestep_spacing at construction rather than at set_timesteps.
  void check_timestep_spacing() const;
  // timesteps_ / sigmas_ for n steps (solver_timesteps, then solver_table), and the position reset.
  void build_table(int n, const std::string& timestep_spacing, int last_timestep, int steps_offset, bool final_zero);
  // The checks of step(): set_timesteps was called, t's place found on the first call, at most `calls` calls, the
  // model output shaped as the sample.
  void begin_step(const Tensor& model_output, const Tensor& sample, double t, size_t calls);
  VP at(int offset) const { return vp(sigmas_[step_index_ + offset]); }

  const char* who_;
  SchedulerConfig cfg_;
  schedule::TrainSchedule train_;
  SigmaSpacing spacing_;
  int step_index_ = -1;  // -1 until the first step() finds its place in the schedule
};

}  // namespace pigment::solver
