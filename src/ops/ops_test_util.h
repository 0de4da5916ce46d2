// Helpers for the op tests: random tensors, tolerance checks against the reference, thread-count determinism.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>

#include "core/threading.h"
#include "ops/reference.h"

namespace pigment::ops::testing {

inline Tensor randn(Shape s, uint32_t seed, float stddev = 1.f, float mean = 0.f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(mean, stddev);
  Tensor t = Tensor::empty(std::move(s));
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = d(g);
  return t;
}

// Max over elements of |a - b| / (atol + rtol·|b|): <= 1 means every element is within tolerance.
inline ::testing::AssertionResult close(const Tensor& actual, const Tensor& expected, float atol, float rtol) {
  if (actual.shape() != expected.shape())
    return ::testing::AssertionFailure() << "shape " << shape_str(actual.shape()) << " vs " << shape_str(expected.shape());
  Tensor a = actual.as_f32(), e = expected.as_f32();
  double worst = 0;
  int64_t at = -1;
  for (int64_t i = 0; i < a.numel(); ++i) {
    double x = a.f32()[i], y = e.f32()[i];
    if (std::isnan(x) != std::isnan(y)) return ::testing::AssertionFailure() << "NaN mismatch at " << i;
    if (std::isnan(y) || x == y) continue;
    double r = std::fabs(x - y) / (atol + rtol * std::fabs(y));
    if (r > worst) worst = r, at = i;
  }
  if (worst <= 1) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "element " << at << ": " << a.f32()[at] << " vs " << e.f32()[at]
                                       << " (" << worst << "x the tolerance atol " << atol << " rtol " << rtol << ")";
}

// Max |a - b| relative to max |b| (the output scale); infinite where one side is NaN or infinite and the other is
// not the same (std::max would skip a NaN difference silently).
inline double rel_err(const Tensor& actual, const Tensor& expected) {
  Tensor a = actual.as_f32(), e = expected.as_f32();
  double m = 0, s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const float x = a.f32()[i], y = e.f32()[i];
    if (!std::isfinite(x) || !std::isfinite(y)) {  // equal infinities and NaN against NaN agree; nothing else does
      if (x == y || (std::isnan(x) && std::isnan(y))) continue;
      return INFINITY;
    }
    m = std::max(m, std::fabs(double(x) - double(y)));
    if (std::isfinite(e.f32()[i])) s = std::max(s, double(std::fabs(e.f32()[i])));
  }
  return s > 0 ? m / s : m;
}

inline bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// f() at 1 and at 2 threads gives the same bits.
inline ::testing::AssertionResult deterministic(const std::function<Tensor()>& f) {
  Tensor one, two;
  {
    ScopedNumThreads t(1);
    one = f();
  }
  {
    ScopedNumThreads t(2);
    two = f();
  }
  if (same_bits(one, two)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "1 and 2 threads differ (max rel diff " << rel_err(one, two) << ")";
}

}  // namespace pigment::ops::testing
