// Finite-difference checks for the backward passes of the light ops (activations, layout, lookups, losses): the
// tests write the op's forward in double precision, and the gradient of L(x) = Σ r ⊙ f(x) (r a fixed random
// tensor, standing for the gradient of the output) is estimated by central differences in double and compared with
// the analytic backward called with dy = r. Header-only; the heavy ops have their own (grad_check_test_util.h).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "core/tensor.h"

namespace pigment::ops::testing {

using DVec = std::vector<double>;
// A forward written in double: inputs → outputs, both flat in row-major order.
using DForward = std::function<DVec(const DVec&)>;

inline DVec to_double(const Tensor& t) {
  Tensor f = t.as_f32();
  return DVec(f.f32(), f.f32() + f.numel());
}

inline Tensor from_double(const Shape& s, const DVec& v) {
  Tensor t = Tensor::empty(s);
  PIG_CHECK(int64_t(v.size()) == t.numel(), "from_double: ", v.size(), " values for ", shape_str(s));
  for (size_t i = 0; i < v.size(); ++i) t.f32()[i] = float(v[i]);
  return t;
}

// d/dx Σ r ⊙ f(x) by central differences, step h·max(1, |x_i|); every sum in double.
inline DVec numeric_grad(const DForward& f, DVec x, const DVec& r, double h = 1e-4) {
  auto loss = [&](const DVec& v) {
    const DVec y = f(v);
    EXPECT_EQ(y.size(), r.size()) << "numeric_grad: the forward's output and r differ in size";
    double s = 0;
    for (size_t i = 0; i < y.size() && i < r.size(); ++i) s += r[i] * y[i];
    return s;
  };
  DVec g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i], step = h * std::max(1.0, std::fabs(x0));
    x[i] = x0 + step;
    const double up = loss(x);
    x[i] = x0 - step;
    const double down = loss(x);
    x[i] = x0;
    g[i] = (up - down) / (2 * step);
  }
  return g;
}

// Every element of the analytic gradient within atol + rtol·|numeric| of the numeric one.
inline ::testing::AssertionResult grad_close(const Tensor& analytic, const DVec& numeric, double atol = 1e-6,
                                             double rtol = 1e-5) {
  if (analytic.numel() != int64_t(numeric.size()))
    return ::testing::AssertionFailure() << "gradient " << shape_str(analytic.shape()) << " vs " << numeric.size()
                                         << " numeric values";
  const DVec a = to_double(analytic);
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

// The usual check: analytic (from the backward with dy = r) against the numeric gradient of Σ r ⊙ f(x) at x.
inline ::testing::AssertionResult matches_finite_differences(const Tensor& analytic, const DForward& f,
                                                             const Tensor& x, const Tensor& r, double atol = 1e-6,
                                                             double rtol = 1e-5) {
  return grad_close(analytic, numeric_grad(f, to_double(x), to_double(r)), atol, rtol);
}

}  // namespace pigment::ops::testing
