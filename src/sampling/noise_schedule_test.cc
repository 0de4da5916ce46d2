#include "sampling/noise_schedule.h"

#include <gtest/gtest.h>

#include <cmath>

#include "sampling/scheduler.h"

namespace pigment::schedule {
namespace {

TEST(Betas, EndpointsAndCumprod) {
  auto lin = make_betas("linear", 1000, 0.0001, 0.02);
  EXPECT_FLOAT_EQ(lin.front(), 0.0001f);
  EXPECT_FLOAT_EQ(lin.back(), 0.02f);
  auto sl = make_betas("scaled_linear", 1000, 0.00085, 0.012);
  EXPECT_NEAR(sl.front(), 0.00085, 1e-9);
  EXPECT_NEAR(sl.back(), 0.012, 1e-9);
  auto cos = make_betas("squaredcos_cap_v2", 1000, 0, 0);
  EXPECT_LE(cos.back(), 0.999f);
  auto ac = alphas_cumprod_from_betas(sl);
  EXPECT_FLOAT_EQ(ac[0], 1.0f - sl[0]);
  for (size_t i = 1; i < ac.size(); ++i) EXPECT_LT(ac[i], ac[i - 1]);
  EXPECT_THROW(make_betas("cubic", 1000, 0.1, 0.2), Error);
}

TEST(Betas, ZeroTerminalSnr) {
  auto b = rescale_zero_terminal_snr(make_betas("scaled_linear", 1000, 0.00085, 0.012));
  auto ac = alphas_cumprod_from_betas(b);
  EXPECT_EQ(ac.back(), 0.0f);
  EXPECT_NEAR(ac.front(), 1.0f - 0.00085f, 1e-6);
}

TEST(Timesteps, Spacings) {
  auto lead = spaced_timesteps("leading", 1000, 20, 1, true);
  ASSERT_EQ(lead.size(), 20u);
  EXPECT_EQ(lead.front(), 951);
  EXPECT_EQ(lead.back(), 1);
  auto trail = spaced_timesteps("trailing", 1000, 4, 1, true);
  EXPECT_EQ(trail, (std::vector<double>{999, 749, 499, 249}));
  auto lin = spaced_timesteps("linspace", 1000, 6, 1, false);
  EXPECT_NEAR(lin[1], 799.2, 1e-4);
  EXPECT_EQ(lin.back(), 0);
  EXPECT_EQ(spaced_timesteps("leading", 1000, 1, 1, true), std::vector<double>{1});
  EXPECT_EQ(spaced_timesteps("leading", 1000, 1000, 1, true).front(), 1000);
  EXPECT_THROW(spaced_timesteps("leading", 1000, 1001, 1, true), Error);
  EXPECT_THROW(spaced_timesteps("leading", 1000, 0, 1, true), Error);
  EXPECT_THROW(spaced_timesteps("random", 1000, 10, 1, true), Error);
}

TEST(Sigmas, KarrasAndFriends) {
  auto k = karras_sigmas(0.03, 14.6, 10);
  ASSERT_EQ(k.size(), 10u);
  EXPECT_NEAR(k.front(), 14.6, 1e-9);
  EXPECT_NEAR(k.back(), 0.03, 1e-9);
  for (size_t i = 1; i < k.size(); ++i) EXPECT_LT(k[i], k[i - 1]);
  EXPECT_NEAR(karras_sigmas(0.03, 14.6, 1).at(0), 14.6, 1e-9);
  EXPECT_THROW(karras_sigmas(15.0, 14.6, 10), Error);
  EXPECT_THROW(karras_sigmas(0.0, 14.6, 10), Error);
  auto e = exponential_sigmas(0.1, 10, 3);
  EXPECT_NEAR(e[1], 1.0, 1e-12);
  auto p = polyexponential_sigmas(0.1, 10, 3, 1.0);
  EXPECT_NEAR(p[1], 1.0, 1e-12);
}

TEST(Sigmas, SigmaToTInvertsTheTable) {
  TrainSchedule s = TrainSchedule::from_config(SchedulerConfig{});
  auto table = s.sigmas();
  EXPECT_NEAR(sigma_to_t(table[500], table), 500, 1e-3);
  EXPECT_NEAR(sigma_to_t(std::sqrt(double(table[500]) * table[501]), table), 500.5, 0.01);
  EXPECT_EQ(sigma_to_t(1e6, table), 999);
  EXPECT_EQ(sigma_to_t(0, table), 0);
  EXPECT_NEAR(sigma_to_t_f32(table[250], table), 250, 1e-3);
  auto v = interp_table({0.5, 999, 2000}, table);
  EXPECT_NEAR(v[0], (double(table[0]) + table[1]) / 2, 1e-9);
  EXPECT_EQ(v[2], table[999]);
}

TEST(Predictions, RoundTrip) {
  const float a = 0.6f;
  Tensor x0 = Tensor::full({2, 3}, 0.5f), eps = Tensor::full({2, 3}, -1.25f);
  Tensor xt = lincomb(std::sqrt(a), x0, std::sqrt(1 - a), eps);
  Tensor v = lincomb(std::sqrt(a), eps, -std::sqrt(1 - a), x0);
  const std::vector<std::pair<std::string, Tensor>> outputs = {{"epsilon", eps}, {"sample", x0}, {"v_prediction", v}};
  for (const auto& [type, out] : outputs) {
    auto r = alpha_prediction(type, out, xt, a);
    EXPECT_NEAR(r.x0.f32()[0], 0.5f, 1e-5) << type;
    EXPECT_NEAR(r.eps.f32()[0], -1.25f, 1e-5) << type;
  }
  EXPECT_THROW(alpha_prediction("x0", eps, xt, a), Error);
  const double sigma = 2.0;
  Tensor xs = add_noise_sigma(x0, eps, sigma);
  EXPECT_NEAR(sigma_prediction_x0("epsilon", eps, xs, sigma).f32()[0], 0.5f, 1e-6);
}

TEST(Clipping, DynamicThresholdAndClip) {
  // One batch element with |x| up to 4: the 0.5 quantile of {0.5, 1, 2, 4} is 1.5, so x → clamp(x, ±1.5) / 1.5.
  Tensor x = Tensor::from_vector({1, 4}, {0.5f, -1.0f, 2.0f, -4.0f});
  auto y = dynamic_threshold(x, 0.5, 3.0).to_vector();
  EXPECT_NEAR(y[0], 0.5f / 1.5f, 1e-6);
  EXPECT_NEAR(y[2], 1.0f, 1e-6);
  EXPECT_NEAR(y[3], -1.0f, 1e-6);
  // The threshold never drops below 1: small samples pass unchanged.
  Tensor small = Tensor::from_vector({1, 2}, {0.25f, -0.5f});
  EXPECT_EQ(dynamic_threshold(small, 0.995, 1.0).to_vector(), small.to_vector());
  auto c = SchedulerConfig::from_json(R"({"clip_sample": true, "clip_sample_range": 2.0})");
  EXPECT_EQ(clip_x0(c, x).to_vector(), (std::vector<float>{0.5f, -1.0f, 2.0f, -2.0f}));
  auto t = SchedulerConfig::from_json(R"({"clip_sample": true, "thresholding": true, "sample_max_value": 2.0})");
  EXPECT_NEAR(clip_x0(t, x).to_vector()[3], -1.0f, 1e-6);
}

TEST(Config, Extras) {
  auto c = SchedulerConfig::from_json(R"({"solver_order": 3, "lower_order_final": true, "algorithm_type": "x"})");
  EXPECT_EQ(extra_number(c, "solver_order", 2), 3);
  EXPECT_TRUE(extra_bool(c, "lower_order_final", false));
  EXPECT_EQ(extra_string(c, "algorithm_type", ""), "x");
  EXPECT_EQ(extra_number(c, "missing", 7), 7);
  EXPECT_THROW(extra_bool(c, "solver_order", false), Error);
  auto t = SchedulerConfig::from_json(R"({"trained_betas": [0.1, 0.2, 0.3]})");
  EXPECT_EQ(TrainSchedule::from_config(t).size(), 3);
}

TEST(Img2Img, TruncatesLikeDiffusers) {
  auto euler = make_scheduler("euler", SchedulerConfig{});
  euler->set_timesteps(10);
  auto r = img2img_timesteps(*euler, 10, 0.3);
  EXPECT_EQ(r.t_start, 7);
  EXPECT_EQ(r.num_inference_steps, 3);
  EXPECT_EQ(r.timesteps, std::vector<double>(euler->timesteps().begin() + 7, euler->timesteps().end()));
  EXPECT_EQ(r.start_timestep, euler->timesteps()[7]);
  auto full = img2img_timesteps(*euler, 10, 1.0);
  EXPECT_EQ(full.timesteps, euler->timesteps());
  auto none = img2img_timesteps(*euler, 10, 0.0);
  EXPECT_TRUE(none.timesteps.empty());
  EXPECT_EQ(none.num_inference_steps, 0);
  EXPECT_THROW(img2img_timesteps(*euler, 10, 1.5), Error);
  EXPECT_THROW(img2img_timesteps(*euler, 10, -0.1), Error);
  // Second-order samplers skip t_start · order calls, landing on a first-order call.
  auto heun = make_scheduler("heun", SchedulerConfig{});
  heun->set_timesteps(10);
  auto h = img2img_timesteps(*heun, 10, 0.5);
  EXPECT_EQ(h.timesteps.size(), heun->timesteps().size() - 10);
  // One and 1000 steps.
  euler->set_timesteps(1);
  EXPECT_EQ(img2img_timesteps(*euler, 1, 0.99).timesteps.size(), 0u);
  EXPECT_EQ(img2img_timesteps(*euler, 1, 1.0).timesteps.size(), 1u);
  euler->set_timesteps(1000);
  EXPECT_EQ(img2img_timesteps(*euler, 1000, 0.25).timesteps.size(), 250u);
}

}  // namespace
}  // namespace pigment::schedule
