// Vector math shared by the SIMD kernel files (per-target, Highway's -inl.h convention): include it after
// <hwy/foreach_target.h> and <hwy/highway.h> in a file that foreach_target compiles once per target.
#if defined(PIGMENT_OPS_SIMD_MATH_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef PIGMENT_OPS_SIMD_MATH_INL_H_
#undef PIGMENT_OPS_SIMD_MATH_INL_H_
#else
#define PIGMENT_OPS_SIMD_MATH_INL_H_
#endif

#include <hwy/contrib/math/math-inl.h>
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace pigment::ops::simd {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// erf(x), absolute error < 1.5e-7 (std::erf's own float rounding is ~6e-8). |x| < 1: x·P(x²), a polynomial fitted
// to erf(√z)/√z on z ∈ [0, 1]; 1 <= |x| < 3.92: 1 - exp(-x²)·g(x), g a Chebyshev fit of erfc(x)·exp(x²) on
// [1, 3.92]; beyond, ±1 (erfc(3.92) is below half a float ulp of 1).
template <class DF>
HWY_INLINE hn::Vec<DF> Erf(DF d, hn::Vec<DF> x) {
  using VF = hn::Vec<DF>;
  const VF ax = hn::Abs(x);
  const VF z = hn::Mul(x, x);
  VF p = hn::Set(d, 1.059527585e-06f);
  p = hn::MulAdd(p, z, hn::Set(d, -1.391170115e-05f));
  p = hn::MulAdd(p, z, hn::Set(d, 1.195694682e-04f));
  p = hn::MulAdd(p, z, hn::Set(d, -8.542670568e-04f));
  p = hn::MulAdd(p, z, hn::Set(d, 5.223785007e-03f));
  p = hn::MulAdd(p, z, hn::Set(d, -2.686613363e-02f));
  p = hn::MulAdd(p, z, hn::Set(d, 1.128379131e-01f));
  p = hn::MulAdd(p, z, hn::Set(d, -3.761263889e-01f));
  p = hn::MulAdd(p, z, hn::Set(d, 1.128379167e+00f));
  const VF small = hn::Mul(x, p);

  static constexpr float kC[13] = {2.467160319e-01f,  -1.349788595e-01f, 3.479777583e-02f,  -8.523441666e-03f,
                                   1.995743457e-03f,  -4.488308740e-04f, 9.731988371e-05f,  -2.040875437e-05f,
                                   4.150112556e-06f,  -8.201490133e-07f, 1.578125602e-07f,  -2.961589474e-08f,
                                   5.428421284e-09f};
  const VF axc = hn::Min(hn::Max(ax, hn::Set(d, 1.f)), hn::Set(d, 3.92f));
  // u ∈ [-1, 1] over [1, 3.92]
  const VF u = hn::Mul(hn::Sub(hn::Add(axc, axc), hn::Set(d, 4.92f)), hn::Set(d, 1.f / 2.92f));
  const VF u2 = hn::Add(u, u);
  VF b1 = hn::Zero(d), b2 = hn::Zero(d);
  for (int k = 12; k >= 1; --k) {
    VF t = hn::MulAdd(u2, b1, hn::Sub(hn::Set(d, kC[k]), b2));
    b2 = b1;
    b1 = t;
  }
  const VF g = hn::MulAdd(u, b1, hn::Sub(hn::Set(d, kC[0]), b2));
  const VF e = hn::Mul(hn::Exp(d, hn::Neg(hn::Mul(axc, axc))), g);
  VF big = hn::Sub(hn::Set(d, 1.f), e);
  big = hn::IfThenElse(hn::Ge(ax, hn::Set(d, 3.92f)), hn::Set(d, 1.f), big);
  big = hn::CopySignToAbs(big, x);
  return hn::IfThenElse(hn::Lt(ax, hn::Set(d, 1.f)), small, big);
}

}  // namespace HWY_NAMESPACE
}  // namespace pigment::ops::simd
HWY_AFTER_NAMESPACE();

#endif  // PIGMENT_OPS_SIMD_MATH_INL_H_
