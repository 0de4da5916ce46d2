#include <gtest/gtest.h>

#include "sampling/exact_model_test_util.h"

namespace pigment {
namespace {

TEST(DDPM, OneStepWithAnExactModelLandsOnX0) {
  // From t = 1 (leading, one step) the posterior mean with the exact x0 is x0 up to the tiny variance noise.
  auto r = sampler_checks::run_exact_model("ddpm", R"({"clip_sample": false})", 1);
  EXPECT_EQ(r.draws, 1);
  EXPECT_LT(sampler_checks::max_abs_diff(r.out, r.x0), 0.05);
}

TEST(DDPM, DrawsWhileTPositive) {
  EXPECT_EQ(sampler_checks::run_exact_model("ddpm", R"({"timestep_spacing": "linspace"})", 5).draws, 4);  // last t is 0
  auto r = sampler_checks::run_exact_model("DDPMScheduler", "{}", 1000);
  for (int64_t i = 0; i < r.out.numel(); ++i) EXPECT_TRUE(std::isfinite(r.out.f32()[i]));
  EXPECT_THROW(make_scheduler("ddpm", SchedulerConfig::from_json(R"({"variance_type": "learned"})")), Error);
}

}  // namespace
}  // namespace pigment
