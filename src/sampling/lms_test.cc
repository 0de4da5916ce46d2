#include <gtest/gtest.h>

#include "sampling/exact_model_test_util.h"

namespace pigment {
namespace {

TEST(LMS, ExactModelRecoversX0) {
  // With a constant derivative every LMS combination must equal a plain Euler step: the coefficients of each
  // step sum to σ_{i+1} - σ_i.
  sampler_checks::expect_recovers_x0("lms", "{}");
  // Karras at 1000 steps ends with one long interval after many tiny ones: order-4 extrapolation over it magnifies
  // float rounding, so that case only has to stay close.
  sampler_checks::expect_recovers_x0("LMSDiscreteScheduler", R"({"use_karras_sigmas": true})", {1, 7});
  sampler_checks::expect_recovers_x0("LMSDiscreteScheduler", R"({"use_karras_sigmas": true})", {1000}, 0.05);
  sampler_checks::expect_recovers_x0("lms", R"({"order": 2, "timestep_spacing": "linspace"})");
}

TEST(LMS, DrawsNothingAndRejectsBadOrder) {
  EXPECT_EQ(sampler_checks::run_exact_model("lms", "{}", 6).draws, 0);
  EXPECT_THROW(make_scheduler("lms", SchedulerConfig::from_json(R"({"order": 0})")), Error);
}

}  // namespace
}  // namespace pigment
