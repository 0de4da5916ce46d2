// DEIS multistep (diffusers DEISMultistepScheduler, 0.25): the exponential integrator with log-ρ polynomial
// extrapolation of the noise prediction, orders 1-3 (Zhang & Chen 2023, "Fast Sampling of Diffusion Models with
// Exponential Integrator").
#include <algorithm>
#include <cmath>

#include "sampling/noise_schedule.h"
#include "sampling/scheduler.h"
#include "sampling/solver_schedule.h"

namespace pigment {

namespace {

constexpr const char* kWho = "DEISMultistepScheduler";

// ∫ (log τ - log c) / (log b - log c) dτ at τ = t: the Lagrange basis of the 2-point log-ρ interpolation.
double basis2(double t, double b, double c) {
  return t * (-std::log(c) + std::log(t) - 1.0) / (std::log(b) - std::log(c));
}

// ∫ (log τ - log c)(log τ - log d) / ((log b - log c)(log b - log d)) dτ at τ = t.
double basis3(double t, double b, double c, double d) {
  const double lt = std::log(t), lc = std::log(c), ld = std::log(d), lb = std::log(b);
  const double num = t * (lc * (ld - lt + 1.0) - ld * lt + ld + lt * lt - 2.0 * lt + 2.0);
  return num / ((lb - lc) * (lb - ld));
}

class DEISMultistep : public solver::SolverScheduler {
 public:
  explicit DEISMultistep(const SchedulerConfig& c) : SolverScheduler(c, kWho) {
    order_ = int(schedule::extra_number(c, "solver_order", 2));
    PIG_CHECK(order_ >= 1 && order_ <= 3, kWho, ": solver_order must be 1, 2 or 3, got ", order_);
    const std::string algorithm = schedule::extra_string(c, "algorithm_type", "deis");
    PIG_CHECK(algorithm == "deis" || algorithm == "dpmsolver" || algorithm == "dpmsolver++", kWho, ": algorithm_type '",
              algorithm, "' is not deis");  // diffusers maps the DPM-Solver names to deis
    const std::string solver_type = schedule::extra_string(c, "solver_type", "logrho");
    PIG_CHECK(solver_type == "logrho" || solver_type == "midpoint" || solver_type == "heun" || solver_type == "bh1" ||
                  solver_type == "bh2",
              kWho, ": solver_type '", solver_type, "' is not logrho");
    lower_order_final_ = schedule::extra_bool(c, "lower_order_final", true);
    PIG_CHECK(!schedule::extra_bool(c, "thresholding", false), kWho,
              ": dynamic thresholding (thresholding: true) is not supported");
    check_timestep_spacing();
  }

  void set_timesteps(int n) override {
    build_table(n, cfg_.timestep_spacing, cfg_.num_train_timesteps, cfg_.steps_offset, false);
    outputs_.assign(order_, Tensor());
    lower_order_nums_ = 0;
  }

  Tensor step(const Tensor& model_output, double t, const Tensor& sample, Generator*) override {
    begin_step(model_output, sample, t, timesteps_.size());
    const int n = int(timesteps_.size());

    const bool lower_final = step_index_ == n - 1 && lower_order_final_ && n < 15;
    const bool lower_second = step_index_ == n - 2 && lower_order_final_ && n < 15;

    // DEIS integrates the noise prediction, taken (as diffusers does) through the data prediction.
    const Tensor x = sample.as_f32();
    const solver::VP v = solver::vp(sigmas_[step_index_]);
    const Tensor x0 = solver::data_prediction(kWho, cfg_.prediction_type, model_output, x, v);
    std::rotate(outputs_.begin(), outputs_.begin() + 1, outputs_.end());
    outputs_.back() = solver::lincomb({{1.0 / v.sigma, x}, {-v.alpha / v.sigma, x0}});

    Tensor prev;
    if (order_ == 1 || lower_order_nums_ < 1 || lower_final)
      prev = first_order(x);
    else if (order_ == 2 || lower_order_nums_ < 2 || lower_second)
      prev = second_order(x);
    else
      prev = third_order(x);
    lower_order_nums_ = std::min(lower_order_nums_ + 1, order_);
    ++step_index_;
    return prev;
  }

 private:
  static double rho(const solver::VP& v) { return v.sigma / v.alpha; }

  Tensor first_order(const Tensor& x) const {
    const solver::VP t = at(1), s = at(0);
    const double h = t.lambda - s.lambda;
    return solver::lincomb({{t.alpha / s.alpha, x}, {-t.sigma * std::expm1(h), outputs_.back()}});
  }

  Tensor second_order(const Tensor& x) const {
    const solver::VP t = at(1), s0 = at(0), s1 = at(-1);
    const double rt = rho(t), r0 = rho(s0), r1 = rho(s1);
    const double c1 = basis2(rt, r0, r1) - basis2(r0, r0, r1);
    const double c2 = basis2(rt, r1, r0) - basis2(r0, r1, r0);
    return solver::lincomb(
        {{t.alpha / s0.alpha, x}, {t.alpha * c1, outputs_[order_ - 1]}, {t.alpha * c2, outputs_[order_ - 2]}});
  }

  Tensor third_order(const Tensor& x) const {
    const solver::VP t = at(1), s0 = at(0), s1 = at(-1), s2 = at(-2);
    const double rt = rho(t), r0 = rho(s0), r1 = rho(s1), r2 = rho(s2);
    const double c1 = basis3(rt, r0, r1, r2) - basis3(r0, r0, r1, r2);
    const double c2 = basis3(rt, r1, r2, r0) - basis3(r0, r1, r2, r0);
    const double c3 = basis3(rt, r2, r0, r1) - basis3(r0, r2, r0, r1);
    return solver::lincomb({{t.alpha / s0.alpha, x},
                            {t.alpha * c1, outputs_[2]},
                            {t.alpha * c2, outputs_[1]},
                            {t.alpha * c3, outputs_[0]}});
  }

  int order_ = 2;
  bool lower_order_final_ = true;
  std::vector<Tensor> outputs_;  // the last `order_` noise predictions, oldest first
  int lower_order_nums_ = 0;
};

RegisterScheduler reg({"DEISMultistepScheduler", "deis"},
                      [](const SchedulerConfig& c) { return std::make_unique<DEISMultistep>(c); });

}  // namespace

}  // namespace pigment
