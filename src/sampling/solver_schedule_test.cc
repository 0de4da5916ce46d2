#include "sampling/solver_schedule.h"

#include <gtest/gtest.h>

#include <cmath>

#include "sampling/sampler_test_util.h"

namespace pigment {
namespace {

using V = std::vector<double>;

TEST(SolverSchedule, TimestepSpacingsMatchDiffusers) {
  EXPECT_EQ(solver::solver_timesteps("t", "linspace", 1000, 1000, 4, 1), (V{999, 749, 500, 250}));  // 499.5 → 500
  EXPECT_EQ(solver::solver_timesteps("t", "leading", 1000, 1000, 4, 1), (V{801, 601, 401, 201}));
  EXPECT_EQ(solver::solver_timesteps("t", "trailing", 1000, 1000, 6, 1), (V{999, 832, 666, 499, 332, 166}));
  EXPECT_EQ(solver::solver_timesteps("t", "linspace", 1000, 1000, 1, 1), (V{999}));
  EXPECT_EQ(solver::solver_timesteps("t", "leading", 1000, 1000, 1, 1), (V{501}));
  EXPECT_EQ(solver::solver_timesteps("t", "trailing", 1000, 1000, 1, 1), (V{999}));
  EXPECT_EQ(solver::solver_timesteps("t", "trailing", 1000, 1000, 29, 0).size(), 29u);
  EXPECT_THROW(solver::solver_timesteps("t", "cosine", 1000, 1000, 4, 1), Error);
  EXPECT_THROW(solver::solver_timesteps("t", "linspace", 1000, 1000, 0, 1), Error);
  EXPECT_THROW(solver::solver_timesteps("t", "linspace", 1000, 1000, 1001, 1), Error);
}

TEST(SolverSchedule, SigmaTablesMatchGolden) {
  const auto train = schedule::TrainSchedule::from_config(testing::sd_config());
  auto table = solver::solver_table(train, {801, 601, 401, 201}, 4, solver::SigmaSpacing::interpolated, false);
  const V want{5.134433269500732, 2.2928547859191895, 1.1682164669036865, 0.5740507245063782, 0.029167532920837402};
  ASSERT_EQ(table.sigmas.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(table.sigmas[i], want[i], 1e-6 * want[i]);

  table = solver::solver_table(train, {801, 601, 401, 201}, 4, solver::SigmaSpacing::karras, false);
  EXPECT_EQ(table.timesteps, (V{999, 687, 146, 0}));
  const V karras{14.614645004272461, 3.1686108112335205, 0.44692087173461914, 0.029167532920837402,
                 0.029167532920837402};
  for (size_t i = 0; i < karras.size(); ++i) EXPECT_NEAR(table.sigmas[i], karras[i], 1e-6 * karras[i]);

  table = solver::solver_table(train, {801, 601, 401, 201}, 4, solver::SigmaSpacing::interpolated, true);
  EXPECT_EQ(table.sigmas.back(), 0.0);
}

TEST(SolverSchedule, VpAndIndexLookup) {
  const auto v = solver::vp(1.0);
  EXPECT_NEAR(v.alpha, std::sqrt(0.5), 1e-12);
  EXPECT_NEAR(v.sigma, std::sqrt(0.5), 1e-12);
  EXPECT_NEAR(v.lambda, 0.0, 1e-12);
  EXPECT_TRUE(std::isinf(solver::vp(0.0).lambda));
  EXPECT_EQ(solver::index_for_timestep({999, 500, 500, 0}, 500), 2);  // the second of repeated timesteps
  EXPECT_EQ(solver::index_for_timestep({999, 500, 0}, 500), 1);
  EXPECT_EQ(solver::index_for_timestep({999, 500, 0}, 42), 2);  // absent: the last index
}

TEST(SolverSchedule, LambdaClippingShortensTheSchedule) {
  const auto train = schedule::TrainSchedule::from_config(testing::sd_config());
  EXPECT_EQ(solver::clipped_last_timestep(train, -INFINITY), 1000);
  EXPECT_LT(solver::clipped_last_timestep(train, -2.0), 1000);
}

TEST(SolverSchedule, ConfigPresetsAndConflicts) {
  auto c = solver::with_default_extra(testing::sd_config(), "algorithm_type", "\"sde-dpmsolver++\"");
  EXPECT_EQ(schedule::extra_string(c, "algorithm_type", ""), "sde-dpmsolver++");
  c = solver::with_default_extra(testing::sd_config(R"({"algorithm_type": "dpmsolver"})"), "algorithm_type",
                                 "\"sde-dpmsolver++\"");
  EXPECT_EQ(schedule::extra_string(c, "algorithm_type", ""), "dpmsolver");  // the config wins
  EXPECT_THROW(solver::sigma_spacing_from_config(
                   "t", testing::sd_config(R"({"use_karras_sigmas": true, "use_exponential_sigmas": true})")),
               Error);
}

}  // namespace
}  // namespace pigment
