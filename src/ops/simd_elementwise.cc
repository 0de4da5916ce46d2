// SIMD kernels for activations, arithmetic, resampling and conversions (see simd_kernels.h).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/simd_elementwise.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep

#include <hwy/contrib/math/math-inl.h>
#include <hwy/highway.h>

#include "core/dtype.h"
#include "ops/simd_kernels.h"
#include "ops/simd_math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace pigment::ops::simd {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// v / (1 + exp(-k·v)); the exponent is clamped where exp would overflow (the result is then -0 or a denormal).
HWY_INLINE VF Sigmoid_x(DF d, VF v, float k) {
  VF arg = hn::Min(hn::Mul(hn::Set(d, -k), v), hn::Set(d, 88.f));
  return hn::Div(v, hn::Add(hn::Set(d, 1.f), hn::Exp(d, arg)));
}
HWY_INLINE VF Gelu(DF d, VF v) {
  VF e = Erf(d, hn::Mul(v, hn::Set(d, 0.70710678118654752f)));
  return hn::Mul(hn::Mul(hn::Set(d, 0.5f), v), hn::Add(hn::Set(d, 1.f), e));
}
HWY_INLINE VF GeluTanh(DF d, VF v) {
  VF c = hn::Mul(hn::Mul(hn::Mul(hn::Set(d, 0.044715f), v), v), v);
  VF t = hn::Tanh(d, hn::Mul(hn::Set(d, 0.7978845608028654f), hn::Add(v, c)));
  return hn::Mul(hn::Mul(hn::Set(d, 0.5f), v), hn::Add(hn::Set(d, 1.f), t));
}

// Runs f over n floats: whole vectors, then the tail through a padded buffer.
template <class F>
HWY_INLINE void ForEach(const float* x, float* y, size_t n, F f) {
  const DF d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(f(hn::LoadU(d, x + i)), d, y + i);
  if (i < n) {
    alignas(64) float buf[64] = {};
    for (size_t j = i; j < n; ++j) buf[j - i] = x[j];
    hn::Store(f(hn::Load(d, buf)), d, buf);
    for (size_t j = i; j < n; ++j) y[j] = buf[j - i];
  }
}

void UnaryImpl(int op, const float* x, float* y, size_t n) {
  const DF d;
  switch (Unary(op)) {
    case Unary::Silu: return ForEach(x, y, n, [&](VF v) { return Sigmoid_x(d, v, 1.f); });
    case Unary::QuickGelu: return ForEach(x, y, n, [&](VF v) { return Sigmoid_x(d, v, 1.702f); });
    case Unary::Gelu: return ForEach(x, y, n, [&](VF v) { return Gelu(d, v); });
    case Unary::GeluTanh: return ForEach(x, y, n, [&](VF v) { return GeluTanh(d, v); });
  }
}

void GegluImpl(const float* x, float* y, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    VF a = hn::LoadU(d, x + i), g = hn::LoadU(d, x + n + i);
    hn::StoreU(hn::Mul(a, Gelu(d, g)), d, y + i);
  }
  for (; i < n; ++i) {  // tail: one lane at a time through a vector
    VF a = hn::Set(d, x[i]), g = hn::Set(d, x[n + i]);
    y[i] = hn::GetLane(hn::Mul(a, Gelu(d, g)));
  }
}

template <int kOp>
HWY_INLINE VF Apply(VF a, VF b) {
  if constexpr (kOp == 0) return hn::Add(a, b);
  if constexpr (kOp == 1) return hn::Sub(a, b);
  return hn::Mul(a, b);
}

template <int kOp>
HWY_INLINE void BinaryT(const float* a, size_t as, const float* b, size_t bs, float* y, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  if (as && bs) {
    for (; i + N <= n; i += N) hn::StoreU(Apply<kOp>(hn::LoadU(d, a + i), hn::LoadU(d, b + i)), d, y + i);
  } else if (as) {
    const VF vb = hn::Set(d, b[0]);
    for (; i + N <= n; i += N) hn::StoreU(Apply<kOp>(hn::LoadU(d, a + i), vb), d, y + i);
  } else if (bs) {
    const VF va = hn::Set(d, a[0]);
    for (; i + N <= n; i += N) hn::StoreU(Apply<kOp>(va, hn::LoadU(d, b + i)), d, y + i);
  }
  for (; i < n; ++i) {
    float va = a[i * as], vb = b[i * bs];
    y[i] = kOp == 0 ? va + vb : kOp == 1 ? va - vb : va * vb;
  }
}

void BinaryImpl(int op, const float* a, size_t as, const float* b, size_t bs, float* y, size_t n) {
  if (op == 0) return BinaryT<0>(a, as, b, bs, y, n);
  if (op == 1) return BinaryT<1>(a, as, b, bs, y, n);
  return BinaryT<2>(a, as, b, bs, y, n);
}

void AddScaledImpl(const float* a, const float* b, float s, float* y, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const VF vs = hn::Set(d, s);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Add(hn::LoadU(d, a + i), hn::Mul(vs, hn::LoadU(d, b + i))), d, y + i);
  for (; i < n; ++i) y[i] = a[i] + s * b[i];
}

