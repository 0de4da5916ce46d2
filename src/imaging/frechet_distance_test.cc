#include "imaging/frechet_distance.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"

namespace pigment {
namespace {

std::vector<std::vector<double>> random_set(int n, int d, uint32_t seed, double scale = 1.0) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<std::vector<double>> s(static_cast<size_t>(n), std::vector<double>(static_cast<size_t>(d)));
  // Correlated dimensions: x_k = z_k + 0.5·z_{k−1}, scaled per dimension.
  for (auto& x : s) {
    double prev = 0;
    for (int k = 0; k < d; ++k) {
      const double z = normal(rng);
      x[size_t(k)] = scale * (1 + 0.1 * k) * (z + 0.5 * prev);
      prev = z;
    }
  }
  return s;
}

TEST(SymmetricEigen, KnownMatrix) {
  std::vector<double> v;
  const auto w = symmetric_eigen({2, 1, 1, 2}, 2, &v);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_NEAR(w[0], 1.0, 1e-14);
  EXPECT_NEAR(w[1], 3.0, 1e-14);
  // Eigenvector of 3: (1, 1)/√2 up to sign.
  EXPECT_NEAR(std::abs(v[0 * 2 + 1]), std::sqrt(0.5), 1e-14);
  EXPECT_NEAR(std::abs(v[1 * 2 + 1]), std::sqrt(0.5), 1e-14);
  EXPECT_EQ(symmetric_eigen({5}, 1)[0], 5.0);
}

TEST(SymmetricEigen, ReconstructsARandomMatrix) {
  const int n = 30;
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<double> a(size_t(n * n));
  for (int r = 0; r < n; ++r)
    for (int c = r; c < n; ++c) a[size_t(r * n + c)] = a[size_t(c * n + r)] = u(rng);
  std::vector<double> v;
  const auto w = symmetric_eigen(a, n, &v);
  for (int k = 1; k < n; ++k) EXPECT_LE(w[size_t(k - 1)], w[size_t(k)]);
  double trace = 0, sum_w = 0;
  for (int k = 0; k < n; ++k) trace += a[size_t(k * n + k)], sum_w += w[size_t(k)];
  EXPECT_NEAR(trace, sum_w, 1e-12);
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < n; ++c) {
      double vwv = 0, vv = 0;
      for (int k = 0; k < n; ++k) {
        vwv += v[size_t(r * n + k)] * w[size_t(k)] * v[size_t(c * n + k)];
        vv += v[size_t(k * n + r)] * v[size_t(k * n + c)];
      }
      EXPECT_NEAR(vwv, a[size_t(r * n + c)], 1e-12);
      EXPECT_NEAR(vv, r == c ? 1.0 : 0.0, 1e-12);
    }
  // Its square root squares back (on a positive definite matrix: a·aᵀ + I).
  std::vector<double> p(size_t(n * n), 0.0);
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < n; ++c) {
      for (int k = 0; k < n; ++k) p[size_t(r * n + c)] += a[size_t(r * n + k)] * a[size_t(c * n + k)];
      if (r == c) p[size_t(r * n + c)] += 1;
    }
  const auto s = symmetric_sqrt(p, n);
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < n; ++c) {
      double ss = 0;
      for (int k = 0; k < n; ++k) ss += s[size_t(r * n + k)] * s[size_t(k * n + c)];
      EXPECT_NEAR(ss, p[size_t(r * n + c)], 1e-10);
    }
}

TEST(FrechetDistance, OfASetWithItselfIsZero) {
  for (int n : {10, 200}) {  // fewer samples than dimensions (the small form), and more (the full form)
    const auto g = fit_gaussian(random_set(n, 40, 1));
    double trace = 0;
    for (int k = 0; k < 40; ++k) trace += g.cov[size_t(k * 40 + k)];
    // The small form's matrix has a zero eigenvalue (the samples are centred) that rounding leaves at about
    // 1e-16·|G|; its square root is then about 1e-8 of the trace.
    EXPECT_NEAR(frechet_distance(g, g), 0.0, 1e-7 * trace) << n;
    EXPECT_NEAR(trace_sqrt_product(g, g), trace, 1e-7 * trace) << n;
  }
}

TEST(FrechetDistance, AShiftOfTheMeanAddsItsSquaredLength) {
  auto s = random_set(100, 20, 2);
  const auto a = fit_gaussian(s);
  std::vector<double> shift(20);
  double len2 = 0;
  for (int k = 0; k < 20; ++k) len2 += (shift[size_t(k)] = 0.3 * k - 2) * shift[size_t(k)];
  for (auto& x : s)
    for (int k = 0; k < 20; ++k) x[size_t(k)] += shift[size_t(k)];
  const auto b = fit_gaussian(s);
  EXPECT_NEAR(frechet_distance(a, b), len2, 1e-9 * len2);
  EXPECT_NEAR(frechet_distance(b, a), len2, 1e-9 * len2);
}

TEST(FrechetDistance, DiagonalGaussians) {
  // Two sets whose covariances are exactly diagonal (±1 patterns): FD = Σ (√a_k − √b_k)² + |μ_a − μ_b|².
  const int d = 4;
  std::vector<std::vector<double>> sa, sb;
  for (int i = 0; i < 16; ++i) {
    std::vector<double> xa(d), xb(d);
    for (int k = 0; k < d; ++k) {
      const double sign = (i >> k) & 1 ? 1.0 : -1.0;
      xa[size_t(k)] = sign * (k + 1);
      xb[size_t(k)] = 1.0 + sign * 2.0;
    }
    sa.push_back(xa);
    sb.push_back(xb);
  }
  const auto a = fit_gaussian(sa), b = fit_gaussian(sb);
  const double f = 16.0 / 15.0;  // the unbiased variance of ±s over 16 samples is s²·16/15
  double expected = d * 1.0;       // means 0 and 1 in every dimension
  for (int k = 0; k < d; ++k) expected += std::pow(std::sqrt(f) * (k + 1) - std::sqrt(f) * 2.0, 2);
  EXPECT_NEAR(frechet_distance(a, b), expected, 1e-12);
}

TEST(FrechetDistance, SmallAndFullFormsAgree) {
  const auto a = fit_gaussian(random_set(300, 30, 3));
  const auto b = fit_gaussian(random_set(12, 30, 4, 1.5));
  const double small = trace_sqrt_product(a, b), full = trace_sqrt_product_full(a, b);
  EXPECT_NEAR(small, full, 1e-8 * full);
  EXPECT_NEAR(trace_sqrt_product(b, a), full, 1e-8 * full);
  EXPECT_GT(frechet_distance(a, b), 0.0);
}

TEST(FrechetDistance, RefusesBadSets) {
  auto msg = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(msg([] { fit_gaussian({{1.0, 2.0}}); }).find("at least two samples"), std::string::npos);
  EXPECT_NE(msg([] { fit_gaussian({{1.0, 2.0}, {1.0}}); }).find("feature vectors of"), std::string::npos);
  EXPECT_NE(msg([] {
              frechet_distance(fit_gaussian({{1.0, 2.0}, {2.0, 1.0}}), fit_gaussian({{1.0}, {2.0}}));
            }).find("dimensions"),
            std::string::npos);
}

}  // namespace
}  // namespace pigment
