// Gradient checks for the backward tests (test-only). Each test writes the op again as a tiny double-precision
// forward; the loss is L = Σ r ⊙ y with a fixed random r (so dL/dy = r), and every element of an input's gradient is
// compared with the central difference (L(x + h·e_i) − L(x − h·e_i)) / 2h, computed in double.
// Two flavours: numeric_grad / grad_close (a fixed step; tolerance relative to the gradient's largest element: the
// heavy ops, whose gradients are sums over many terms) and matches_finite_differences (a step relative to |x_i|;
// absolute + relative tolerance per element: the element-wise and layout ops).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <initializer_list>
#include <vector>

#include "ops/ops_test_util.h"

namespace pigment::ops::testing {

using Doubles = std::vector<double>;
using DVec = Doubles;
// A forward written in double: inputs → outputs, both flat in row-major order.
using DForward = std::function<Doubles(const Doubles&)>;

inline Doubles doubles(const Tensor& t) {
  Tensor f = t.as_f32();
  return Doubles(f.f32(), f.f32() + f.numel());
}

// L = Σ r ⊙ y
inline double weighted_sum(const Doubles& y, const Doubles& r) {
  EXPECT_EQ(y.size(), r.size()) << "the forward's output and r differ in size";
  double s = 0;
  for (size_t i = 0; i < y.size() && i < r.size(); ++i) s += r[i] * y[i];
  return s;
}

// dL/dx by central differences, L(x) = Σ r ⊙ f(x) (f the double forward as a function of this one input), with the
// step h, or h·max(1, |x_i|) when `relative_step`.
inline Doubles numeric_grad(const std::function<Doubles(const Doubles&)>& f, Doubles x, const Doubles& r,
                            double h = 1e-5, bool relative_step = false) {
  Doubles g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i], step = relative_step ? h * std::max(1.0, std::fabs(x0)) : h;
    x[i] = x0 + step;
    const double lp = weighted_sum(f(x), r);
    x[i] = x0 - step;
    const double lm = weighted_sum(f(x), r);
    x[i] = x0;
    g[i] = (lp - lm) / (2 * step);
  }
  return g;
}

// Every element within atol·(max |numeric|) + rtol·|numeric| of the finite difference.
inline ::testing::AssertionResult grad_close(const Tensor& analytic, const Doubles& numeric, double atol = 1e-5,
                                             double rtol = 1e-4) {
  if (!analytic.defined()) return ::testing::AssertionFailure() << "gradient not computed";
  if (size_t(analytic.numel()) != numeric.size())
    return ::testing::AssertionFailure() << "gradient has " << analytic.numel() << " elements, expected "
                                         << numeric.size();
  Tensor a = analytic.as_f32();
  double scale = 0;
  for (double v : numeric) scale = std::max(scale, std::fabs(v));
  if (scale == 0) scale = 1;
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < numeric.size(); ++i) {
    const double x = a.f32()[i];
    if (!std::isfinite(x)) return ::testing::AssertionFailure() << "element " << i << " is " << x;
    const double r = std::fabs(x - numeric[i]) / (atol * scale + rtol * std::fabs(numeric[i]));
    if (r > worst) worst = r, at = i;
  }
  if (worst <= 1) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "element " << at << ": " << a.f32()[at] << " vs finite difference "
                                       << numeric[at] << " (" << worst << "x the tolerance)";
}

inline Doubles to_double(const Tensor& t) { return doubles(t); }

inline Tensor from_double(const Shape& s, const Doubles& v) {
  Tensor t = Tensor::empty(s);
  PIG_CHECK(int64_t(v.size()) == t.numel(), "from_double: ", v.size(), " values for ", shape_str(s));
  for (size_t i = 0; i < v.size(); ++i) t.f32()[i] = float(v[i]);
  return t;
}

// Every element of `analytic` (the backward called with dy = r) within atol + rtol·|numeric| of the central
// difference of Σ r ⊙ f at x.
inline ::testing::AssertionResult matches_finite_differences(const Tensor& analytic, const DForward& f,
                                                             const Tensor& x, const Tensor& r, double atol = 1e-6,
                                                             double rtol = 1e-5) {
  const Doubles numeric = numeric_grad(f, to_double(x), to_double(r), 1e-4, true);
  if (analytic.numel() != int64_t(numeric.size()))
    return ::testing::AssertionFailure() << "gradient " << shape_str(analytic.shape()) << " vs " << numeric.size()
                                         << " numeric values";
  const Doubles a = to_double(analytic);
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double e = std::fabs(a[i] - numeric[i]) / (atol + rtol * std::fabs(numeric[i]));
    if (std::isnan(e))
      return ::testing::AssertionFailure() << "element " << i << ": analytic " << a[i] << " vs numeric " << numeric[i];
    if (e > worst) worst = e, at = i;
  }
  if (worst <= 1) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "element " << at << ": analytic " << a[at] << " vs numeric " << numeric[at]
                                       << " (" << worst << "x the tolerance atol " << atol << " rtol " << rtol << ")";
}

// f() gives the same bits at each of these thread counts (more than the cores is fine: the work split is what
// changes).
inline ::testing::AssertionResult same_bits_at(const std::function<Tensor()>& f,
                                               std::initializer_list<int> threads = {1, 2, 3, 8}) {
  Tensor first;
  for (int n : threads) {
    Tensor t;
    {
      ScopedNumThreads s(n);
      t = f();
    }
    if (!first.defined()) {
      first = t;
    } else if (!same_bits(first, t)) {
      return ::testing::AssertionFailure() << n << " threads differ from " << *threads.begin()
                                           << " (max rel diff " << rel_err(t, first) << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace pigment::ops::testing
