#include <gtest/gtest.h>

#include "sampling/exact_model_test_util.h"

namespace pigment {
namespace {

TEST(EulerAncestral, DrawsOncePerStepAndStaysFinite) {
  for (int steps : {1, 7, 1000}) {
    auto r = sampler_checks::run_exact_model("euler_a", "{}", steps);
    EXPECT_EQ(r.draws, steps);
    // The last step goes to σ = 0 with no fresh noise: x0 plus only what the earlier noise left.
    for (int64_t i = 0; i < r.out.numel(); ++i) EXPECT_TRUE(std::isfinite(r.out.f32()[i]));
  }
  // One step: σ_up = 0 on the way to σ = 0, so the exact model lands on x0.
  auto one = sampler_checks::run_exact_model("EulerAncestralDiscreteScheduler", "{}", 1);
  EXPECT_LT(sampler_checks::max_abs_diff(one.out, one.x0), 1e-4);
}

TEST(EulerAncestral, RejectsSamplePrediction) {
  EXPECT_THROW(make_scheduler("euler_a", SchedulerConfig::from_json(R"({"prediction_type": "sample"})")), Error);
}

}  // namespace
}  // namespace pigment
