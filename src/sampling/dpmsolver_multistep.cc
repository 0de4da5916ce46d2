// DPM-Solver multistep (diffusers DPMSolverMultistepScheduler, 0.25): DPM-Solver++ 2M / 3M (Lu et al. 2022,
// "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic Models"), the original DPM-Solver
// (Lu et al. 2022, arXiv 2206.00927) and their SDE variants (DPM++ 2M SDE draws Gaussian noise every step).
#include <algorithm>
#include <cmath>

#include "sampling/noise_schedule.h"
#include "sampling/scheduler.h"
#include "sampling/solver_schedule.h"

namespace pigment {

namespace {

constexpr const char* kWho = "DPMSolverMultistepScheduler";

class DPMSolverMultistep : public solver::SolverScheduler {
 public:
  explicit DPMSolverMultistep(const SchedulerConfig& c) : SolverScheduler(c, kWho) {
    order_ = int(schedule::extra_number(c, "solver_order", 2));
    PIG_CHECK(order_ >= 1 && order_ <= 3, kWho, ": solver_order must be 1, 2 or 3, got ", order_);
    algorithm_ = schedule::extra_string(c, "algorithm_type", "dpmsolver++");
    if (algorithm_ == "deis") algorithm_ = "dpmsolver++";  // diffusers maps it so
    PIG_CHECK(algorithm_ == "dpmsolver++" || algorithm_ == "sde-dpmsolver++" || algorithm_ == "dpmsolver" ||
                  algorithm_ == "sde-dpmsolver",
              kWho, ": algorithm_type '", algorithm_, "' is not one of dpmsolver++, sde-dpmsolver++, dpmsolver, ",
              "sde-dpmsolver");
    solver_type_ = schedule::extra_string(c, "solver_type", "midpoint");
    if (solver_type_ == "logrho" || solver_type_ == "bh1" || solver_type_ == "bh2") solver_type_ = "midpoint";
    PIG_CHECK(solver_type_ == "midpoint" || solver_type_ == "heun", kWho, ": solver_type '", solver_type_,
              "' is not one of midpoint, heun");
    PIG_CHECK(!(is_sde() && order_ == 3), kWho, ": ", algorithm_, " supports solver_order 1 or 2, got 3");
    lower_order_final_ = schedule::extra_bool(c, "lower_order_final", true);
    euler_at_final_ = schedule::extra_bool(c, "euler_at_final", false);
    lambda_min_clipped_ = schedule::extra_number(c, "lambda_min_clipped", -INFINITY);
    const std::string final_type = schedule::extra_string(c, "final_sigmas_type", "sigma_min");
    PIG_CHECK(final_type == "sigma_min" || final_type == "zero", kWho, ": final_sigmas_type '", final_type,
              "' is not one of sigma_min, zero");
    final_zero_ = final_type == "zero";
    PIG_CHECK(!final_zero_ || data_prediction(), kWho, ": final_sigmas_type 'zero' needs algorithm_type ",
              "dpmsolver++ or sde-dpmsolver++");
    PIG_CHECK(!schedule::extra_bool(c, "thresholding", false), kWho,
              ": dynamic thresholding (thresholding: true) is not supported");
    PIG_CHECK(!schedule::extra_has(c, "variance_type") || schedule::extra_string(c, "variance_type", "") == "", kWho,
              ": learned variance (variance_type) is not supported");
    check_timestep_spacing();
  }

  void set_timesteps(int n) override {
    const int last = solver::clipped_last_timestep(train_, lambda_min_clipped_);
    build_table(n, cfg_.timestep_spacing, last, cfg_.steps_offset, final_zero_);
    outputs_.assign(order_, Tensor());
    lower_order_nums_ = 0;
  }

