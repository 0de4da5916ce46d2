#include <gtest/gtest.h>

#include "sampling/sampler_test_util.h"

namespace pigment {
namespace {

using testing::max_abs_diff;
using testing::run_loop;
using testing::sd_config;
using testing::test_latents;

// Without its corrector, first-order UniP is the first-order DPM-Solver++ step (DDIM).
TEST(UniPC, FirstOrderPredictorIsDpmSolverFirstOrder) {
  auto u = make_scheduler("UniPCMultistepScheduler",
                          sd_config(R"({"solver_order": 1, "disable_corrector": [0, 1, 2, 3, 4, 5, 6, 7]})"));
  auto d = make_scheduler("dpmpp_2m", sd_config(R"({"solver_order": 1})"));
  EXPECT_LT(max_abs_diff(run_loop(*u, 8, test_latents()), run_loop(*d, 8, test_latents())), 1e-5);
}

TEST(UniPC, EveryVariantConvergesToTheOdeSolution) {
  for (const char* extra :
       {R"({"solver_order": 1})", R"({"solver_order": 2})", R"({"solver_order": 3})", R"({"solver_type": "bh1"})",
        R"({"predict_x0": false})", R"({"solver_order": 3, "predict_x0": false})", R"({"disable_corrector": [0, 1]})",
        R"({"solver_order": 3, "lower_order_final": false})"}) {
    const double fine = testing::ode_error("unipc", extra, 160);
    EXPECT_LT(fine, 3e-3) << extra;
    EXPECT_LT(fine, testing::ode_error("unipc", extra, 20) / 2) << extra;
    auto s = make_scheduler("unipc", sd_config(extra));
    EXPECT_EQ(max_abs_diff(run_loop(*s, 12, test_latents()), run_loop(*s, 12, test_latents())), 0.0) << extra;
  }
}

TEST(UniPC, RejectsBadConfigs) {
  EXPECT_THROW(make_scheduler("unipc", sd_config(R"({"solver_type": "rk4"})")), Error);
  EXPECT_THROW(make_scheduler("unipc", sd_config(R"({"disable_corrector": 3})")), Error);
  EXPECT_THROW(make_scheduler("unipc", sd_config(R"({"solver_p": {"class": "DDIMScheduler"}})")), Error);
  EXPECT_THROW(make_scheduler("unipc", sd_config(R"({"solver_order": 0})")), Error);
}

}  // namespace
}  // namespace pigment
