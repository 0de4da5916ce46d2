// SIMD kernels for normalisation statistics, normalisation and softmax (see simd_kernels.h).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/simd_norm.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep

#include <hwy/contrib/math/math-inl.h>
#include <hwy/highway.h>

#include <cmath>

#include "ops/simd_kernels.h"

HWY_BEFORE_NAMESPACE();
namespace pigment::ops::simd {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Sum of f(x[i]) with four vector accumulators (a fixed order, so the result is reproducible).
template <class F>
HWY_INLINE float Reduce(const float* x, size_t n, F f) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    a0 = hn::Add(a0, f(hn::LoadU(d, x + i)));
    a1 = hn::Add(a1, f(hn::LoadU(d, x + i + N)));
    a2 = hn::Add(a2, f(hn::LoadU(d, x + i + 2 * N)));
    a3 = hn::Add(a3, f(hn::LoadU(d, x + i + 3 * N)));
  }
  for (; i + N <= n; i += N) a0 = hn::Add(a0, f(hn::LoadU(d, x + i)));
  float s = hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
  for (; i < n; ++i) s += hn::GetLane(f(hn::Set(d, x[i])));
  return s;
}

float SumImpl(const float* x, size_t n) {
  return Reduce(x, n, [](VF v) { return v; });
}

float SumSqDevImpl(const float* x, size_t n, float mean) {
  const DF d;
  const VF m = hn::Set(d, mean);
  return Reduce(x, n, [&](VF v) {
    VF c = hn::Sub(v, m);
    return hn::Mul(c, c);
  });
}

HWY_INLINE VF Silu(DF d, VF v) {
  VF arg = hn::Min(hn::Neg(v), hn::Set(d, 88.f));
  return hn::Div(v, hn::Add(hn::Set(d, 1.f), hn::Exp(d, arg)));
}

void NormalizeImpl(const float* x, float* y, size_t n, float mean, float mul, float add, bool silu) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const VF m = hn::Set(d, mean), a = hn::Set(d, mul), b = hn::Set(d, add);
  size_t i = 0;
  if (silu) {
    for (; i + N <= n; i += N) hn::StoreU(Silu(d, hn::Add(hn::Mul(hn::Sub(hn::LoadU(d, x + i), m), a), b)), d, y + i);
    for (; i < n; ++i) y[i] = hn::GetLane(Silu(d, hn::Set(d, (x[i] - mean) * mul + add)));
  } else {
    for (; i + N <= n; i += N) hn::StoreU(hn::Add(hn::Mul(hn::Sub(hn::LoadU(d, x + i), m), a), b), d, y + i);
    for (; i < n; ++i) y[i] = (x[i] - mean) * mul + add;
  }
}

void LayerNormRowImpl(const float* x, float* y, size_t n, const float* g, const float* be, float eps) {
  const DF d;
  const size_t N = hn::Lanes(d);
  double mean = double(SumImpl(x, n)) / double(n);
  double var = double(SumSqDevImpl(x, n, float(mean))) / double(n);
  float rstd = float(1.0 / std::sqrt(var + eps));
  const float mf = float(mean);
  const VF m = hn::Set(d, mf), r = hn::Set(d, rstd);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    VF c = hn::Mul(hn::Sub(hn::LoadU(d, x + i), m), r);
    hn::StoreU(hn::Add(hn::Mul(c, hn::LoadU(d, g + i)), hn::LoadU(d, be + i)), d, y + i);
  }
  for (; i < n; ++i) y[i] = (x[i] - mf) * rstd * g[i] + be[i];
}

void SoftmaxRowImpl(const float* x, float* y, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF vm = hn::Set(d, -INFINITY);
  size_t i = 0;
  for (; i + N <= n; i += N) vm = hn::Max(vm, hn::LoadU(d, x + i));
  float m = hn::GetLane(hn::MaxOfLanes(d, vm));
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  const VF mv = hn::Set(d, m);
  VF acc = hn::Zero(d);
  float s = 0;
  for (i = 0; i + N <= n; i += N) {
    VF e = hn::Exp(d, hn::Sub(hn::LoadU(d, x + i), mv));
    hn::StoreU(e, d, y + i);
    acc = hn::Add(acc, e);
  }
  for (; i < n; ++i) s += y[i] = hn::GetLane(hn::Exp(d, hn::Set(d, x[i] - m)));
  s += hn::GetLane(hn::SumOfLanes(d, acc));
  const VF inv = hn::Set(d, 1.f / s);
  for (i = 0; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(d, y + i), inv), d, y + i);
  for (; i < n; ++i) y[i] *= 1.f / s;
}

}  // namespace HWY_NAMESPACE
}  // namespace pigment::ops::simd
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace pigment::ops::simd {
HWY_EXPORT(SumImpl);
HWY_EXPORT(SumSqDevImpl);
HWY_EXPORT(NormalizeImpl);
HWY_EXPORT(LayerNormRowImpl);
HWY_EXPORT(SoftmaxRowImpl);

float sum(const float* x, size_t n) { return HWY_DYNAMIC_DISPATCH(SumImpl)(x, n); }
float sum_sq_dev(const float* x, size_t n, float mean) { return HWY_DYNAMIC_DISPATCH(SumSqDevImpl)(x, n, mean); }
void normalize(const float* x, float* y, size_t n, float mean, float mul, float add, bool silu) {
  HWY_DYNAMIC_DISPATCH(NormalizeImpl)(x, y, n, mean, mul, add, silu);
}
void layer_norm_row(const float* x, float* y, size_t d, const float* gamma, const float* beta, float eps) {
  HWY_DYNAMIC_DISPATCH(LayerNormRowImpl)(x, y, d, gamma, beta, eps);
}
void softmax_row(const float* x, float* y, size_t d) { HWY_DYNAMIC_DISPATCH(SoftmaxRowImpl)(x, y, d); }
}  // namespace pigment::ops::simd
#endif