  Tensor step(const Tensor& model_output, double t, const Tensor& sample, Generator* gen) override {
    begin_step(model_output, sample, t, timesteps_.size());
    const int n = int(timesteps_.size());

    // Lower orders at the end keep few-step sampling stable (diffusers' lower_order_final).
    const bool lower_final = step_index_ == n - 1 && (euler_at_final_ || (lower_order_final_ && n < 15) || final_zero_);
    const bool lower_second = step_index_ == n - 2 && lower_order_final_ && n < 15;

    const Tensor x = sample.as_f32();
    const solver::VP v = solver::vp(sigmas_[step_index_]);
    Tensor converted = data_prediction() ? solver::data_prediction(kWho, cfg_.prediction_type, model_output, x, v)
                                         : solver::noise_prediction(kWho, cfg_.prediction_type, model_output, x, v);
    std::rotate(outputs_.begin(), outputs_.begin() + 1, outputs_.end());
    outputs_.back() = converted;

    Tensor noise;
    if (is_sde()) {
      PIG_CHECK(gen != nullptr, kWho, ": algorithm_type ", algorithm_, " draws noise every step and needs a generator");
      noise = gen->randn(model_output.shape());
    }

    Tensor prev;
    if (order_ == 1 || lower_order_nums_ < 1 || lower_final)
      prev = first_order(x, noise);
    else if (order_ == 2 || lower_order_nums_ < 2 || lower_second)
      prev = second_order(x, noise);
    else
      prev = third_order(x);

    lower_order_nums_ = std::min(lower_order_nums_ + 1, order_);
    ++step_index_;
    return prev;
  }

 private:
  bool is_sde() const { return algorithm_ == "sde-dpmsolver++" || algorithm_ == "sde-dpmsolver"; }
  bool data_prediction() const { return algorithm_ == "dpmsolver++" || algorithm_ == "sde-dpmsolver++"; }

  Tensor first_order(const Tensor& x, const Tensor& noise) const {
    const solver::VP t = at(1), s = at(0);
    const double h = t.lambda - s.lambda;
    const Tensor& m = outputs_.back();
    if (algorithm_ == "dpmsolver++") return solver::lincomb({{t.sigma / s.sigma, x}, {-t.alpha * std::expm1(-h), m}});
    if (algorithm_ == "dpmsolver") return solver::lincomb({{t.alpha / s.alpha, x}, {-t.sigma * std::expm1(h), m}});
    if (algorithm_ == "sde-dpmsolver++")
      return solver::lincomb({{t.sigma / s.sigma * std::exp(-h), x},
                              {-t.alpha * std::expm1(-2.0 * h), m},
                              {t.sigma * std::sqrt(-std::expm1(-2.0 * h)), noise}});
    return solver::lincomb({{t.alpha / s.alpha, x},
                            {-2.0 * t.sigma * std::expm1(h), m},
                            {t.sigma * std::sqrt(std::expm1(2.0 * h)), noise}});
  }

  Tensor second_order(const Tensor& x, const Tensor& noise) const {
    const solver::VP t = at(1), s0 = at(0), s1 = at(-1);
    const Tensor &m0 = outputs_[order_ - 1], &m1 = outputs_[order_ - 2];
    const double h = t.lambda - s0.lambda, h0 = s0.lambda - s1.lambda, r0 = h0 / h;
    const Tensor d1 = solver::lincomb({{1.0 / r0, m0}, {-1.0 / r0, m1}});
    const bool mid = solver_type_ == "midpoint";
    if (algorithm_ == "dpmsolver++") {
      const double e = std::expm1(-h);  // e^{-h} - 1
      const double c1 = mid ? -0.5 * t.alpha * e : t.alpha * (e / h + 1.0);
      return solver::lincomb({{t.sigma / s0.sigma, x}, {-t.alpha * e, m0}, {c1, d1}});
    }
    if (algorithm_ == "dpmsolver") {
      const double e = std::expm1(h);
      const double c1 = mid ? -0.5 * t.sigma * e : -t.sigma * (e / h - 1.0);
      return solver::lincomb({{t.alpha / s0.alpha, x}, {-t.sigma * e, m0}, {c1, d1}});
    }
    if (algorithm_ == "sde-dpmsolver++") {
      const double e = -std::expm1(-2.0 * h);  // 1 - e^{-2h}
      const double c1 = mid ? 0.5 * t.alpha * e : t.alpha * (e / (-2.0 * h) + 1.0);
      return solver::lincomb(
          {{t.sigma / s0.sigma * std::exp(-h), x}, {t.alpha * e, m0}, {c1, d1}, {t.sigma * std::sqrt(e), noise}});
    }
    const double e = std::expm1(h);
    const double c1 = mid ? -t.sigma * e : -2.0 * t.sigma * (e / h - 1.0);
    return solver::lincomb({{t.alpha / s0.alpha, x},
                            {-2.0 * t.sigma * e, m0},
                            {c1, d1},
                            {t.sigma * std::sqrt(std::expm1(2.0 * h)), noise}});
  }

