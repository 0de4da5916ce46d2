#include <gtest/gtest.h>

#include "sampling/exact_model_test_util.h"

namespace pigment {
namespace {

TEST(DDIM, ExactModelRecoversX0) {
  // DDIM steps back by T // N whatever the spacing (as diffusers 0.25 does), and leading spacing at 1000 steps ends
  // on t = 0 (ᾱ_0, not 1): only step counts where the spacing agrees land exactly on x0.
  sampler_checks::expect_recovers_x0("ddim", R"({"set_alpha_to_one": true})", {1, 7, 50});
  sampler_checks::expect_recovers_x0("DDIMScheduler", R"({"set_alpha_to_one": true, "timestep_spacing": "linspace"})",
                                     {1, 1000});
  sampler_checks::expect_recovers_x0("ddim", R"({"set_alpha_to_one": true, "timestep_spacing": "trailing"})", {1, 4, 50});
}

TEST(DDIM, EtaDecidesTheDraws) {
  EXPECT_EQ(sampler_checks::run_exact_model("ddim", "{}", 8).draws, 0);
  EXPECT_EQ(sampler_checks::run_exact_model("ddim", R"({"eta": 1.0})", 8).draws, 8);
  EXPECT_THROW(make_scheduler("ddim", SchedulerConfig::from_json(R"({"eta": -1})")), Error);
}

TEST(DDIM, LeadingTimesteps) {
  auto s = make_scheduler("ddim", SchedulerConfig{});
  s->set_timesteps(20);
  EXPECT_EQ(s->timesteps().front(), 951);
  EXPECT_EQ(s->timesteps()[1], 901);
  EXPECT_EQ(s->timesteps().back(), 1);
  EXPECT_THROW(s->set_timesteps(1001), Error);
}

}  // namespace
}  // namespace pigment
