#include <gtest/gtest.h>

#include <cmath>

#include "sampling/noise_schedule.h"
#include "sampling/sampler_test_util.h"

namespace pigment {
namespace {

using testing::CountingGenerator;
using testing::max_abs_diff;
using testing::run_loop;
using testing::sd_config;
using testing::test_latents;

TEST(DPMSolverMultistep, FirstOrderStepIsDDIM) {
  const auto c = sd_config(R"({"solver_order": 1})");
  auto s = make_scheduler("DPMSolverMultistepScheduler", c);
  s->set_timesteps(6);
  const double t = s->timesteps()[0], t_prev = s->timesteps()[1];
  const Tensor x = test_latents(), eps = testing::synthetic_model(x, t);
  const Tensor got = s->step(eps, t, x, nullptr);

  const auto train = schedule::TrainSchedule::from_config(c);
  const double a = train.alphas_cumprod[int(t)], ap = train.alphas_cumprod[int(t_prev)];
  Tensor want = Tensor::empty(x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double x0 = (x.f32()[i] - std::sqrt(1 - a) * eps.f32()[i]) / std::sqrt(a);
    want.f32()[i] = float(std::sqrt(ap) * x0 + std::sqrt(1 - ap) * eps.f32()[i]);
  }
  EXPECT_LT(max_abs_diff(got, want), 1e-5);
}

TEST(DPMSolverMultistep, SetTimestepsResetsHistory) {
  for (const char* extra : {R"({"solver_order": 2})", R"({"solver_order": 3})"}) {
    auto s = make_scheduler("dpmpp_2m", sd_config(extra));
    const Tensor a = run_loop(*s, 8, test_latents());
    const Tensor b = run_loop(*s, 8, test_latents());
    EXPECT_EQ(max_abs_diff(a, b), 0.0) << extra;
  }
}

TEST(DPMSolverMultistep, EveryVariantConvergesToTheOdeSolution) {
  for (const char* extra :
       {R"({"solver_order": 2})", R"({"solver_order": 2, "solver_type": "heun"})", R"({"solver_order": 3})",
        R"({"algorithm_type": "dpmsolver"})", R"({"algorithm_type": "dpmsolver", "solver_order": 3})",
        R"({"algorithm_type": "dpmsolver", "solver_type": "heun"})", R"({"use_karras_sigmas": true})"}) {
    const double coarse = testing::ode_error("dpmpp_2m", extra, 20), fine = testing::ode_error("dpmpp_2m", extra, 160);
    EXPECT_LT(fine, 3e-3) << extra;
    EXPECT_LT(fine, coarse / 2) << extra;
  }
  // First order halves its error when the steps double.
  const double e40 = testing::ode_error("dpmpp_2m", R"({"solver_order": 1})", 40);
  const double e80 = testing::ode_error("dpmpp_2m", R"({"solver_order": 1})", 80);
  EXPECT_GT(e40 / e80, 1.7);
  EXPECT_LT(e40 / e80, 2.6);
}

TEST(DPMSolverMultistep, SdeDrawsOncePerStep) {
  CountingGenerator g;
  auto sde = make_scheduler("dpmpp_2m_sde", sd_config());
  run_loop(*sde, 6, test_latents(), &g);
  EXPECT_EQ(g.draws, 6);
  EXPECT_THROW(run_loop(*sde, 6, test_latents(), nullptr), Error);

  CountingGenerator none;
  auto ode = make_scheduler("dpmpp_2m", sd_config());
  run_loop(*ode, 6, test_latents(), &none);
  EXPECT_EQ(none.draws, 0);
}

TEST(DPMSolverMultistep, KarrasPresetsAndFinalSigmaZero) {
  auto k = make_scheduler("dpmpp_2m_karras", sd_config());
  k->set_timesteps(4);
  EXPECT_EQ(k->timesteps(), (std::vector<double>{999, 687, 146, 0}));
  auto ks = make_scheduler("dpmpp_2m_sde_karras", sd_config());
  ks->set_timesteps(4);
  EXPECT_EQ(ks->timesteps(), k->timesteps());

  auto z = make_scheduler("dpmpp_2m", sd_config(R"({"final_sigmas_type": "zero"})"));
  const Tensor x = run_loop(*z, 6, test_latents());
  EXPECT_EQ(z->sigmas().back(), 0.0);
  for (int64_t i = 0; i < x.numel(); ++i) ASSERT_TRUE(std::isfinite(x.f32()[i]));
}

TEST(DPMSolverMultistep, RejectsBadConfigsAndMisuse) {
  EXPECT_THROW(make_scheduler("dpmpp_2m", sd_config(R"({"solver_order": 4})")), Error);
  EXPECT_THROW(make_scheduler("dpmpp_2m", sd_config(R"({"algorithm_type": "ddim"})")), Error);
  EXPECT_THROW(make_scheduler("dpmpp_2m", sd_config(R"({"solver_type": "rk4"})")), Error);
  EXPECT_THROW(make_scheduler("dpmpp_2m", sd_config(R"({"timestep_spacing": "cosine"})")), Error);
  EXPECT_THROW(make_scheduler("dpmpp_2m", sd_config(R"({"algorithm_type": "dpmsolver", "final_sigmas_type": "zero"})")),
               Error);
  EXPECT_THROW(make_scheduler("dpmpp_2m", sd_config(R"({"thresholding": true})")), Error);

  auto s = make_scheduler("dpmpp_2m", sd_config(R"({"prediction_type": "flow"})"));
  const Tensor x = test_latents();
  EXPECT_THROW(s->step(x, 999, x, nullptr), Error);  // before set_timesteps
  s->set_timesteps(2);
  EXPECT_THROW(s->step(x, s->timesteps()[0], x, nullptr), Error);  // unknown prediction type

  auto ok = make_scheduler("dpmpp_2m", sd_config());
  run_loop(*ok, 2, x);
  EXPECT_THROW(ok->step(x, 0, x, nullptr), Error);  // past the end of the schedule
  EXPECT_THROW(ok->step(x, ok->timesteps()[0], Tensor::zeros({1, 4, 4, 4}), nullptr), Error);
}

TEST(DPMSolverMultistep, AddNoiseUsesTheScheduleSigma) {
  const auto c = sd_config();
  auto s = make_scheduler("dpmpp_2m", c);
  s->set_timesteps(10);
  const double t = s->timesteps()[3];
  const Tensor x0 = test_latents(), noise = testing::synthetic_model(x0, 5.0);
  const Tensor got = s->add_noise(x0, noise, t);
  const auto train = schedule::TrainSchedule::from_config(c);
  const Tensor want = schedule::add_noise_alpha(train, x0, noise, int(t));
  EXPECT_LT(max_abs_diff(got, want), 1e-5);
}

}  // namespace
}  // namespace pigment
