#include <gtest/gtest.h>

#include "sampling/sampler_test_util.h"

namespace pigment {
namespace {

using testing::max_abs_diff;
using testing::run_loop;
using testing::sd_config;
using testing::test_latents;

TEST(DEIS, FirstOrderIsDDIM) {
  auto deis = make_scheduler("DEISMultistepScheduler", sd_config(R"({"solver_order": 1})"));
  auto dpm = make_scheduler("dpmpp_2m", sd_config(R"({"solver_order": 1})"));
  EXPECT_LT(max_abs_diff(run_loop(*deis, 8, test_latents()), run_loop(*dpm, 8, test_latents())), 1e-5);
}

TEST(DEIS, HigherOrdersConvergeToTheOdeSolution) {
  for (const char* extra : {R"({"solver_order": 2})", R"({"solver_order": 3})"}) {
    const double fine = testing::ode_error("deis", extra, 160);
    EXPECT_LT(fine, 3e-3) << extra;
    EXPECT_LT(fine, testing::ode_error("deis", extra, 20) / 2) << extra;
    auto s = make_scheduler("deis", sd_config(extra));
    EXPECT_EQ(max_abs_diff(run_loop(*s, 12, test_latents()), run_loop(*s, 12, test_latents())), 0.0) << extra;
  }
}

TEST(DEIS, RejectsBadConfigs) {
  EXPECT_THROW(make_scheduler("deis", sd_config(R"({"solver_order": 4})")), Error);
  EXPECT_THROW(make_scheduler("deis", sd_config(R"({"algorithm_type": "unipc"})")), Error);
  EXPECT_THROW(make_scheduler("deis", sd_config(R"({"solver_type": "rk4"})")), Error);
}

}  // namespace
}  // namespace pigment
