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

// An x0 ("sample") model (diffusers raises NotImplementedError here; pigment takes the output as x0): a model that
// always answers the true x0 is brought to it exactly, whatever the steps and the fresh noise between them.
TEST(EulerAncestral, SamplesAnX0PredictionModel) {
  for (int steps : {1, 7}) {
    auto s = make_scheduler("euler_a", SchedulerConfig::from_json(R"({"prediction_type": "sample"})"));
    s->set_timesteps(steps);
    const Tensor x0 = sampler_checks::pattern({1, 4, 4, 8}, 0.2), eps = sampler_checks::pattern({1, 4, 4, 8}, 1.1);
    sampler_checks::CountingCpuGenerator gen;
    Tensor x = s->add_noise(x0, eps, s->timesteps().front());
    for (double t : s->timesteps()) x = s->step(x0, t, x, &gen);
    EXPECT_LT(sampler_checks::max_abs_diff(x, x0), 1e-4) << steps << " steps";
    EXPECT_EQ(gen.draws, steps);
  }
}

}  // namespace
}  // namespace pigment
