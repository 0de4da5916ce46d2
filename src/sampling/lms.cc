// Linear multistep (LMS) sampler of order 4: x_{i+1} = x_i + Σ_k c_k d_{i-k}, where c_k integrates the Lagrange
// basis polynomial of the last σ values over [σ_i, σ_{i+1}]. Karras et al. 2022 / k-diffusion's sample_lms.
// Matches diffusers' LMSDiscreteScheduler (which integrates with scipy's quad; here the polynomial is integrated
// exactly).
#include <algorithm>
#include <deque>

#include "ops/ops.h"
#include "sampling/sigma_scheduler.h"

namespace pigment {
namespace {

class LMSDiscrete : public SigmaScheduler {
 public:
  explicit LMSDiscrete(const SchedulerConfig& c) : SigmaScheduler(c, "LMSDiscreteScheduler") {
    order_ = int(schedule::extra_number(c, "order", 4));
    PIG_CHECK(order_ >= 1 && order_ <= 8, who_, ": order must be in [1, 8], got ", order_);
  }

  void set_timesteps(int n) override {
    auto st = step_table(n);
    timesteps_ = st.timesteps;
    sigmas_ = st.sigmas;
    sigmas_.push_back(0.0);
    derivatives_.clear();
    reset_steps();
  }

  Tensor scale_model_input(const Tensor& sample, double t) override {
    return scale_by_sigma(sample, sigmas_[step_index(t)]);
  }

  Tensor step(const Tensor& model_output, double t, const Tensor& sample, Generator*) override {
    const int i = step_index(t);
    const double sigma = sigmas_[i];
    Tensor x = sample.as_f32();
    Tensor x0 = predict_x0(model_output, x, sigma);
    derivatives_.push_back(derivative(x, x0, sigma));
    if (int(derivatives_.size()) > order_) derivatives_.pop_front();
    // Lower the order while the σ history repeats a value (leading spacing at T steps maps t = T and T - 1 to the
    // same σ): the Lagrange basis would divide by zero there, where diffusers returns NaN.
    int order = std::min(i + 1, order_);
    while (order > 1 && repeats(i, order)) --order;
    Tensor out = x;
    // Newest derivative first, as the coefficients are indexed.
    for (int k = 0; k < order; ++k)
      out = ops::add_scaled(out, derivatives_[derivatives_.size() - 1 - k], float(lms_coefficient(order, i, k)));
    next_step();
    return out;
  }

 private:
  // ∫_{σ_i}^{σ_{i+1}} Π_{k≠j} (τ - σ_{i-k}) / (σ_{i-j} - σ_{i-k}) dτ, by Gauss-Legendre quadrature with enough
  // nodes to be exact for the polynomial's degree (order - 1 ≤ 7).
  double lms_coefficient(int order, int i, int j) const {
    if (sigmas_[i] == sigmas_[i + 1]) return 0.0;
    static const double x[5] = {0.0, -0.5384693101056831, 0.5384693101056831, -0.9061798459386640,
                                0.9061798459386640};
    static const double w[5] = {0.5688888888888889, 0.4786286704993665, 0.4786286704993665, 0.2369268850561891,
                                0.2369268850561891};
    const double a = sigmas_[i], b = sigmas_[i + 1];
    const double half = (b - a) / 2, mid = (a + b) / 2;
    double sum = 0;
    for (int q = 0; q < 5; ++q) {
      const double tau = mid + half * x[q];
      double prod = 1.0;
      for (int k = 0; k < order; ++k) {
        if (k == j) continue;
        prod *= (tau - sigmas_[i - k]) / (sigmas_[i - j] - sigmas_[i - k]);
      }
      sum += w[q] * prod;
    }
    return sum * half;
  }

  bool repeats(int i, int order) const {
    for (int a = 0; a < order; ++a)
      for (int b = a + 1; b < order; ++b)
        if (sigmas_[i - a] == sigmas_[i - b]) return true;
    return false;
  }

  int order_ = 4;
  std::deque<Tensor> derivatives_;
};

RegisterScheduler reg({"lms", "LMSDiscreteScheduler"},
                      [](const SchedulerConfig& c) { return std::make_unique<LMSDiscrete>(c); });

}  // namespace
}  // namespace pigment
