#include "ops/attention_bf16.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/cpu_isa.h"
#include "core/dtype.h"
#include "core/error.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include "ops/exp2_avx512.h"
#define PIG_BF16_ATTENTION 1
#endif

namespace pigment::ops::bf16_attention {

bool available() {
#if PIG_BF16_ATTENTION
  static const bool has = cpu_has(Isa::Avx512Bf16);
  return has;
#else
  return false;
#endif
}

namespace {
std::atomic<size_t> g_min_keys{kDefaultMinKeys};
}  // namespace
size_t set_min_keys(size_t n) { return g_min_keys.exchange(n); }
size_t min_keys() { return g_min_keys.load(); }

#if PIG_BF16_ATTENTION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's AVX-512 headers (their _mm512_undefined_*)
namespace {
#define PIG_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))
constexpr size_t N = 16;      // fp32 lanes
constexpr size_t G = 4 * N;   // queries per chunk
constexpr size_t B = 64;      // keys per block
constexpr float kLog2e = 1.44269504088896341f;

// Two fp32 vectors as one vector of bf16 pairs: lane i = (a[i], b[i]), a in the low half (rounded to nearest even).
PIG_BF16_TARGET inline __m512i pair_bf16(__m512 a, __m512 b) {
  const __m512i both = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(b, a));  // a → elements 0-15, b → 16-31
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21,
                                       5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(idx, both);
}

PIG_BF16_TARGET void pack_keys_avx512(const float* k, size_t ldk, size_t nk, size_t depth, uint16_t* out) {
  const size_t dp = depth + depth % 2;
  for (size_t j = 0; j < nk; ++j) {
    const float* src = k + j * ldk;
    uint16_t* row = out + j * dp;
    for (size_t e = 0; e < dp; e += N) {
      const size_t n = std::min(N, depth - std::min(depth, e));
      const __mmask16 in = static_cast<__mmask16>((1u << n) - 1);
      const __mmask16 to = static_cast<__mmask16>((1u << std::min(N, dp - e)) - 1);  // the odd pad stored as 0
      const __m256i h = reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(in, src + e)));
      _mm256_mask_storeu_epi16(row + e, to, h);
    }
  }
}

PIG_BF16_TARGET void pack_values_avx512(const float* v, size_t ldv, size_t nk, size_t depth, uint32_t* out) {
  for (size_t j2 = 0; j2 < (nk + 1) / 2; ++j2) {
    const float* a = v + 2 * j2 * ldv;
    const float* b = 2 * j2 + 1 < nk ? a + ldv : nullptr;
    for (size_t e = 0; e < depth; e += N) {
      const __mmask16 m = static_cast<__mmask16>((1u << std::min(N, depth - e)) - 1);
      const __m512 lo = _mm512_maskz_loadu_ps(m, a + e), hi = b ? _mm512_maskz_loadu_ps(m, b + e) : _mm512_setzero_ps();
      _mm512_mask_storeu_epi32(out + j2 * depth + e, m, pair_bf16(lo, hi));
    }
  }
}
}  // namespace
#pragma GCC diagnostic pop
#endif

// Like attention_tile, only where available() (attention.cc asks first): no scalar twins to keep in step.
void pack_keys(const float* k, size_t ldk, size_t nk, size_t depth, uint16_t* out) {
#if PIG_BF16_ATTENTION
  PIG_CHECK(available(), "bf16 attention: this CPU has no AVX-512 BF16");
  pack_keys_avx512(k, ldk, nk, depth, out);
#else
  (void)k, (void)ldk, (void)nk, (void)depth, (void)out;
  fail("bf16 attention: not built for this CPU");
#endif
}

void pack_values(const float* v, size_t ldv, size_t nk, size_t depth, uint32_t* out) {
#if PIG_BF16_ATTENTION
  PIG_CHECK(available(), "bf16 attention: this CPU has no AVX-512 BF16");
  pack_values_avx512(v, ldv, nk, depth, out);
#else
  (void)v, (void)ldv, (void)nk, (void)depth, (void)out;
  fail("bf16 attention: not built for this CPU");
#endif
}

#if PIG_BF16_ATTENTION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's AVX-512 headers (their _mm512_undefined_*)
namespace {
PIG_BF16_TARGET inline __m512 dot(__m512 acc, __m512i a, __m512i b) {
  return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh>(a), reinterpret_cast<__m512bh>(b));
}

