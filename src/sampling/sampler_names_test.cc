#include "sampling/sampler_names.h"

#include <gtest/gtest.h>

#include "sampling/noise_schedule.h"

namespace pigment {
namespace {

TEST(SamplerNames, A1111Labels) {
  auto c = resolve_sampler("DPM++ 2M Karras");
  EXPECT_EQ(c.scheduler, "dpmpp_2m");
  EXPECT_EQ(c.schedule, "karras");
  EXPECT_EQ(resolve_sampler("euler a").scheduler, "euler_a");
  EXPECT_EQ(resolve_sampler("EulerDiscreteScheduler").scheduler, "EulerDiscreteScheduler");
  for (const auto& l : a1111_sampler_labels()) EXPECT_NO_THROW(make_sampler(l.label, SchedulerConfig{})) << l.label;
}

TEST(SamplerNames, UnknownNamesListTheValidOnes) {
  try {
    resolve_sampler("Euler b");
    FAIL();
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("Euler a"), std::string::npos);
    EXPECT_NE(m.find("EulerDiscreteScheduler"), std::string::npos);
    EXPECT_EQ(m.find('\n'), std::string::npos);
  }
  EXPECT_THROW(resolve_schedule("Wavy"), Error);
  EXPECT_THROW(make_scheduler("nope", SchedulerConfig{}), Error);
}

TEST(SamplerNames, SchedulesApply) {
  auto c = apply_sampler_choice(SchedulerConfig{}, resolve_sampler("Euler"), "Karras");
  EXPECT_TRUE(c.use_karras_sigmas);
  c = apply_sampler_choice(SchedulerConfig{}, resolve_sampler("Euler"), "SGM Uniform");
  EXPECT_EQ(c.timestep_spacing, "trailing");
  c = apply_sampler_choice(SchedulerConfig{}, resolve_sampler("LMS"), "Polyexponential");
  EXPECT_TRUE(schedule::extra_bool(c, "use_polyexponential_sigmas", false));
  c = apply_sampler_choice(SchedulerConfig{}, resolve_sampler("PLMS"));
  EXPECT_TRUE(schedule::extra_bool(c, "skip_prk_steps", false));
  EXPECT_THROW(make_sampler("DDIM", SchedulerConfig{}, "Karras"), Error);
  EXPECT_FALSE(apply_sampler_choice(SchedulerConfig{}, resolve_sampler("Euler"), "Automatic").use_karras_sigmas);
}

}  // namespace
}  // namespace pigment
