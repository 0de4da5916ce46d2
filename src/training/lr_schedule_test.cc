#include "training/lr_schedule.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"

namespace pigment::training {
namespace {

LrSchedule make(const std::string& name, int64_t warmup, int64_t total) {
  return LrSchedule(LrScheduleOptions{.name = name, .base_lr = 2e-4, .warmup_steps = warmup, .total_steps = total});
}

TEST(LrSchedule, ConstantIgnoresWarmup) {
  auto s = make("constant", 10, 0);
  for (int64_t k : {0, 5, 10, 1000}) EXPECT_DOUBLE_EQ(s.lr(k), 2e-4);
}

TEST(LrSchedule, WarmupRisesLinearlyFromZero) {
  auto s = make("constant_with_warmup", 4, 0);
  EXPECT_DOUBLE_EQ(s.lr(0), 0.0);
  EXPECT_DOUBLE_EQ(s.lr(1), 0.5e-4);
  EXPECT_DOUBLE_EQ(s.lr(3), 1.5e-4);
  EXPECT_DOUBLE_EQ(s.lr(4), 2e-4);
  EXPECT_DOUBLE_EQ(s.lr(100), 2e-4);
}

TEST(LrSchedule, LinearDecaysToZeroAtTheEnd) {
  auto s = make("linear", 10, 110);
  EXPECT_DOUBLE_EQ(s.factor(5), 0.5);
  EXPECT_DOUBLE_EQ(s.factor(10), 1.0);
  EXPECT_DOUBLE_EQ(s.factor(60), 0.5);
  EXPECT_DOUBLE_EQ(s.factor(110), 0.0);
  EXPECT_DOUBLE_EQ(s.factor(200), 0.0);  // clamped, never negative
}

TEST(LrSchedule, CosineIsHalfACycle) {
  auto s = make("cosine", 0, 100);
  EXPECT_DOUBLE_EQ(s.factor(0), 1.0);
  EXPECT_NEAR(s.factor(50), 0.5, 1e-12);
  EXPECT_NEAR(s.factor(25), 0.5 * (1 + std::cos(M_PI * 0.25)), 1e-12);
  EXPECT_NEAR(s.factor(100), 0.0, 1e-12);
  // Past the end the cosine rises again in diffusers' formula; it is not clamped to zero there.
  auto w = make("cosine", 20, 120);
  EXPECT_DOUBLE_EQ(w.factor(10), 0.5);
  EXPECT_NEAR(w.factor(70), 0.5, 1e-12);
}

TEST(LrSchedule, CosineWithRestartsAndPolynomial) {
  LrScheduleOptions o{.name = "cosine_with_restarts", .base_lr = 1e-3, .total_steps = 100, .num_cycles = 2};
  LrSchedule r(o);
  EXPECT_DOUBLE_EQ(r.factor(0), 1.0);
  EXPECT_NEAR(r.factor(25), 0.5, 1e-12);
  EXPECT_DOUBLE_EQ(r.factor(50), 1.0);  // the restart
  EXPECT_DOUBLE_EQ(r.factor(100), 0.0);
  LrScheduleOptions p{.name = "polynomial", .base_lr = 1e-3, .total_steps = 10, .power = 2.0, .lr_end = 1e-5};
  LrSchedule poly(p);
  EXPECT_DOUBLE_EQ(poly.lr(0), 1e-3);
  EXPECT_NEAR(poly.lr(5), (1e-3 - 1e-5) * 0.25 + 1e-5, 1e-15);
  EXPECT_NEAR(poly.lr(10), 1e-5, 1e-15);
  EXPECT_NEAR(poly.lr(50), 1e-5, 1e-15);
}

TEST(LrSchedule, UnknownNameListsTheAcceptedOnes) {
  try {
    make("cosine_annealing", 0, 10);
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("cosine_annealing"), std::string::npos);
    EXPECT_NE(msg.find("constant_with_warmup"), std::string::npos);
    EXPECT_EQ(msg.find('\n'), std::string::npos);
  }
  EXPECT_THROW(make("cosine", 0, 0), Error);  // a decaying schedule needs its length
}

}  // namespace
}  // namespace pigment::training
