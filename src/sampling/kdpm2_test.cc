#include <gtest/gtest.h>

#include "sampling/exact_model_test_util.h"

namespace pigment {
namespace {

TEST(KDPM2, ExactModelRecoversX0) {
  sampler_checks::expect_recovers_x0("kdpm2", "{}");
  sampler_checks::expect_recovers_x0("KDPM2DiscreteScheduler", R"({"use_karras_sigmas": true})");
}

TEST(KDPM2, InterpolatedTimesteps) {
  auto s = make_scheduler("kdpm2", SchedulerConfig{});
  EXPECT_EQ(s->order(), 2);
  s->set_timesteps(6);
  const auto& t = s->timesteps();
  ASSERT_EQ(t.size(), 11u);
  // Each inserted timestep lies between its neighbours (the σ midpoint in log space).
  for (size_t k = 1; k + 1 < t.size(); k += 2) {
    EXPECT_LT(t[k], t[k - 1]);
    EXPECT_GT(t[k], t[k + 1]);
  }
  EXPECT_EQ(sampler_checks::run_exact_model("kdpm2", "{}", 6).draws, 0);
}

}  // namespace
}  // namespace pigment