  Tensor third_order(const Tensor& x) const {
    const solver::VP t = at(1), s0 = at(0), s1 = at(-1), s2 = at(-2);
    const Tensor &m0 = outputs_[2], &m1 = outputs_[1], &m2 = outputs_[0];
    const double h = t.lambda - s0.lambda, h0 = s0.lambda - s1.lambda, h1 = s1.lambda - s2.lambda;
    const double r0 = h0 / h, r1 = h1 / h;
    const Tensor d1_0 = solver::lincomb({{1.0 / r0, m0}, {-1.0 / r0, m1}});
    const Tensor d1_1 = solver::lincomb({{1.0 / r1, m1}, {-1.0 / r1, m2}});
    const Tensor d1 = solver::lincomb({{1.0 + r0 / (r0 + r1), d1_0}, {-r0 / (r0 + r1), d1_1}});
    const Tensor d2 = solver::lincomb({{1.0 / (r0 + r1), d1_0}, {-1.0 / (r0 + r1), d1_1}});
    if (algorithm_ == "dpmsolver++") {
      const double e = std::expm1(-h);
      return solver::lincomb({{t.sigma / s0.sigma, x},
                              {-t.alpha * e, m0},
                              {t.alpha * (e / h + 1.0), d1},
                              {-t.alpha * ((e + h) / (h * h) - 0.5), d2}});
    }
    const double e = std::expm1(h);
    return solver::lincomb({{t.alpha / s0.alpha, x},
                            {-t.sigma * e, m0},
                            {-t.sigma * (e / h - 1.0), d1},
                            {-t.sigma * ((e - h) / (h * h) - 0.5), d2}});
  }

  int order_ = 2;
  std::string algorithm_, solver_type_;
  bool lower_order_final_ = true, euler_at_final_ = false, final_zero_ = false;
  double lambda_min_clipped_ = -INFINITY;
  std::vector<Tensor> outputs_;  // the last `order_` converted model outputs, oldest first
  int lower_order_nums_ = 0;
};

std::unique_ptr<Scheduler> make_multistep(SchedulerConfig c, bool sde, bool karras) {
  if (sde) c = solver::with_default_extra(c, "algorithm_type", "\"sde-dpmsolver++\"");
  if (karras) c.use_karras_sigmas = true;
  return std::make_unique<DPMSolverMultistep>(c);
}

// pigment's names pick the A1111 variants; the diffusers class name follows the config alone.
RegisterScheduler reg_class({"DPMSolverMultistepScheduler", "dpmpp_2m"},
                            [](const SchedulerConfig& c) { return make_multistep(c, false, false); });
RegisterScheduler reg_karras({"dpmpp_2m_karras"},
                             [](const SchedulerConfig& c) { return make_multistep(c, false, true); });
RegisterScheduler reg_sde({"dpmpp_2m_sde"}, [](const SchedulerConfig& c) { return make_multistep(c, true, false); });
RegisterScheduler reg_sde_karras({"dpmpp_2m_sde_karras"},
                                 [](const SchedulerConfig& c) { return make_multistep(c, true, true); });

}  // namespace

}  // namespace pigment
