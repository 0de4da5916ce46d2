// DPM++ SDE and DPM++ 2S ancestral share TwoStageSampler; their behaviour is tested here side by side.
#include "sampling/two_stage_sampler.h"

#include <gtest/gtest.h>

#include <cmath>

#include "sampling/sampler_test_util.h"

namespace pigment {
namespace {

using testing::CountingGenerator;
using testing::max_abs_diff;
using testing::run_loop;
using testing::sd_config;
using testing::test_latents;

TEST(TwoStageSampler, ListsEveryModelCall) {
  for (const char* name : {"dpmpp_sde", "DPMSolverSDEScheduler", "dpmpp_2s_ancestral"}) {
    auto s = make_scheduler(name, sd_config());
    s->set_timesteps(6);
    EXPECT_EQ(s->order(), 2);
    ASSERT_EQ(s->timesteps().size(), 11u) << name;  // the last step, to σ = 0, is one call
    ASSERT_EQ(s->sigmas().size(), 12u) << name;     // the σ of every call, then 0
    EXPECT_EQ(s->sigmas().back(), 0.0);
    // With eta 1 the 2S midpoint σ (σ·σ_down)^½ is the next σ itself, so its timestep repeats (up to the float32
    // log-σ table of σ→t).
    for (size_t i = 0; i + 1 < s->timesteps().size(); ++i) EXPECT_GE(s->timesteps()[i] + 1e-3, s->timesteps()[i + 1]);
    // leading spacing: init_noise_sigma = (σ_max² + 1)^½
    EXPECT_NEAR(s->init_noise_sigma(), std::sqrt(s->sigmas()[0] * s->sigmas()[0] + 1), 1e-6);  // float32 math
  }
  auto k = make_scheduler("dpmpp_sde_karras", sd_config(R"({"timestep_spacing": "linspace"})"));
  k->set_timesteps(4);
  EXPECT_NEAR(k->sigmas()[0], 14.614645, 1e-4);
  EXPECT_NEAR(k->sigmas()[k->sigmas().size() - 2], 0.0291675, 1e-6);  // the last call is at σ_min
  EXPECT_NEAR(k->init_noise_sigma(), k->sigmas()[0], 1e-12);
}

TEST(TwoStageSampler, NoiseDraws) {
  CountingGenerator sde_gen, anc_gen;
  auto sde = make_scheduler("dpmpp_sde", sd_config());
  auto anc = make_scheduler("dpmpp_2s_ancestral", sd_config());
  run_loop(*sde, 6, test_latents(), &sde_gen);
  run_loop(*anc, 6, test_latents(), &anc_gen);
  EXPECT_EQ(sde_gen.draws, 1);  // without noise_sampler_seed: one draw seeds the Brownian tree
  EXPECT_EQ(anc_gen.draws, 5);  // one per step not ending at σ = 0
  EXPECT_THROW(run_loop(*sde, 6, test_latents(), nullptr), Error);
  EXPECT_THROW(run_loop(*anc, 6, test_latents(), nullptr), Error);

  // With a seed the tree needs no generator; it is asked twice per two-call step, and the same seed gives the same
  // run whatever generator is passed.
  auto seeded = make_scheduler("dpmpp_sde", sd_config(R"({"noise_sampler_seed": 99})"));
  int noises = 0;
  seeded->set_noise_observer([&](const std::string& what, const Tensor&) { noises += what == "noise"; });
  CountingGenerator unused;
  const Tensor a = run_loop(*seeded, 6, test_latents(), &unused);
  EXPECT_EQ(unused.draws, 0);
  EXPECT_EQ(noises, 10);
  EXPECT_EQ(max_abs_diff(a, run_loop(*seeded, 6, test_latents(), nullptr)), 0.0);
  auto other = make_scheduler("dpmpp_sde", sd_config(R"({"noise_sampler_seed": "100"})"));
  EXPECT_GT(max_abs_diff(a, run_loop(*other, 6, test_latents(), nullptr)), 1e-3);
  EXPECT_THROW(make_scheduler("dpmpp_sde", sd_config(R"({"noise_sampler_seed": -1})")), Error);
  EXPECT_THROW(make_scheduler("dpmpp_sde", sd_config(R"({"noise_sampler_seed": "12x"})")), Error);
}

// With eta 0 both are the deterministic DPM-Solver++(2S) and give the same result.
TEST(TwoStageSampler, WithoutNoiseBothAreDpmSolver2S) {
  auto sde = make_scheduler("dpmpp_sde", sd_config(R"({"eta_ancestral": 0})"));
  auto anc = make_scheduler("dpmpp_2s_a", sd_config(R"({"eta_ancestral": 0})"));
  const Tensor a = run_loop(*sde, 8, test_latents());
  const Tensor b = run_loop(*anc, 8, test_latents());
  EXPECT_LT(max_abs_diff(a, b), 1e-6);
  EXPECT_EQ(max_abs_diff(a, run_loop(*sde, 8, test_latents())), 0.0);  // set_timesteps resets the state
}

// Without noise the 2S step is second order: four times the steps, about a sixteenth of the error.
TEST(TwoStageSampler, DeterministicStepIsSecondOrder) {
  const std::string cfg = R"({"eta_ancestral": 0, "timestep_spacing": "linspace"})";
  auto run = [&](int n) { return run_loop(*make_scheduler("dpmpp_sde", sd_config(cfg)), n, test_latents()); };
  const Tensor ref = run(640);
  const double e40 = max_abs_diff(run(40), ref), e160 = max_abs_diff(run(160), ref);
  EXPECT_GT(e40 / e160, 10.0);
}

// A model that knows the clean sample leads every sampler there, noise or not.
TEST(TwoStageSampler, ExactDenoiserReachesTheCleanSample) {
  const Tensor clean = Tensor::full({1, 4, 2, 2}, -0.5f);
  for (const char* name : {"dpmpp_sde", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_karras"}) {
    for (const char* pred : {R"({"prediction_type": "sample"})", R"({"prediction_type": "sample", "s_noise": 0.5})"}) {
      CountingGenerator g;
      auto s = make_scheduler(name, sd_config(pred));
      const Tensor x = run_loop(*s, 5, test_latents({1, 4, 2, 2}), &g, [&](const Tensor&, double) { return clean; });
      for (int64_t i = 0; i < x.numel(); ++i) EXPECT_NEAR(x.f32()[i], -0.5f, 1e-5) << name;
    }
  }
}

TEST(TwoStageSampler, MisuseAndBadConfigsThrow) {
  EXPECT_THROW(make_scheduler("dpmpp_sde", sd_config(R"({"prediction_type": "flow"})")), Error);
  EXPECT_THROW(make_scheduler("dpmpp_sde", sd_config(R"({"eta_ancestral": -1})")), Error);
  EXPECT_THROW(make_scheduler("dpmpp_sde", sd_config(R"({"timestep_spacing": "cosine"})")), Error);
  auto s = make_scheduler("dpmpp_sde", sd_config());
  const Tensor x = test_latents();
  EXPECT_THROW(s->scale_model_input(x, 999), Error);  // before set_timesteps
  s->set_timesteps(4);
  EXPECT_THROW(s->step(x, 12.5, x, nullptr), Error);  // not in the schedule
  EXPECT_THROW(s->add_noise(x, x, 12.5), Error);
  const Tensor noisy = s->add_noise(x, x, s->timesteps()[0]);
  EXPECT_NEAR(noisy.f32()[0], x.f32()[0] * (1 + s->sigmas()[0]), 1e-4);
}

}  // namespace
}  // namespace pigment
