// KDPM2 ancestral sampler: DPM-Solver-2 down to σ_down (midpoint at the geometric mean of σ and σ_down), then fresh
// noise of scale σ_up. Lu et al. 2022 (DPM-Solver) as k-diffusion's sample_dpm_2_ancestral writes it.
// Matches diffusers' KDPM2AncestralDiscreteScheduler, which draws noise in both of its step() calls.
#include <cmath>

#include "ops/ops.h"
#include "sampling/sigma_scheduler.h"

namespace pigment {
namespace {

class KDPM2Ancestral : public SigmaScheduler {
 public:
  explicit KDPM2Ancestral(const SchedulerConfig& c) : SigmaScheduler(c, "KDPM2AncestralDiscreteScheduler") {}

  int order() const override { return 2; }

  void set_timesteps(int n) override {
    auto st = step_table(n, /*round_sigma_timesteps=*/true);
    std::vector<float> s(st.sigmas.begin(), st.sigmas.end());
    s.push_back(0.0f);
    const size_t m = s.size();
    std::vector<float> up(m), down(m), interpol(m);
    for (size_t k = 0; k < m; ++k) {
      const float next = k + 1 < m ? s[k + 1] : 0.0f;
      const float s2 = s[k] * s[k], n2 = next * next;
      up[k] = std::sqrt(n2 * (s2 - n2) / s2);
      down[k] = k + 1 < m ? std::sqrt(n2 - up[k] * up[k]) : 0.0f;
      interpol[k] = schedule::log_midpoint(s[k], down[k]);
    }
    interpol[m - 1] = 0.0f;
    if (m >= 2) interpol[m - 2] = 0.0f;
    auto expand = [](const std::vector<float>& v) {
      std::vector<double> e(1, v[0]);
      for (size_t k = 1; k < v.size(); ++k) e.insert(e.end(), 2, v[k]);
      e.push_back(v.back());
      return e;
    };
    sigmas_ = expand(s);
    sigmas_interpol_ = expand(interpol);
    sigmas_up_ = expand(up);
    sigmas_down_ = expand(down);
    // Calls: t0, then (interpolated t of step k-1, t_k) for k = 1..n-1.
    timesteps_.assign(1, st.timesteps[0]);
    for (int k = 1; k < n; ++k) {
      timesteps_.push_back(double(schedule::sigma_to_t_f32(interpol[k - 1], train_sigmas_)));
      timesteps_.push_back(st.timesteps[k]);
    }
    prev_sample_ = Tensor();
    reset_steps();
  }

  Tensor scale_model_input(const Tensor& sample, double t) override {
    const int i = step_index(t);
    return scale_by_sigma(sample, first_order() ? sigmas_[i] : sigmas_interpol_[i - 1]);
  }

  Tensor step(const Tensor& model_output, double t, const Tensor& sample, Generator* gen) override {
    PIG_CHECK(gen, who_, ": step() needs a generator");
    const int i = step_index(t);
    const bool first = first_order();
    const int j = first ? i : i - 1;
    const float sigma = float(sigmas_[j]);
    const float sigma_interpol = float(sigmas_interpol_[j]);
    const float sigma_up = float(sigmas_up_[j]);
    const float sigma_down = float(first ? sigmas_down_[std::max(i - 1, 0)] : sigmas_down_[i - 1]);
    Tensor noise = gen->randn(model_output.shape());
    Tensor x = sample.as_f32();
    Tensor x0 = predict_x0(model_output, x, first ? sigma : sigma_interpol);
    Tensor out;
    if (first) {
      Tensor d = derivative(x, x0, sigma);
      prev_sample_ = x;
      out = ops::add_scaled(x, d, sigma_interpol - sigma);
    } else {
      Tensor d = derivative(x, x0, sigma_interpol);
      out = ops::add_scaled(ops::add_scaled(prev_sample_, d, sigma_down - sigma), noise, sigma_up);
      prev_sample_ = Tensor();
    }
    next_step();
    return out;
  }

 private:
  bool first_order() const { return !prev_sample_.defined(); }

  std::vector<double> sigmas_interpol_, sigmas_up_, sigmas_down_;
  Tensor prev_sample_;
};

RegisterScheduler reg({"kdpm2_a", "dpm2_a", "kdpm2_ancestral", "KDPM2AncestralDiscreteScheduler"},
                      [](const SchedulerConfig& c) { return std::make_unique<KDPM2Ancestral>(c); });

}  // namespace
}  // namespace pigment
