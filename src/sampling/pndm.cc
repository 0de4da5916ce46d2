// PNDM sampler: pseudo linear multistep (PLMS, Adams-Bashforth on ε up to order 4) on DDIM's transfer, warmed up
// with pseudo Runge-Kutta (PRK) steps unless skip_prk_steps. Liu et al. 2022, "Pseudo Numerical Methods for
// Diffusion Models on Manifolds". Matches diffusers' PNDMScheduler (PLMS repeats its second timestep).
#include <algorithm>
#include <cmath>
#include <deque>

#include "ops/ops.h"
#include "sampling/noise_schedule.h"

namespace pigment {
namespace {

class PNDM : public Scheduler {
 public:
  explicit PNDM(const SchedulerConfig& c) : cfg_(c), train_(schedule::TrainSchedule::from_config(c)) {
    skip_prk_ = schedule::extra_bool(c, "skip_prk_steps", false);
    final_alpha_ = c.set_alpha_to_one ? 1.0f : train_.alphas_cumprod[0];
    PIG_CHECK(c.prediction_type == "epsilon" || c.prediction_type == "v_prediction", "PNDMScheduler: prediction_type '",
              c.prediction_type, "' is not one of epsilon, v_prediction");
  }

  void set_timesteps(int n) override {
    const int T = train_.size();
    PIG_CHECK(n >= 1 && n <= T, "PNDMScheduler: num_inference_steps must be in [1, ", T, "], got ", n);
    // PNDM's own spacing: ascending base timesteps.
    std::vector<int64_t> base;
    if (cfg_.timestep_spacing == "linspace" || cfg_.timestep_spacing == "leading" ||
        cfg_.timestep_spacing == "trailing") {
      auto desc = schedule::spaced_timesteps(cfg_.timestep_spacing, T, n, cfg_.steps_offset, true);
      for (auto it = desc.rbegin(); it != desc.rend(); ++it) base.push_back(int64_t(*it));
    } else {
      fail("PNDMScheduler: timestep_spacing '", cfg_.timestep_spacing, "' is not one of leading, trailing, linspace");
    }
    std::vector<int64_t> prk, plms;
    if (skip_prk_) {
      // base[:-1], base[-2], base[-1], reversed: the second timestep is visited twice.
      plms.assign(base.begin(), base.end() - 1);
      if (base.size() >= 2) plms.push_back(base[base.size() - 2]);
      plms.push_back(base.back());
      std::reverse(plms.begin(), plms.end());
    } else {
      PIG_CHECK(n >= kOrder, "PNDMScheduler: PRK warm-up needs at least ", kOrder,
                " inference steps (set skip_prk_steps for fewer), got ", n);
      const int64_t half = T / n / 2;
      std::vector<int64_t> p;
      for (size_t k = base.size() - kOrder; k < base.size(); ++k) {
        p.push_back(base[k]);
        p.push_back(base[k] + half);
      }
      p.pop_back();
      std::vector<int64_t> doubled;
      for (int64_t v : p) doubled.insert(doubled.end(), 2, v);
      prk.assign(doubled.begin() + 1, doubled.end() - 1);
      std::reverse(prk.begin(), prk.end());
      plms.assign(base.begin(), base.end() - 3);
      std::reverse(plms.begin(), plms.end());
    }
    prk_timesteps_ = prk;
    timesteps_.clear();
    for (int64_t v : prk) timesteps_.push_back(double(v));
    for (int64_t v : plms) timesteps_.push_back(double(v));
    num_inference_steps_ = n;
    ets_.clear();
    counter_ = 0;
    cur_model_output_ = Tensor();
    cur_sample_ = Tensor();
  }

  Tensor step(const Tensor& model_output, double timestep, const Tensor& sample, Generator*) override {
    PIG_CHECK(num_inference_steps_ > 0, "PNDMScheduler: set_timesteps must be called before step()");
    if (counter_ < int(prk_timesteps_.size()) && !skip_prk_) return step_prk(model_output.as_f32(), int64_t(timestep), sample);
    return step_plms(model_output.as_f32(), int64_t(timestep), sample.as_f32());
  }

  Tensor add_noise(const Tensor& original, const Tensor& noise, double t) const override {
    return schedule::add_noise_alpha(train_, original, noise, std::clamp(int(t), 0, train_.size() - 1));
  }

 private:
  static constexpr int kOrder = 4;

  int64_t ratio() const { return train_.size() / num_inference_steps_; }

