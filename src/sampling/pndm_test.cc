#include <gtest/gtest.h>

#include "sampling/exact_model_test_util.h"

namespace pigment {
namespace {

TEST(PNDM, PlmsRepeatsItsSecondTimestep) {
  auto s = make_scheduler("pndm", SchedulerConfig::from_json(R"({"skip_prk_steps": true})"));
  s->set_timesteps(6);
  EXPECT_EQ(s->timesteps(), (std::vector<double>{831, 665, 665, 499, 333, 167, 1}));
}

TEST(PNDM, PrkWarmUp) {
  auto s = make_scheduler("PNDMScheduler", SchedulerConfig{});
  s->set_timesteps(4);
  EXPECT_EQ(s->timesteps().size(), 13u);
  EXPECT_THROW(s->set_timesteps(3), Error);
}

TEST(PNDM, ExactModelRecoversX0) {
  // Like DDIM, PNDM steps back by T // N: the leading spacing agrees with it, linspace only at 1 and 1000 steps.
  sampler_checks::expect_recovers_x0("pndm", R"({"skip_prk_steps": true, "set_alpha_to_one": true})", {1, 7, 50});
  sampler_checks::expect_recovers_x0("pndm", R"({"skip_prk_steps": true, "set_alpha_to_one": true,
                                                "timestep_spacing": "linspace"})", {1000});
  sampler_checks::expect_recovers_x0("pndm", R"({"set_alpha_to_one": true})", {4, 50});
  sampler_checks::expect_recovers_x0("pndm", R"({"set_alpha_to_one": true, "timestep_spacing": "linspace"})", {1000});
  EXPECT_EQ(sampler_checks::run_exact_model("pndm", "{}", 10).draws, 0);
}

}  // namespace
}  // namespace pigment
