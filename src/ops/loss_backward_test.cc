#include <gtest/gtest.h>

#include "ops/backward.h"
#include "ops/grad_check_test_util.h"
#include "ops/ops_test_util.h"

namespace pigment::ops {
namespace {
using testing::close;
using testing::deterministic;
using testing::DVec;
using testing::matches_finite_differences;
using testing::randn;
using testing::to_double;

// mean((a − b)²) as a function of a, in double.
testing::DForward mse_d(DVec b) {
  return [b](const DVec& a) {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
    return DVec{s / double(a.size())};
  };
}

// (1/B) Σ_b w_b · mean over the sample of (a − t)², as a function of a, in double.
testing::DForward weighted_mse_d(DVec t, std::vector<float> w) {
  return [t, w](const DVec& a) {
    const size_t B = w.size(), M = a.size() / B;
    double loss = 0;
    for (size_t b = 0; b < B; ++b) {
      double s = 0;
      for (size_t i = b * M; i < (b + 1) * M; ++i) s += (a[i] - t[i]) * (a[i] - t[i]);
      loss += w[b] * s / double(M);
    }
    return DVec{loss / double(B)};
  };
}

TEST(LossBackward, MseMatchesFiniteDifferences) {
  const Tensor a = randn({3, 5, 7}, 1), b = randn({3, 5, 7}, 2);
  const auto f = mse_d(to_double(b));
  EXPECT_NEAR(mse(a, b), f(to_double(a))[0], 1e-6);  // the double forward is ops::mse
  for (float dloss : {1.f, -2.5f}) {
    const Tensor r = Tensor::full({1}, dloss);
    EXPECT_TRUE(matches_finite_differences(ref::mse_backward(a, b, dloss), f, a, r, 1e-8, 1e-5)) << dloss;
  }
}

TEST(LossBackward, L1MatchesFiniteDifferences) {
  const Tensor a = randn({3, 5, 7}, 3), b = randn({3, 5, 7}, 4);
  const DVec bd = to_double(b);
  const testing::DForward f = [bd](const DVec& x) {
    double s = 0;
    for (size_t i = 0; i < x.size(); ++i) s += std::abs(x[i] - bd[i]);
    return DVec{s / double(x.size())};
  };
  EXPECT_NEAR(l1(a, b), f(to_double(a))[0], 1e-6);
  // Random values are never within the finite-difference step of each other: |a − b| is smooth there.
  for (float dloss : {1.f, -2.5f}) {
    const Tensor r = Tensor::full({1}, dloss);
    EXPECT_TRUE(matches_finite_differences(l1_backward(a, b, dloss), f, a, r, 1e-8, 1e-5)) << dloss;
  }
  EXPECT_EQ(l1_backward(a, a).f32()[0], 0.f);  // torch's sign(0) = 0
}

TEST(LossBackward, WeightedMseMatchesItsDefinition) {
  const Tensor a = randn({3, 4, 5}, 3), t = randn({3, 4, 5}, 4);
  const std::vector<float> w{0.5f, 2.f, 0.f};
  const auto f = weighted_mse_d(to_double(t), w);
  EXPECT_NEAR(ref::weighted_mse(a, t, w), f(to_double(a))[0], 1e-6);
  EXPECT_NEAR(weighted_mse(a, t, w), f(to_double(a))[0], 1e-6);
  // Unit weights: the plain mse.
  EXPECT_FLOAT_EQ(ref::weighted_mse(a, t, {1.f, 1.f, 1.f}), mse(a, t));
  for (float dloss : {1.f, 0.25f}) {
    const Tensor r = Tensor::full({1}, dloss);
    EXPECT_TRUE(matches_finite_differences(ref::weighted_mse_backward(a, t, w, dloss), f, a, r, 1e-8, 1e-5))
        << dloss;
  }
  EXPECT_THROW(weighted_mse(a, t, {1.f, 1.f}), Error);
  EXPECT_THROW(ref::weighted_mse_backward(a, randn({3, 4, 4}, 5), w), Error);
  EXPECT_THROW(weighted_mse_backward(Tensor::zeros({}), Tensor::zeros({}), {}), Error);
}

TEST(LossBackward, FastMatchesReference) {
  for (Shape s : {Shape{1}, Shape{3, 5, 7}, Shape{4, 4, 64, 64}, Shape{2, 70001}}) {
    const Tensor a = randn(s, 6), t = randn(s, 7);
    std::vector<float> w;
    for (int64_t b = 0; b < s[0]; ++b) w.push_back(0.25f + 0.5f * float(b));
    EXPECT_TRUE(close(mse_backward(a, t, 0.7f), ref::mse_backward(a, t, 0.7f), 1e-12f, 1e-6f)) << shape_str(s);
    EXPECT_NEAR(weighted_mse(a, t, w), ref::weighted_mse(a, t, w), 1e-6 * ref::weighted_mse(a, t, w))
        << shape_str(s);
    EXPECT_TRUE(close(weighted_mse_backward(a, t, w, 1.5f), ref::weighted_mse_backward(a, t, w, 1.5f), 1e-12f, 1e-6f))
        << shape_str(s);
  }
  EXPECT_THROW(mse_backward(randn({2, 3}, 1), randn({3, 2}, 2)), Error);
}

TEST(LossBackward, SameBitsAtOneAndTwoThreads) {
  const Tensor a = randn({4, 4, 96, 96}, 8), t = randn({4, 4, 96, 96}, 9);
  const std::vector<float> w{1.f, 0.5f, 2.f, 0.1f};
  EXPECT_TRUE(deterministic([&] { return mse_backward(a, t); }));
  EXPECT_TRUE(deterministic([&] { return weighted_mse_backward(a, t, w); }));
  EXPECT_TRUE(deterministic([&] { return Tensor::full({1}, weighted_mse(a, t, w)); }));
}

}  // namespace
}  // namespace pigment::ops
