// DPM-Solver single-step (diffusers DPMSolverSinglestepScheduler, 0.25): each k-th order step restarts from the
// sample k steps back and uses the model outputs in between (Lu et al. 2022, "DPM-Solver: A Fast ODE Solver for
// Diffusion Probabilistic Model Sampling in Around 10 Steps"; DPM-Solver++ data prediction, arXiv 2211.01095).
#include <algorithm>
#include <cmath>

#include "sampling/noise_schedule.h"
#include "sampling/scheduler.h"
#include "sampling/solver_schedule.h"

namespace pigment {

namespace {

constexpr const char* kWho = "DPMSolverSinglestepScheduler";

class DPMSolverSinglestep : public solver::SolverScheduler {
 public:
  explicit DPMSolverSinglestep(const SchedulerConfig& c) : SolverScheduler(c, kWho) {
    order_ = int(schedule::extra_number(c, "solver_order", 2));
    PIG_CHECK(order_ >= 1 && order_ <= 3, kWho, ": solver_order must be 1, 2 or 3, got ", order_);
    algorithm_ = schedule::extra_string(c, "algorithm_type", "dpmsolver++");
    if (algorithm_ == "deis") algorithm_ = "dpmsolver++";
    PIG_CHECK(algorithm_ == "dpmsolver++" || algorithm_ == "dpmsolver", kWho, ": algorithm_type '", algorithm_,
              "' is not one of dpmsolver++, dpmsolver");
    solver_type_ = schedule::extra_string(c, "solver_type", "midpoint");
    if (solver_type_ == "logrho" || solver_type_ == "bh1" || solver_type_ == "bh2") solver_type_ = "midpoint";
    PIG_CHECK(solver_type_ == "midpoint" || solver_type_ == "heun", kWho, ": solver_type '", solver_type_,
              "' is not one of midpoint, heun");
    lower_order_final_ = schedule::extra_bool(c, "lower_order_final", true);
    lambda_min_clipped_ = schedule::extra_number(c, "lambda_min_clipped", -INFINITY);
    PIG_CHECK(!schedule::extra_bool(c, "thresholding", false), kWho,
              ": dynamic thresholding (thresholding: true) is not supported");
    PIG_CHECK(!schedule::extra_has(c, "variance_type") || schedule::extra_string(c, "variance_type", "") == "", kWho,
              ": learned variance (variance_type) is not supported");
  }

  void set_timesteps(int n) override {
    // The single-step solver always spaces its timesteps evenly (timestep_spacing is not read).
    const int last = solver::clipped_last_timestep(train_, lambda_min_clipped_);
    build_table(n, "linspace", last, 0, false);
    // An odd step count cannot end on a full-order step without lowering the order at the end.
    if (!lower_order_final_ && n % order_ != 0) lower_order_final_ = true;
    order_list_ = order_list(n);
    outputs_.assign(order_, Tensor());
    start_sample_ = Tensor();
  }

  Tensor step(const Tensor& model_output, double t, const Tensor& sample, Generator*) override {
    begin_step(model_output, sample, t, order_list_.size());

    const Tensor x = sample.as_f32();
    const solver::VP v = solver::vp(sigmas_[step_index_]);
    Tensor converted = algorithm_ == "dpmsolver++"
                           ? solver::data_prediction(kWho, cfg_.prediction_type, model_output, x, v)
                           : solver::noise_prediction(kWho, cfg_.prediction_type, model_output, x, v);
    std::rotate(outputs_.begin(), outputs_.begin() + 1, outputs_.end());
    outputs_.back() = converted;

    // Starting mid-schedule (img2img) there may be fewer outputs than the planned order needs.
    int order = order_list_[step_index_];
    while (!outputs_[order_ - order].defined()) --order;
    if (order == 1) start_sample_ = x;  // each single-step chunk restarts from its first sample

    Tensor prev = order == 1 ? first_order() : order == 2 ? second_order() : third_order();
    ++step_index_;
    return prev;
  }

 private:
  // The solver order at each step: full-order chunks, ending with lower orders when lower_order_final.
  std::vector<int> order_list(int steps) const {
    std::vector<int> o;
    auto repeat = [&o](std::initializer_list<int> chunk, int times) {
      for (int i = 0; i < times; ++i) o.insert(o.end(), chunk);
    };
    if (order_ == 1) {
      repeat({1}, steps);
    } else if (order_ == 2) {
      repeat({1, 2}, steps / 2);
      if (lower_order_final_ && steps % 2) o.push_back(1);
    } else if (!lower_order_final_) {
      repeat({1, 2, 3}, steps / 3);
    } else if (steps % 3 == 0) {
      repeat({1, 2, 3}, steps / 3 - 1);
      o.insert(o.end(), {1, 2, 1});
    } else {
      repeat({1, 2, 3}, steps / 3);
      if (steps % 3 == 1) o.push_back(1);
      if (steps % 3 == 2) o.insert(o.end(), {1, 2});
    }
    return o;
  }