void ScaleImpl(const float* x, float s, float* y, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const VF vs = hn::Set(d, s);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(d, x + i), vs), d, y + i);
  for (; i < n; ++i) y[i] = x[i] * s;
}

void Upsample2xImpl(const float* x, float* y, size_t w) {
  const DF d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  if (N >= 2) {
    const hn::RebindToSigned<DF> di;
    // Lane j of the low half takes x[j/2], of the high half x[(N+j)/2].
    const auto lo = hn::IndicesFromVec(d, hn::ShiftRight<1>(hn::Iota(di, 0)));
    const auto hi = hn::IndicesFromVec(d, hn::ShiftRight<1>(hn::Iota(di, int32_t(N))));
    for (; i + N <= w; i += N) {
      VF v = hn::LoadU(d, x + i);
      hn::StoreU(hn::TableLookupLanes(v, lo), d, y + 2 * i);
      hn::StoreU(hn::TableLookupLanes(v, hi), d, y + 2 * i + N);
    }
  }
  for (; i < w; ++i) y[2 * i] = y[2 * i + 1] = x[i];
}

void F16ToF32Impl(const uint16_t* x, float* y, size_t n) {
  const DF d;
  const hn::Rebind<hwy::float16_t, DF> dh;
  const size_t N = hn::Lanes(d);
  const auto* xh = reinterpret_cast<const hwy::float16_t*>(x);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::PromoteTo(d, hn::LoadU(dh, xh + i)), d, y + i);
  for (; i < n; ++i) y[i] = half_to_float(x[i]);
}

void Bf16ToF32Impl(const uint16_t* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    uint32_t u = uint32_t(x[i]) << 16;
    __builtin_memcpy(y + i, &u, 4);  // the compiler vectorises this shift-and-store loop
  }
}

void TransposeImpl(const float* x, size_t ldx, float* y, size_t ldy, size_t rows, size_t cols) {
  // 8x8 blocks keep both sides in cache lines; the compiler turns the inner block into shuffles.
  constexpr size_t B = 8;
  for (size_t r0 = 0; r0 < rows; r0 += B)
    for (size_t c0 = 0; c0 < cols; c0 += B) {
      size_t re = r0 + B < rows ? r0 + B : rows, ce = c0 + B < cols ? c0 + B : cols;
      for (size_t c = c0; c < ce; ++c)
        for (size_t r = r0; r < re; ++r) y[c * ldy + r] = x[r * ldx + c];
    }
}

// The target this file was compiled for: what HWY_DYNAMIC_DISPATCH chose.
const char* TargetNameImpl() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace pigment::ops::simd
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace pigment::ops::simd {
HWY_EXPORT(UnaryImpl);
HWY_EXPORT(GegluImpl);
HWY_EXPORT(BinaryImpl);
HWY_EXPORT(AddScaledImpl);
HWY_EXPORT(ScaleImpl);
HWY_EXPORT(Upsample2xImpl);
HWY_EXPORT(F16ToF32Impl);
HWY_EXPORT(Bf16ToF32Impl);
HWY_EXPORT(TransposeImpl);
HWY_EXPORT(TargetNameImpl);

void unary(Unary op, const float* x, float* y, size_t n) { HWY_DYNAMIC_DISPATCH(UnaryImpl)(int(op), x, y, n); }
void geglu(const float* x, float* y, size_t d) { HWY_DYNAMIC_DISPATCH(GegluImpl)(x, y, d); }
void binary(Binary op, const float* a, size_t a_step, const float* b, size_t b_step, float* y, size_t n) {
  HWY_DYNAMIC_DISPATCH(BinaryImpl)(int(op), a, a_step, b, b_step, y, n);
}
void add_scaled(const float* a, const float* b, float s, float* y, size_t n) {
  HWY_DYNAMIC_DISPATCH(AddScaledImpl)(a, b, s, y, n);
}
void scale(const float* x, float s, float* y, size_t n) { HWY_DYNAMIC_DISPATCH(ScaleImpl)(x, s, y, n); }
void upsample2x_row(const float* x, float* y, size_t w) { HWY_DYNAMIC_DISPATCH(Upsample2xImpl)(x, y, w); }
void f16_to_f32(const uint16_t* x, float* y, size_t n) { HWY_DYNAMIC_DISPATCH(F16ToF32Impl)(x, y, n); }
void bf16_to_f32(const uint16_t* x, float* y, size_t n) { HWY_DYNAMIC_DISPATCH(Bf16ToF32Impl)(x, y, n); }
void transpose(const float* x, size_t ldx, float* y, size_t ldy, size_t rows, size_t cols) {
  HWY_DYNAMIC_DISPATCH(TransposeImpl)(x, ldx, y, ldy, rows, cols);
}
const char* target_name() { return HWY_DYNAMIC_DISPATCH(TargetNameImpl)(); }
}  // namespace pigment::ops::simd
#endif