  // Runge-Kutta warm-up: four evaluations per step weighted 1/6, 1/3, 1/3, 1/6.
  Tensor step_prk(const Tensor& eps, int64_t timestep, const Tensor& sample) {
    const int64_t diff = counter_ % 2 ? 0 : ratio() / 2;
    const int64_t prev_t = timestep - diff;
    const int64_t t = prk_timesteps_[size_t(counter_ / 4 * 4)];
    Tensor e = eps;
    const int phase = counter_ % 4;
    if (phase == 0) {
      cur_model_output_ = ops::scale(eps, 1.0f / 6.0f);
      ets_.push_back(eps);
      cur_sample_ = sample.as_f32();
    } else if (phase == 1 || phase == 2) {
      cur_model_output_ = ops::add(cur_model_output_, ops::scale(eps, 1.0f / 3.0f));
    } else {
      e = ops::add(cur_model_output_, ops::scale(eps, 1.0f / 6.0f));
      cur_model_output_ = Tensor();
    }
    const Tensor& from = cur_sample_.defined() ? cur_sample_ : sample;
    Tensor prev = prev_sample(from, t, prev_t, e);
    ++counter_;
    return prev;
  }

  // Linear multistep on ε; the second call re-does the first step with the average of two ε (Heun-like).
  Tensor step_plms(const Tensor& eps, int64_t timestep, Tensor sample) {
    PIG_CHECK(skip_prk_ || ets_.size() >= 3, "PNDMScheduler: PLMS needs the PRK warm-up steps first");
    int64_t t = timestep, prev_t = timestep - ratio();
    if (counter_ != 1) {
      while (ets_.size() > 3) ets_.pop_front();
      ets_.push_back(eps);
    } else {
      prev_t = timestep;
      t = timestep + ratio();
    }
    Tensor e;
    const size_t n = ets_.size();
    if (n == 1 && counter_ == 0) {
      e = eps;
      cur_sample_ = sample;
    } else if (n == 1 && counter_ == 1) {
      e = ops::scale(ops::add(eps, ets_.back()), 0.5f);
      sample = cur_sample_;
      cur_sample_ = Tensor();
    } else if (n == 2) {
      e = ops::scale(ops::sub(ops::scale(ets_[1], 3.0f), ets_[0]), 0.5f);
    } else if (n == 3) {
      e = ops::scale(ops::add(ops::sub(ops::scale(ets_[2], 23.0f), ops::scale(ets_[1], 16.0f)), ops::scale(ets_[0], 5.0f)),
                     1.0f / 12.0f);
    } else {
      Tensor acc = ops::sub(ops::scale(ets_[3], 55.0f), ops::scale(ets_[2], 59.0f));
      acc = ops::add(acc, ops::scale(ets_[1], 37.0f));
      acc = ops::sub(acc, ops::scale(ets_[0], 9.0f));
      e = ops::scale(acc, 1.0f / 24.0f);
    }
    Tensor prev = prev_sample(sample, t, prev_t, e);
    ++counter_;
    return prev;
  }

  // PNDM's transfer φ (formula 9 of the paper): x_{t-δ} from x_t and ε.
  Tensor prev_sample(const Tensor& sample, int64_t t, int64_t prev_t, Tensor eps) const {
    const float a_t = alpha(t), a_prev = prev_t >= 0 ? alpha(prev_t) : final_alpha_;
    const float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
    if (cfg_.prediction_type == "v_prediction") eps = schedule::lincomb(std::sqrt(a_t), eps, std::sqrt(b_t), sample);
    const float sample_coeff = std::sqrt(a_prev / a_t);
    const float denom = a_t * std::sqrt(b_prev) + std::sqrt(a_t * b_t * a_prev);
    return schedule::lincomb(sample_coeff, sample, -(a_prev - a_t) / denom, eps);
  }

  float alpha(int64_t t) const { return train_.alphas_cumprod[size_t(std::clamp<int64_t>(t, 0, train_.size() - 1))]; }

  SchedulerConfig cfg_;
  schedule::TrainSchedule train_;
  bool skip_prk_ = false;
  float final_alpha_ = 1.0f;
  int num_inference_steps_ = 0;
  std::vector<int64_t> prk_timesteps_;
  std::deque<Tensor> ets_;
  int counter_ = 0;
  Tensor cur_model_output_, cur_sample_;
};

RegisterScheduler reg({"pndm", "PNDMScheduler"}, [](const SchedulerConfig& c) {
  return std::make_unique<PNDM>(c);
});

}  // namespace
}  // namespace pigment
