#include <gtest/gtest.h>

#include "sampling/sampler_test_util.h"

namespace pigment {
namespace {

using testing::max_abs_diff;
using testing::run_loop;
using testing::sd_config;
using testing::test_latents;

TEST(DPMSolverSinglestep, TimestepsAreAlwaysEvenlySpaced) {
  auto s = make_scheduler("DPMSolverSinglestepScheduler", sd_config(R"({"timestep_spacing": "trailing"})"));
  s->set_timesteps(4);
  EXPECT_EQ(s->timesteps(), (std::vector<double>{999, 749, 500, 250}));
  EXPECT_EQ(s->sigmas().size(), 5u);
}

TEST(DPMSolverSinglestep, FirstOrderMatchesTheMultistepSolver) {
  auto single = make_scheduler("dpm_singlestep", sd_config(R"({"solver_order": 1})"));
  auto multi = make_scheduler("dpmpp_2m", sd_config(R"({"solver_order": 1, "timestep_spacing": "linspace"})"));
  EXPECT_LT(max_abs_diff(run_loop(*single, 7, test_latents()), run_loop(*multi, 7, test_latents())), 1e-6);
}

TEST(DPMSolverSinglestep, EveryVariantConvergesToTheOdeSolution) {
  for (const char* extra :
       {R"({"solver_order": 2})", R"({"solver_order": 3})", R"({"solver_order": 3, "solver_type": "heun"})",
        R"({"solver_order": 2, "algorithm_type": "dpmsolver"})",
        R"({"solver_order": 3, "algorithm_type": "dpmsolver"})",
        R"({"solver_order": 3, "algorithm_type": "dpmsolver", "solver_type": "heun"})",
        R"({"solver_order": 2, "lower_order_final": false})"}) {
    const double fine = testing::ode_error("dpm_singlestep", extra, 160);
    EXPECT_LT(fine, 3e-3) << extra;
    EXPECT_LT(fine, testing::ode_error("dpm_singlestep", extra, 20) / 2) << extra;
    auto s = make_scheduler("dpm_singlestep", sd_config(extra));
    EXPECT_EQ(max_abs_diff(run_loop(*s, 12, test_latents()), run_loop(*s, 12, test_latents())), 0.0) << extra;
  }
}

TEST(DPMSolverSinglestep, RejectsBadConfigs) {
  EXPECT_THROW(make_scheduler("dpm_singlestep", sd_config(R"({"solver_order": 4})")), Error);
  EXPECT_THROW(make_scheduler("dpm_singlestep", sd_config(R"({"algorithm_type": "sde-dpmsolver++"})")), Error);
  EXPECT_THROW(make_scheduler("dpm_singlestep", sd_config(R"({"variance_type": "learned_range"})")), Error);
}

}  // namespace
}  // namespace pigment
