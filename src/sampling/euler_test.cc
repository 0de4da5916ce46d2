#include <gtest/gtest.h>

#include "sampling/exact_model_test_util.h"

namespace pigment {
namespace {

TEST(Euler, ExactModelRecoversX0) {
  sampler_checks::expect_recovers_x0("euler", "{}");
  sampler_checks::expect_recovers_x0("euler", R"({"use_karras_sigmas": true})");
  sampler_checks::expect_recovers_x0("euler", R"({"timestep_spacing": "trailing", "use_exponential_sigmas": true})");
  sampler_checks::expect_recovers_x0("euler", R"({"use_polyexponential_sigmas": true})");
}

TEST(Euler, DrawsNoiseEveryStepEvenWithoutChurn) {
  EXPECT_EQ(sampler_checks::run_exact_model("EulerDiscreteScheduler", "{}", 9).draws, 9);
}

TEST(Euler, KarrasTableAndInitSigma) {
  auto s = make_scheduler("euler", SchedulerConfig::from_json(R"({"use_karras_sigmas": true})"));
  s->set_timesteps(10);
  ASSERT_EQ(s->sigmas().size(), 11u);
  EXPECT_EQ(s->sigmas().back(), 0.0);
  EXPECT_GT(s->timesteps().front(), s->timesteps().back());
  // leading spacing: (σ_max² + 1)^½
  EXPECT_NEAR(s->init_noise_sigma(), std::sqrt(s->sigmas().front() * s->sigmas().front() + 1), 1e-4);
}

TEST(Euler, RejectsBadConfig) {
  EXPECT_THROW(make_scheduler("euler", SchedulerConfig::from_json(R"({"prediction_type": "x0"})")), Error);
  EXPECT_THROW(make_scheduler("euler", SchedulerConfig::from_json(R"({"use_karras_sigmas": true,
                                                                       "use_exponential_sigmas": true})")),
               Error);
  auto s = make_scheduler("euler", SchedulerConfig{});
  EXPECT_THROW(s->set_timesteps(0), Error);
  s->set_timesteps(4);
  sampler_checks::CountingCpuGenerator g;
  Tensor x = Tensor::zeros({1, 4, 2, 2});
  EXPECT_THROW(s->step(x, 123.0, x, &g), Error);  // not one of the timesteps
}

}  // namespace
}  // namespace pigment
