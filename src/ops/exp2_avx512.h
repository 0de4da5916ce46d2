// 2^t on AVX-512 for the softmax kernels (ops/simd_attention.cc, ops/attention_bf16.cc): 2^floor(t) · 2^f with
// f = t - floor(t) by vreduceps and a degree-5 minimax polynomial for 2^f (relative error 7.5e-8 on [0, 1)), the
// product by vscalefps; results below 2^-126 are exactly 0 (never subnormal), t may be -inf (0), large t gives inf.
// Compiled by target attribute: callers must run it only where the CPU has AVX-512 (F and DQ).
#pragma once
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

namespace pigment::ops {

__attribute__((target("avx512f,avx512dq"), always_inline)) inline __m512 exp2_avx512(__m512 t) {
  const __m512 f = _mm512_reduce_ps(t, 0x09);  // t - floor(t) in [0, 1) (NaN for -inf, masked below)
  __m512 p = _mm512_set1_ps(1.877576673e-03f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(8.989340095e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.582631805e-02f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.401536170e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931530732e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.999999251e-01f));
  const __mmask16 normal = _mm512_cmp_ps_mask(t, _mm512_set1_ps(-126.f), _CMP_GE_OQ);
  return _mm512_maskz_scalef_ps(normal, p, t);
}

}  // namespace pigment::ops
#endif
