#include <gtest/gtest.h>

#include "sampling/exact_model_test_util.h"

namespace pigment {
namespace {

TEST(KDPM2Ancestral, DrawsInBothCalls) {
  for (int steps : {1, 6, 1000}) {
    auto r = sampler_checks::run_exact_model("kdpm2_a", "{}", steps);
    EXPECT_EQ(r.draws, 2 * steps - 1);
    for (int64_t i = 0; i < r.out.numel(); ++i) EXPECT_TRUE(std::isfinite(r.out.f32()[i]));
  }
  auto one = sampler_checks::run_exact_model("KDPM2AncestralDiscreteScheduler", "{}", 1);
  EXPECT_LT(sampler_checks::max_abs_diff(one.out, one.x0), 1e-4);
}

}  // namespace
}  // namespace pigment
