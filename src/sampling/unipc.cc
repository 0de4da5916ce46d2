// UniPC multistep (diffusers UniPCMultistepScheduler, 0.25): a multistep predictor (UniP) followed, once the next
// model output is known, by a corrector (UniC) on the previous step, with the B(h) variants bh1 / bh2 (Zhao et al.
// 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of Diffusion Models").
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "sampling/noise_schedule.h"
#include "sampling/scheduler.h"
#include "sampling/solver_schedule.h"

namespace pigment {

namespace {

constexpr const char* kWho = "UniPCMultistepScheduler";

// Solves the small dense system A x = b (Gaussian elimination with partial pivoting).
std::vector<double> solve(std::vector<std::vector<double>> a, std::vector<double> b) {
  const int n = int(b.size());
  for (int c = 0; c < n; ++c) {
    int p = c;
    for (int r = c + 1; r < n; ++r)
      if (std::fabs(a[r][c]) > std::fabs(a[p][c])) p = r;
    PIG_CHECK(a[p][c] != 0, kWho, ": singular corrector system (repeated timesteps?)");
    std::swap(a[p], a[c]);
    std::swap(b[p], b[c]);
    for (int r = c + 1; r < n; ++r) {
      const double f = a[r][c] / a[c][c];
      for (int k = c; k < n; ++k) a[r][k] -= f * a[c][k];
      b[r] -= f * b[c];
    }
  }
  std::vector<double> x(n);
  for (int r = n - 1; r >= 0; --r) {
    double s = b[r];
    for (int k = r + 1; k < n; ++k) s -= a[r][k] * x[k];
    x[r] = s / a[r][r];
  }
  return x;
}

class UniPCMultistep : public solver::SolverScheduler {
 public:
  explicit UniPCMultistep(const SchedulerConfig& c) : SolverScheduler(c, kWho) {
    order_ = int(schedule::extra_number(c, "solver_order", 2));
    PIG_CHECK(order_ >= 1, kWho, ": solver_order must be at least 1, got ", order_);
    predict_x0_ = schedule::extra_bool(c, "predict_x0", true);
    solver_type_ = schedule::extra_string(c, "solver_type", "bh2");
    if (solver_type_ == "midpoint" || solver_type_ == "heun" || solver_type_ == "logrho") solver_type_ = "bh2";
    PIG_CHECK(solver_type_ == "bh1" || solver_type_ == "bh2", kWho, ": solver_type '", solver_type_,
              "' is not one of bh1, bh2");
    lower_order_final_ = schedule::extra_bool(c, "lower_order_final", true);
    PIG_CHECK(!schedule::extra_has(c, "solver_p"), kWho, ": an external predictor (solver_p) is not supported");
    PIG_CHECK(!schedule::extra_bool(c, "thresholding", false), kWho,
              ": dynamic thresholding (thresholding: true) is not supported");
    if (schedule::extra_has(c, "disable_corrector")) {
      const auto j = nlohmann::json::parse(c.json_extra)["disable_corrector"];
      PIG_CHECK(j.is_array(), kWho, ": disable_corrector must be a list of step indices, got ", j.dump());
      for (const auto& v : j) {
        PIG_CHECK(v.is_number_integer(), kWho, ": disable_corrector must hold step indices, got ", v.dump());
        disable_corrector_.push_back(v.get<int>());
      }
    }
    check_timestep_spacing();
  }

  void set_timesteps(int n) override {
    build_table(n, cfg_.timestep_spacing, cfg_.num_train_timesteps, cfg_.steps_offset, false);
    outputs_.assign(order_, Tensor());
    lower_order_nums_ = 0;
    last_sample_ = Tensor();
    this_order_ = 1;
  }

  Tensor step(const Tensor& model_output, double t, const Tensor& sample, Generator*) override {
    begin_step(model_output, sample, t, timesteps_.size());
    const int n = int(timesteps_.size());

    Tensor x = sample.as_f32();
    const solver::VP v = solver::vp(sigmas_[step_index_]);
    const Tensor converted = predict_x0_ ? solver::data_prediction(kWho, cfg_.prediction_type, model_output, x, v)
                                         : solver::noise_prediction(kWho, cfg_.prediction_type, model_output, x, v);
    // The corrector refines the previous step now that the model output at its end is known.
    const bool corrector =
        step_index_ > 0 && last_sample_.defined() &&
        std::find(disable_corrector_.begin(), disable_corrector_.end(), step_index_ - 1) == disable_corrector_.end();
    if (corrector) x = uni_c(converted);

    std::rotate(outputs_.begin(), outputs_.begin() + 1, outputs_.end());
    outputs_.back() = converted;

    const int planned = lower_order_final_ ? std::min(order_, n - step_index_) : order_;
    this_order_ = std::min(planned, lower_order_nums_ + 1);  // warm up with lower orders
    last_sample_ = x;
    Tensor prev = uni_p(x);
    lower_order_nums_ = std::min(lower_order_nums_ + 1, order_);
    ++step_index_;
    return prev;
  }

