#include <gtest/gtest.h>

#include "sampling/exact_model_test_util.h"

namespace pigment {
namespace {

TEST(Heun, ExactModelRecoversX0) {
  sampler_checks::expect_recovers_x0("heun", "{}");
  sampler_checks::expect_recovers_x0("heun", R"({"use_karras_sigmas": true, "prediction_type": "epsilon"})");
}

TEST(Heun, TwoCallsPerStepButOneOnTheLast) {
  auto s = make_scheduler("HeunDiscreteScheduler", SchedulerConfig{});
  EXPECT_EQ(s->order(), 2);
  s->set_timesteps(5);
  EXPECT_EQ(s->timesteps().size(), 9u);
  EXPECT_EQ(s->sigmas().size(), 10u);
  EXPECT_EQ(s->timesteps()[1], s->timesteps()[2]);
  EXPECT_EQ(sampler_checks::run_exact_model("heun", "{}", 5).draws, 0);
}

}  // namespace
}  // namespace pigment