  bool plus() const { return algorithm_ == "dpmsolver++"; }

  Tensor first_order() const {
    const solver::VP t = at(1), s = at(0);
    const double h = t.lambda - s.lambda;
    const Tensor& m = outputs_.back();
    if (plus()) return solver::lincomb({{t.sigma / s.sigma, start_sample_}, {-t.alpha * std::expm1(-h), m}});
    return solver::lincomb({{t.alpha / s.alpha, start_sample_}, {-t.sigma * std::expm1(h), m}});
  }

  // From the sample one step back (s1) to t, with the outputs at s1 and s0.
  Tensor second_order() const {
    const solver::VP t = at(1), s0 = at(0), s1 = at(-1);
    const Tensor &m0 = outputs_[order_ - 1], &m1 = outputs_[order_ - 2];
    const double h = t.lambda - s1.lambda, h0 = s0.lambda - s1.lambda, r0 = h0 / h;
    const Tensor d1 = solver::lincomb({{1.0 / r0, m0}, {-1.0 / r0, m1}});
    const bool mid = solver_type_ == "midpoint";
    if (plus()) {
      const double e = std::expm1(-h);
      const double c1 = mid ? -0.5 * t.alpha * e : t.alpha * (e / h + 1.0);
      return solver::lincomb({{t.sigma / s1.sigma, start_sample_}, {-t.alpha * e, m1}, {c1, d1}});
    }
    const double e = std::expm1(h);
    const double c1 = mid ? -0.5 * t.sigma * e : -t.sigma * (e / h - 1.0);
    return solver::lincomb({{t.alpha / s1.alpha, start_sample_}, {-t.sigma * e, m1}, {c1, d1}});
  }

  // From the sample two steps back (s2) to t, with the outputs at s2, s1 and s0.
  Tensor third_order() const {
    const solver::VP t = at(1), s0 = at(0), s1 = at(-1), s2 = at(-2);
    const Tensor &m0 = outputs_[2], &m1 = outputs_[1], &m2 = outputs_[0];
    const double h = t.lambda - s2.lambda, h0 = s0.lambda - s2.lambda, h1 = s1.lambda - s2.lambda;
    const double r0 = h0 / h, r1 = h1 / h;
    const Tensor d1_0 = solver::lincomb({{1.0 / r1, m1}, {-1.0 / r1, m2}});
    const Tensor d1_1 = solver::lincomb({{1.0 / r0, m0}, {-1.0 / r0, m2}});
    const bool mid = solver_type_ == "midpoint";
    if (plus()) {
      const double e = std::expm1(-h);
      if (mid)
        return solver::lincomb(
            {{t.sigma / s2.sigma, start_sample_}, {-t.alpha * e, m2}, {t.alpha * (e / h + 1.0), d1_1}});
      const Tensor d1 = solver::lincomb({{r0 / (r0 - r1), d1_0}, {-r1 / (r0 - r1), d1_1}});
      const Tensor d2 = solver::lincomb({{2.0 / (r0 - r1), d1_1}, {-2.0 / (r0 - r1), d1_0}});
      return solver::lincomb({{t.sigma / s2.sigma, start_sample_},
                              {-t.alpha * e, m2},
                              {t.alpha * (e / h + 1.0), d1},
                              {-t.alpha * ((e + h) / (h * h) - 0.5), d2}});
    }
    const double e = std::expm1(h);
    if (mid)
      return solver::lincomb(
          {{t.alpha / s2.alpha, start_sample_}, {-t.sigma * e, m2}, {-t.sigma * (e / h - 1.0), d1_1}});
    const Tensor d1 = solver::lincomb({{r0 / (r0 - r1), d1_0}, {-r1 / (r0 - r1), d1_1}});
    const Tensor d2 = solver::lincomb({{2.0 / (r0 - r1), d1_1}, {-2.0 / (r0 - r1), d1_0}});
    return solver::lincomb({{t.alpha / s2.alpha, start_sample_},
                            {-t.sigma * e, m2},
                            {-t.sigma * (e / h - 1.0), d1},
                            {-t.sigma * ((e - h) / (h * h) - 0.5), d2}});
  }

  int order_ = 2;
  std::string algorithm_, solver_type_;
  bool lower_order_final_ = true;
  double lambda_min_clipped_ = -INFINITY;
  std::vector<int> order_list_;
  std::vector<Tensor> outputs_;  // the last `order_` converted model outputs, oldest first
  Tensor start_sample_;          // the sample where the current single-step chunk began
};

RegisterScheduler reg({"DPMSolverSinglestepScheduler", "dpm_singlestep"},
                      [](const SchedulerConfig& c) { return std::make_unique<DPMSolverSinglestep>(c); });

}  // namespace

}  // namespace pigment
