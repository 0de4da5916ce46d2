// DPM++ SDE (k-diffusion sample_dpmpp_sde as AUTOMATIC1111 runs it; diffusers DPMSolverSDEScheduler): a stochastic
// second-order DPM-Solver++ step through the log-σ midpoint (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided
// Sampling of Diffusion Probabilistic Models"). The noise comes, as in k-diffusion and diffusers, from a Brownian
// motion over σ (sampling/brownian_tree.h, torchsde's BrownianInterval) seeded by the config's noise_sampler_seed:
// each call adds (W(σ_to) − W(σ_from)) / |σ_to − σ_from|^½ · σ_up, the two calls of a step overlapping.
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>

#include "ops/ops.h"
#include "sampling/brownian_tree.h"
#include "sampling/noise_schedule.h"
#include "sampling/torch_float_math.h"
#include "sampling/two_stage_sampler.h"

namespace pigment {

namespace {

// noise_sampler_seed: a non-negative integer (or its decimal string, for seeds past 2^53 in JSON); absent or null
// means "take one from the step generator".
std::optional<uint64_t> noise_seed(const SchedulerConfig& c, const std::string& who) {
  nlohmann::json ex;
  try {
    ex = nlohmann::json::parse(c.json_extra);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (!ex.is_object() || !ex.contains("noise_sampler_seed") || ex["noise_sampler_seed"].is_null()) return std::nullopt;
  const auto& v = ex["noise_sampler_seed"];
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    const bool digits = !s.empty() && s.size() <= 20 && s.find_first_not_of("0123456789") == std::string::npos;
    if (digits && (s.size() < 20 || s <= "18446744073709551615")) return std::stoull(s);
  }
  fail(who, ": noise_sampler_seed must be an integer in [0, 2^64), got ", v.dump());
}

class DPMSolverSDE : public TwoStageSampler {
 public:
  explicit DPMSolverSDE(const SchedulerConfig& c) : TwoStageSampler(c, "DPMSolverSDEScheduler") {
    eta_ = schedule::extra_number(c, "eta_ancestral", 1.0);
    s_noise_ = schedule::extra_number(c, "s_noise", 1.0);
    PIG_CHECK(eta_ >= 0 && s_noise_ >= 0, who_, ": eta_ancestral and s_noise must not be negative");
    seed_ = noise_seed(c, who_);
  }

  void set_timesteps(int n) override {
    TwoStageSampler::set_timesteps(n);
    tree_.reset();
  }

 protected:
  // The midpoint of the step in log σ (r = 1/2); the last step, to σ = 0, is a single Euler call.
  double midpoint_sigma(double s, double s_next) const override { return s_next > 0 ? std::sqrt(s * s_next) : 0.0; }

  Tensor single_call(const Tensor& x, const Tensor& d, double s, double s_next, Generator*) override {
    return step_to(x, d, s, s_next);
  }

  Tensor first_stage(const Tensor& x, const Tensor& d, double s, double s_mid, double s_next,
                     Generator* gen) override {
    const auto [down, up] = ancestral_step(s, s_mid, eta_);
    return add_tree_noise(step_to(x, d, s, down), x.shape(), s, s_next, true, gen, s_noise_ * up);
  }

  // With r = 1/2 the update uses the midpoint's denoised estimate alone.
  Tensor second_stage(const Tensor& x, const Tensor&, const Tensor& d_mid, double s, double, double s_next,
                      Generator* gen) override {
    const auto [down, up] = ancestral_step(s, s_next, eta_);
    return add_tree_noise(step_to(x, d_mid, s, down), x.shape(), s, s_next, false, gen, s_noise_ * up);
  }

 private:
  // The noise of one call, as diffusers' step() asks its BrownianTreeNoiseSampler for it: the times are float32
  // values from t = −log σ (σ_from = exp(−t), σ_to = exp(−t_next) or the log-space midpoint), the tree spans
  // [min σ > 0, max σ] of the float32 table and is built at the first call that draws.
  Tensor add_tree_noise(const Tensor& x, const Shape& shape, double s, double s_next, bool to_midpoint,
                        Generator* gen, double scale) {
    if (scale == 0) return x;
    if (!tree_) {
      const std::vector<double>& b = step_sigmas();
      float lo = 0, hi = 0;
      for (double v : b)
        if (float(v) > 0) {
          lo = lo == 0 ? float(v) : std::min(lo, float(v));
          hi = std::max(hi, float(v));
        }
      PIG_CHECK(lo < hi, who_, ": the σ table spans no interval for the Brownian tree");
      uint64_t seed = 0;
      if (seed_) {
        seed = *seed_;
      } else {
        PIG_CHECK(gen != nullptr, who_, ": this step adds fresh noise and needs a generator or a noise_sampler_seed");
        // As diffusers takes a seed from torch's global generator: 48 bits from two draws of the step generator.
        const Tensor u = gen->rand({2});
        seed = (uint64_t(u.f32()[0] * 16777216.0f) << 24) | uint64_t(u.f32()[1] * 16777216.0f);
      }
      tree_.emplace(double(lo), double(hi), shape, seed);
    }
    const float t = -torch_math::logf(float(s)), t_next = -torch_math::logf(float(s_next));
    const float t_to = to_midpoint ? t + (t_next - t) * 0.5f : t_next;
    const float from = torch_math::expf(-t), to = torch_math::expf(-t_to);
    Tensor w = tree_->increment(double(from), double(to));
    PIG_CHECK(w.shape() == x.shape(), who_, ": the sample's shape ", shape_str(x.shape()),
              " changed after the Brownian tree was built for ", shape_str(w.shape()));
    const float root = std::sqrt(std::fabs(to - from));
    Tensor noise = Tensor::empty(w.shape());
    for (int64_t i = 0; i < w.numel(); ++i) noise.f32()[i] = w.f32()[i] / root;
    if (noise_observer_) {
      noise_observer_("brownian_increment", w);
      noise_observer_("noise", noise);
    }
    return ops::add_scaled(x, noise, float(scale));
  }

  double eta_ = 1.0, s_noise_ = 1.0;
  std::optional<uint64_t> seed_;
  std::optional<BrownianTree> tree_;
};

std::unique_ptr<Scheduler> make(SchedulerConfig c, bool karras) {
  if (karras) c.use_karras_sigmas = true;
  return std::make_unique<DPMSolverSDE>(c);
}

RegisterScheduler reg({"DPMSolverSDEScheduler", "dpmpp_sde"}, [](const SchedulerConfig& c) { return make(c, false); });
RegisterScheduler reg_karras({"dpmpp_sde_karras"}, [](const SchedulerConfig& c) { return make(c, true); });

}  // namespace

}  // namespace pigment