 private:
  // The B(h) system of UniPC for `order` terms: rks (the last one 1), b, and the scalars of the update.
  struct Coefficients {
    std::vector<std::vector<double>> r;  // r[i][k] = rks[k]^i
    std::vector<double> b;
    double h_phi_1 = 0, b_h = 0;
  };
  Coefficients coefficients(std::vector<double> rks, double h, int order) const {
    Coefficients c;
    rks.push_back(1.0);
    const double hh = predict_x0_ ? -h : h;
    c.h_phi_1 = std::expm1(hh);
    c.b_h = solver_type_ == "bh1" ? hh : std::expm1(hh);
    double h_phi_k = c.h_phi_1 / hh - 1.0, factorial = 1.0;
    for (int i = 1; i <= order; ++i) {
      std::vector<double> row;
      for (double rk : rks) row.push_back(std::pow(rk, i - 1));
      c.r.push_back(row);
      c.b.push_back(h_phi_k * factorial / c.b_h);
      factorial *= i + 1;
      h_phi_k = h_phi_k / hh - 1.0 / factorial;
    }
    return c;
  }

  // x_t_ = the first-order part of a step from s0 to t with model output m0.
  std::vector<std::pair<double, Tensor>> base(const solver::VP& t, const solver::VP& s0, const Tensor& x,
                                              const Tensor& m0, double h_phi_1) const {
    if (predict_x0_) return {{t.sigma / s0.sigma, x}, {-t.alpha * h_phi_1, m0}};
    return {{t.alpha / s0.alpha, x}, {-t.sigma * h_phi_1, m0}};
  }

  // UniP: predicts the sample at step_index_ + 1 from the current one.
  Tensor uni_p(const Tensor& x) const {
    const int order = this_order_;
    const solver::VP t = solver::vp(sigmas_[step_index_ + 1]), s0 = solver::vp(sigmas_[step_index_]);
    const double h = t.lambda - s0.lambda;
    const Tensor& m0 = outputs_.back();
    std::vector<double> rks;
    std::vector<Tensor> d1s;
    for (int i = 1; i < order; ++i) {
      const double rk = (solver::vp(sigmas_[step_index_ - i]).lambda - s0.lambda) / h;
      rks.push_back(rk);
      d1s.push_back(solver::lincomb({{1.0 / rk, outputs_[order_ - 1 - i]}, {-1.0 / rk, m0}}));
    }
    const Coefficients c = coefficients(rks, h, order);
    auto terms = base(t, s0, x, m0, c.h_phi_1);
    if (!d1s.empty()) {
      std::vector<double> rhos;
      if (order == 2) {
        rhos = {0.5};  // diffusers' simplified second-order predictor
      } else {
        std::vector<std::vector<double>> a(order - 1);
        for (int i = 0; i < order - 1; ++i) a[i].assign(c.r[i].begin(), c.r[i].end() - 1);
        rhos = solve(a, std::vector<double>(c.b.begin(), c.b.end() - 1));
      }
      const double scale = -(predict_x0_ ? t.alpha : t.sigma) * c.b_h;
      for (size_t k = 0; k < d1s.size(); ++k) terms.push_back({scale * rhos[k], d1s[k]});
    }
    return solver::lincomb(terms);
  }

  // UniC: corrects the sample at step_index_ (predicted from last_sample_) with its model output model_t.
  Tensor uni_c(const Tensor& model_t) const {
    const int order = this_order_;
    const solver::VP t = solver::vp(sigmas_[step_index_]), s0 = solver::vp(sigmas_[step_index_ - 1]);
    const double h = t.lambda - s0.lambda;
    const Tensor& m0 = outputs_.back();  // not yet shifted: the output at s0
    std::vector<double> rks;
    std::vector<Tensor> d1s;
    for (int i = 1; i < order; ++i) {
      const double rk = (solver::vp(sigmas_[step_index_ - (i + 1)]).lambda - s0.lambda) / h;
      rks.push_back(rk);
      d1s.push_back(solver::lincomb({{1.0 / rk, outputs_[order_ - 1 - i]}, {-1.0 / rk, m0}}));
    }
    const Coefficients c = coefficients(rks, h, order);
    const std::vector<double> rhos = order == 1 ? std::vector<double>{0.5} : solve(c.r, c.b);
    auto terms = base(t, s0, last_sample_, m0, c.h_phi_1);
    const double scale = -(predict_x0_ ? t.alpha : t.sigma) * c.b_h;
    for (size_t k = 0; k < d1s.size(); ++k) terms.push_back({scale * rhos[k], d1s[k]});
    terms.push_back({scale * rhos.back(), model_t});
    terms.push_back({-scale * rhos.back(), m0});
    return solver::lincomb(terms);
  }

  int order_ = 2;
  bool predict_x0_ = true, lower_order_final_ = true;
  std::string solver_type_;
  std::vector<int> disable_corrector_;
  std::vector<Tensor> outputs_;  // the last `order_` converted model outputs, oldest first
  int lower_order_nums_ = 0;
  Tensor last_sample_;  // the sample the last predictor started from (the corrector's x)
  int this_order_ = 1;  // the order of the last predictor step, reused by the next corrector
};

RegisterScheduler reg({"UniPCMultistepScheduler", "unipc"},
                      [](const SchedulerConfig& c) { return std::make_unique<UniPCMultistep>(c); });

}  // namespace

}  // namespace pigment