// s[r][c·N ..] = Σ_e2 k32[r][e2] · qt[e2][c·N ..] (pairs of head dimensions) for R keys and C query vectors.
template <int R, int C>
PIG_BF16_TARGET inline void score_tile(const uint32_t* k32, size_t d2, const uint32_t* qt, float* s) {
  __m512 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  for (size_t e2 = 0; e2 < d2; ++e2) {
    __m512i qv[C];
    for (int c = 0; c < C; ++c) qv[c] = _mm512_loadu_si512(qt + e2 * G + c * N);
    for (int r = 0; r < R; ++r) {
      const __m512i kb = _mm512_set1_epi32(static_cast<int>(k32[r * d2 + e2]));
      for (int c = 0; c < C; ++c) acc[r][c] = dot(acc[r][c], kb, qv[c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) _mm512_storeu_ps(s + r * G + c * N, acc[r][c]);
}

// ot[r][c·N ..] += Σ_j2 vt[j2][r] · pp[j2][c·N ..] (pairs of keys) for R head dimensions and C query vectors.
template <int R, int C>
PIG_BF16_TARGET inline void value_tile(const uint32_t* vt, size_t ldv, size_t n2, const uint32_t* pp, float* ot) {
  __m512 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_loadu_ps(ot + r * G + c * N);
  for (size_t j2 = 0; j2 < n2; ++j2) {
    __m512i pv[C];
    for (int c = 0; c < C; ++c) pv[c] = _mm512_loadu_si512(pp + j2 * G + c * N);
    for (int r = 0; r < R; ++r) {
      const __m512i vb = _mm512_set1_epi32(static_cast<int>(vt[j2 * ldv + r]));
      for (int c = 0; c < C; ++c) acc[r][c] = dot(acc[r][c], vb, pv[c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) _mm512_storeu_ps(ot + r * G + c * N, acc[r][c]);
}

// One chunk of C query vectors against one block of nb keys (kb is the block's first key): scores, the online
// softmax update, the weights as bf16 pairs of keys, then Oᵀ += V·Pᵀ.
template <int C>
PIG_BF16_TARGET void block(const uint32_t* k32, size_t d2, const uint32_t* vt, size_t kb, size_t nb,
                           size_t depth, const uint32_t* qt, float* ot, float* s, uint32_t* pp, float* m, float* l) {
  size_t j = 0;
  for (; j + 4 <= nb; j += 4) score_tile<4, C>(k32 + (kb + j) * d2, d2, qt, s + j * G);
  switch (nb - j) {
    case 3: score_tile<3, C>(k32 + (kb + j) * d2, d2, qt, s + j * G); break;
    case 2: score_tile<2, C>(k32 + (kb + j) * d2, d2, qt, s + j * G); break;
    case 1: score_tile<1, C>(k32 + (kb + j) * d2, d2, qt, s + j * G); break;
    default: break;
  }
  const __m512 l2e = _mm512_set1_ps(kLog2e);
  for (int c = 0; c < C; ++c) {
    __m512 mb = _mm512_set1_ps(-INFINITY);
    for (size_t i = 0; i < nb; ++i) mb = _mm512_max_ps(mb, _mm512_loadu_ps(s + i * G + c * N));
    const __m512 mold = _mm512_loadu_ps(m + c * N), mnew = _mm512_max_ps(mold, mb);
    if (_mm512_cmp_ps_mask(mold, mnew, _CMP_NEQ_UQ)) {  // the max grew: rescale what was accumulated under the old
      const __m512 alpha = exp2_avx512(_mm512_sub_ps(_mm512_mul_ps(mold, l2e), _mm512_mul_ps(mnew, l2e)));
      _mm512_storeu_ps(l + c * N, _mm512_mul_ps(_mm512_loadu_ps(l + c * N), alpha));
      for (size_t e = 0; e < depth; ++e) {
        float* o = ot + e * G + c * N;
        _mm512_storeu_ps(o, _mm512_mul_ps(_mm512_loadu_ps(o), alpha));
      }
      _mm512_storeu_ps(m + c * N, mnew);
    }
    const __m512 mneg = _mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(mnew, l2e));
    __m512 sum = _mm512_setzero_ps();
    for (size_t i = 0; i < nb; i += 2) {
      const __m512 p0 = exp2_avx512(_mm512_fmadd_ps(_mm512_loadu_ps(s + i * G + c * N), l2e, mneg));
      const __m512 p1 = i + 1 < nb ? exp2_avx512(_mm512_fmadd_ps(_mm512_loadu_ps(s + (i + 1) * G + c * N), l2e, mneg))
                                   : _mm512_setzero_ps();
      sum = _mm512_add_ps(sum, _mm512_add_ps(p0, p1));
      _mm512_storeu_si512(pp + (i / 2) * G + c * N, pair_bf16(p0, p1));
    }
    _mm512_storeu_ps(l + c * N, _mm512_add_ps(_mm512_loadu_ps(l + c * N), sum));
  }
  const size_t n2 = (nb + 1) / 2;
  const uint32_t* vb = vt + kb / 2 * depth;
  constexpr int VR = 4;
  size_t e = 0;
  for (; e + VR <= depth; e += VR) value_tile<VR, C>(vb + e, depth, n2, pp, ot + e * G);
  switch (depth - e) {
    case 3: value_tile<3, C>(vb + e, depth, n2, pp, ot + e * G); break;
    case 2: value_tile<2, C>(vb + e, depth, n2, pp, ot + e * G); break;
    case 1: value_tile<1, C>(vb + e, depth, n2, pp, ot + e * G); break;
    default: break;
  }
}

PIG_BF16_TARGET void tile(const float* q, size_t ldq, size_t nq, const uint16_t* k16, const uint32_t* vt, size_t nk,
                          size_t depth, float scale, float* out, size_t ldo) {
  const size_t d2 = (depth + 1) / 2;
  const size_t nqp = (nq + N - 1) / N * N, chunks = (nqp + G - 1) / G;
  thread_local std::vector<uint32_t> qbuf, pbuf;
  thread_local std::vector<float> fbuf;
  qbuf.assign(chunks * d2 * G, 0u);
  pbuf.resize(B / 2 * G);
  fbuf.assign(chunks * depth * G + B * G + 2 * nqp, 0.f);
  uint32_t* qt = qbuf.data();
  float* ot = fbuf.data();
  float* s = ot + chunks * depth * G;
  float* m = s + B * G;
  float* l = m + nqp;
  for (size_t i = 0; i < nqp; ++i) m[i] = -INFINITY;
  for (size_t i = 0; i < nq; ++i) {  // Qᵀ as pairs of head dimensions, scaled, per chunk [d2][G]
    uint32_t* qc = qt + (i / G) * d2 * G + i % G;
    const float* row = q + i * ldq;
    for (size_t e2 = 0; e2 < d2; ++e2) {
      const uint32_t lo = float_to_bf16(row[2 * e2] * scale);
      const uint32_t hi = 2 * e2 + 1 < depth ? float_to_bf16(row[2 * e2 + 1] * scale) : 0u;
      qc[e2 * G] = lo | hi << 16;
    }
  }
  const uint32_t* k32 = reinterpret_cast<const uint32_t*>(k16);
  for (size_t kb = 0; kb < nk; kb += B) {
    const size_t nb = std::min(B, nk - kb);
    for (size_t i0 = 0; i0 < nqp; i0 += G) {
      const uint32_t* qc = qt + (i0 / G) * d2 * G;
      float* oc = ot + (i0 / G) * depth * G;
      switch (std::min(G, nqp - i0) / N) {
        case 4: block<4>(k32, d2, vt, kb, nb, depth, qc, oc, s, pbuf.data(), m + i0, l + i0); break;
        case 3: block<3>(k32, d2, vt, kb, nb, depth, qc, oc, s, pbuf.data(), m + i0, l + i0); break;
        case 2: block<2>(k32, d2, vt, kb, nb, depth, qc, oc, s, pbuf.data(), m + i0, l + i0); break;
        default: block<1>(k32, d2, vt, kb, nb, depth, qc, oc, s, pbuf.data(), m + i0, l + i0); break;
      }
    }
  }
  for (size_t i = 0; i < nq; ++i) {
    const float inv = 1.f / l[i];
    const float* oc = ot + (i / G) * depth * G + i % G;
    for (size_t e = 0; e < depth; ++e) out[i * ldo + e] = oc[e * G] * inv;
  }
}
#undef PIG_BF16_TARGET
}  // namespace
#pragma GCC diagnostic pop
#endif

void attention_tile(const float* q, size_t ldq, size_t nq, const uint16_t* k16, const uint32_t* vt, size_t nk,
                    size_t depth, float scale, float* out, size_t ldo) {
#if PIG_BF16_ATTENTION
  PIG_CHECK(available(), "bf16 attention: this CPU has no AVX-512 BF16");
  if (nq == 0) return;
  if (nk == 0 || depth == 0) {
    for (size_t i = 0; i < nq; ++i) std::fill(out + i * ldo, out + i * ldo + depth, 0.f);
    return;
  }
  tile(q, ldq, nq, k16, vt, nk, depth, scale, out, ldo);
#else
  (void)q, (void)ldq, (void)nq, (void)k16, (void)vt, (void)nk, (void)depth, (void)scale, (void)out, (void)ldo;
  fail("bf16 attention: not built for this CPU");
#endif
}

}  // namespace pigment::ops::bf16_attention
