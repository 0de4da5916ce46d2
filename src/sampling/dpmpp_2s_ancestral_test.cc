// DPM++ 2S a against a hand derivation of k-diffusion's sample_dpmpp_2s_ancestral: two sampling steps (linspace
// spacing: σ_max, then σ at t = 0, then 0) with the fake model eps = k · x_in and a generator whose noise is known.
// Step 1 takes two model calls (the log-σ midpoint toward σ_down, then the full step) and adds σ_up · noise; step 2
// ends at σ = 0, so it is one Euler call and draws nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "sampling/rng.h"
#include "sampling/sampler_test_util.h"
#include "sampling/scheduler.h"

namespace pigment {
namespace {

// randn returns `value` + 0.1·i, and counts its calls.
class KnownNoise : public Generator {
 public:
  explicit KnownNoise(float value) : value_(value) {}
  Tensor randn(const Shape& shape) override {
    ++draws;
    Tensor t = Tensor::empty(shape);
    for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = value_ + 0.1f * float(i);
    return t;
  }
  Tensor rand(const Shape& shape) override { return Tensor::full(shape, 0.5f); }
  int draws = 0;

 private:
  float value_;
};

// σ of SD's scaled_linear schedule at training step t, ((1 − ᾱ_t) / ᾱ_t)^½, with diffusers' float32 betas and
// cumulative product (in float64 the σ near t = 0 would differ by 1e-5 relative: 1 − ᾱ cancels).
double train_sigma(int t) {
  const double b0 = std::sqrt(0.00085), b1 = std::sqrt(0.012);
  float cum = 1;
  for (int i = 0; i <= t; ++i) {
    const float b = float(b0 + (b1 - b0) * i / 999.0);
    cum *= 1.0f - b * b;
  }
  return std::sqrt(double((1.0f - cum) / cum));
}

TEST(DPMPP2SAncestral, TwoStepsMatchTheHandDerivation) {
  const double k = 0.4;
  const std::vector<double> x_start = {1.5, -0.75, 0.2, 2.0};
  for (const double eta : {1.0, 0.5}) {
    for (const double s_noise : {1.0, 0.6}) {
      SCOPED_TRACE("eta " + std::to_string(eta) + ", s_noise " + std::to_string(s_noise));
      const std::string cfg = R"({"timestep_spacing": "linspace", "eta_ancestral": )" + std::to_string(eta) +
                              R"(, "s_noise": )" + std::to_string(s_noise) + "}";
      auto s = make_scheduler("dpmpp_2s_ancestral", testing::sd_config(cfg));
      s->set_timesteps(2);

      // By hand. Linspace spacing visits t = 999 and t = 0; the sample starts at x · σ0 (init_noise_sigma).
      const double s0 = train_sigma(999), s1 = train_sigma(0);
      // get_ancestral_step(σ0, σ1, eta): σ_up = min(σ1, eta·(σ1²(σ0² − σ1²)/σ0²)^½), σ_down = (σ1² − σ_up²)^½.
      const double up = std::min(s1, eta * std::sqrt(s1 * s1 * (s0 * s0 - s1 * s1) / (s0 * s0)));
      const double down = std::sqrt(s1 * s1 - up * up);
      // t = −log σ; h = t(σ_down) − t(σ0); the midpoint s = t + h/2, i.e. σ_mid = exp(−s).
      const double t = -std::log(s0), h = -std::log(down) - t, s_mid = std::exp(-(t + h / 2));
      // Three calls (σ0, σ_mid, σ1: the last step is one call); diffusers' σ table σ0, σ1, σ1, 0.
      ASSERT_EQ(s->timesteps().size(), 3u);
      ASSERT_EQ(s->sigmas().size(), 4u);
      EXPECT_NEAR(s->sigmas()[0], s0, 1e-5 * s0);
      EXPECT_NEAR(s->sigmas()[1], s1, 1e-5 * s1);
      EXPECT_EQ(s->sigmas()[2], s->sigmas()[1]);
      EXPECT_EQ(s->sigmas()[3], 0.0);
      EXPECT_NEAR(s->init_noise_sigma(), s0, 1e-5 * s0);
      // The midpoint call's timestep lies between the two steps' (σ_mid is between σ1 and σ0; with eta 1 it is
      // σ1 itself, σ_down being σ1²/σ0).
      EXPECT_LT(s->timesteps()[1], s->timesteps()[0]);
      EXPECT_GE(s->timesteps()[1], s->timesteps()[2]);

      std::vector<double> want_mid, want_1, want_2;
      for (size_t i = 0; i < x_start.size(); ++i) {
        const double x = x_start[i] * s0;
        // Call 1 at σ0: denoised = x − σ0·eps, eps = k·x/(σ0² + 1)^½.
        const double den = x - s0 * k * x / std::sqrt(s0 * s0 + 1);
        // x_2 = (σ_mid/σ0)·x − expm1(−h/2)·denoised.
        const double x2 = (s_mid / s0) * x - std::expm1(-h / 2) * den;
        // Call 2 at σ_mid: denoised_2 from x_2; x = (σ_down/σ0)·x − expm1(−h)·denoised_2 + σ_up·s_noise·noise.
        const double den2 = x2 - s_mid * k * x2 / std::sqrt(s_mid * s_mid + 1);
        const double noise = 0.3 + 0.1 * double(i);
        const double x1 = (down / s0) * x - std::expm1(-h) * den2 + up * s_noise * noise;
        // Step 2, σ1 → 0 (σ_down = 0): Euler, x + (x − denoised)/σ1 · (0 − σ1) = denoised.
        const double den3 = x1 - s1 * k * x1 / std::sqrt(s1 * s1 + 1);
        want_mid.push_back(x2);
        want_1.push_back(x1);
        want_2.push_back(den3);
      }

      // The sampler.
      KnownNoise gen(0.3f);
      Tensor x = Tensor::empty({1, 4, 1, 1});
      for (int64_t i = 0; i < 4; ++i) x.f32()[i] = float(x_start[size_t(i)] * s->init_noise_sigma());
      std::vector<std::vector<double>> got;
      for (double ts : s->timesteps()) {
        const Tensor x_in = s->scale_model_input(x, ts);
        Tensor eps = Tensor::empty(x.shape());
        for (int64_t i = 0; i < 4; ++i) eps.f32()[i] = float(k * x_in.f32()[i]);
        x = s->step(eps, ts, x, &gen);
        got.emplace_back(x.f32(), x.f32() + 4);
      }
      EXPECT_EQ(gen.draws, 1);  // only the step that does not end at σ = 0
      for (size_t i = 0; i < 4; ++i) {
        EXPECT_NEAR(got[0][i], want_mid[i], 1e-4 * (1 + std::fabs(want_mid[i]))) << "midpoint, element " << i;
        EXPECT_NEAR(got[1][i], want_1[i], 1e-4 * (1 + std::fabs(want_1[i]))) << "step 1, element " << i;
        EXPECT_NEAR(got[2][i], want_2[i], 1e-4 * (1 + std::fabs(want_2[i]))) << "step 2, element " << i;
      }
    }
  }
}

}  // namespace
}  // namespace pigment
