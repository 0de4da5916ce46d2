#include <gtest/gtest.h>

#include "sampling/sampler_test_util.h"

namespace pigment {
namespace {

using testing::CountingGenerator;
using testing::run_loop;
using testing::sd_config;
using testing::test_latents;

TEST(LCM, TimestepsComeFromTheDistillationSchedule) {
  auto s = make_scheduler("LCMScheduler", sd_config());
  s->set_timesteps(6);
  EXPECT_EQ(s->timesteps(), (std::vector<double>{999, 839, 679, 499, 339, 179}));
  s->set_timesteps(4);
  EXPECT_EQ(s->timesteps(), (std::vector<double>{999, 759, 499, 259}));
  s->set_timesteps(1);
  EXPECT_EQ(s->timesteps(), (std::vector<double>{999}));
  EXPECT_THROW(s->set_timesteps(51), Error);  // more than original_inference_steps
  EXPECT_THROW(make_scheduler("lcm", sd_config(R"({"original_inference_steps": 2000})")), Error);
}

TEST(LCM, DrawsNoiseBeforeEveryStepButTheLast) {
  CountingGenerator g;
  auto s = make_scheduler("lcm", sd_config());
  run_loop(*s, 6, test_latents(), &g);
  EXPECT_EQ(g.draws, 5);
  EXPECT_THROW(run_loop(*s, 6, test_latents(), nullptr), Error);
  CountingGenerator one;
  run_loop(*s, 1, test_latents(), &one);  // a single step needs no noise
  EXPECT_EQ(one.draws, 0);
}

// A model that knows the clean sample x0 returns it (nearly exactly: c_skip is tiny) at the last step.
TEST(LCM, LastStepReturnsTheDenoisedSample) {
  auto s = make_scheduler("lcm", sd_config(R"({"prediction_type": "sample"})"));
  const Tensor clean = Tensor::full({1, 4, 2, 2}, 0.25f);
  CountingGenerator g;
  const Tensor x = run_loop(*s, 4, test_latents({1, 4, 2, 2}), &g, [&](const Tensor&, double) { return clean; });
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_NEAR(x.f32()[i], 0.25f, 1e-4);
}

TEST(LCM, RejectsTimestepsOutsideTheSchedule) {
  auto s = make_scheduler("lcm", sd_config());
  s->set_timesteps(4);
  const Tensor x = test_latents();
  EXPECT_THROW(s->step(x, 500, x, nullptr), Error);
}

}  // namespace
}  // namespace pigment
