#include "sampling/two_stage_sampler.h"

#include <algorithm>
#include <cmath>

#include "ops/ops.h"
#include "sampling/solver_schedule.h"

namespace pigment {

TwoStageSampler::TwoStageSampler(const SchedulerConfig& c, std::string who) : SigmaScheduler(c, std::move(who)) {
  linspace_f64_ = true;  // DPMSolverSDEScheduler's np.linspace(..., dtype=float)
  (void)schedule::spaced_timesteps(c.timestep_spacing, c.num_train_timesteps, 1, c.steps_offset, false);
}

void TwoStageSampler::set_timesteps(int n) {
  const StepTable st = step_table(n);
  bounds_ = st.sigmas;
  bounds_.push_back(0.0);
  timesteps_.clear();
  sigmas_.clear();
  calls_.clear();
  mids_.assign(n, 0.0);
  call_sigmas_.clear();
  for (int i = 0; i < n; ++i) {
    timesteps_.push_back(st.timesteps[i]);
    sigmas_.push_back(bounds_[i]);
    call_sigmas_.push_back(bounds_[i]);
    calls_.push_back({i, false});
    mids_[i] = midpoint_sigma(bounds_[i], bounds_[i + 1]);
    if (mids_[i] > 0) {
      timesteps_.push_back(schedule::sigma_to_t(mids_[i], train_sigmas_));
      sigmas_.push_back(bounds_[i + 1]);  // diffusers' table: the step's end σ, repeated for its next call
      call_sigmas_.push_back(mids_[i]);
      calls_.push_back({i, true});
    }
  }
  sigmas_.push_back(0.0);
  reset_steps();
  x_ = d_ = Tensor();
}

Tensor TwoStageSampler::scale_model_input(const Tensor& sample, double t) {
  return scale_by_sigma(sample, call_sigmas_[step_index(t)]);
}

Tensor TwoStageSampler::step(const Tensor& model_output, double t, const Tensor& sample, Generator* gen) {
  const int k = step_index(t);
  const Call c = calls_[k];
  PIG_CHECK(k > 0 || !c.second, who_, ": sampling cannot start at the midpoint timestep ", t);
  PIG_CHECK(model_output.shape() == sample.shape(), who_, ": model output shape ", shape_str(model_output.shape()),
            " differs from the sample's ", shape_str(sample.shape()));
  const Tensor x = sample.as_f32();
  const Tensor d = predict_x0(model_output, x, call_sigmas_[k]);
  const double s = bounds_[c.step], s_next = bounds_[c.step + 1], s_mid = mids_[c.step];
  Tensor out;
  if (c.second) {
    out = second_stage(x_, d_, d, s, s_mid, s_next, gen);
    x_ = d_ = Tensor();
  } else if (s_mid > 0) {
    x_ = x;
    d_ = d;
    out = first_stage(x, d, s, s_mid, s_next, gen);
  } else {
    out = single_call(x, d, s, s_next, gen);
  }
  next_step();
  return out;
}

std::pair<double, double> TwoStageSampler::ancestral_step(double s, double s_next, double eta) {
  if (eta == 0 || s_next == 0) return {s_next, 0.0};
  const double up = std::min(s_next, eta * std::sqrt(s_next * s_next * (s * s - s_next * s_next) / (s * s)));
  return {std::sqrt(s_next * s_next - up * up), up};
}

Tensor TwoStageSampler::add_fresh_noise(const Tensor& x, Generator* gen, double scale) const {
  PIG_CHECK(gen != nullptr || scale == 0, who_, ": this step adds fresh noise and needs a generator");
  if (gen == nullptr) return x;
  return ops::add_scaled(x, gen->randn(x.shape()), float(scale));
}

Tensor TwoStageSampler::step_to(const Tensor& x, const Tensor& d, double s, double to) {
  return solver::lincomb({{to / s, x}, {1.0 - to / s, d}});
}

}  // namespace pigment
