// Flash-attention tile kernel (see simd_kernels.h), with queries in vector lanes: Sᵀ[key][query] = Σ_e k[key][e] ·
// Qᵀ[e][query] and Oᵀ[e][query] += Σ_key v[key][e] · Pᵀ[key][query]. Keys and values are read in place as broadcasts
// (no packing), the head size needs no padding, and the softmax over keys is a vertical max / sum across rows of Sᵀ
// (no horizontal reductions). Keys are visited in blocks with an online softmax, so memory per call is
// O(queries × (block + head size)), never queries × keys. A call takes any number of queries (attention.cc gives 256)
// in chunks of 64 (four vectors, one register tile wide), each chunk's Qᵀ and Oᵀ contiguous; every block of 64 keys
// is scored against all chunks in turn, so keys and values are read from memory once per call, not once per chunk.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/simd_attention.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep

#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "ops/exp2_avx512.h"
#include "ops/simd_kernels.h"

HWY_BEFORE_NAMESPACE();
// GCC 12 reports the _mm512_undefined_* inside its own AVX-512 headers (used by the transposes below) as maybe
// uninitialised.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace pigment::ops::simd {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// 2^t (the softmax's exp, with log2 e folded into the argument) as 2^n · 2^f with a degree-5 minimax polynomial for
// 2^f (relative error 7.5e-8 on its unit interval). Results below 2^-125 or so are exactly 0, never subnormal
// (subnormal weights would cost microcode assists in the value products); t may be -inf. Large t gives inf
// (AVX-512) or at least 2^127 (other targets), never a wrong finite value.
// AVX-512: ops/exp2_avx512.h (vreduceps, vscalefps, zero-masked by one compare: 9 instructions). Other targets:
// n = round(t) by adding 1.5·2^23 after clamping t to [-127, 127], |f| <= 1/2, and 2^n built in the exponent bits.
HWY_INLINE VF Exp2(DF d, VF t) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  (void)d;
  return VF{exp2_avx512(t.raw)};  // ops/exp2_avx512.h
#else
  const VF magic = hn::Set(d, 12582912.f);
  t = hn::Min(hn::Max(t, hn::Set(d, -127.f)), hn::Set(d, 127.f));
  const VF r = hn::Add(t, magic);
  const VF n = hn::Sub(r, magic);
  const VF f = hn::Sub(t, n);
  VF p = hn::Set(d, 1.327647198e-03f);
  p = hn::MulAdd(p, f, hn::Set(d, 9.675541334e-03f));
  p = hn::MulAdd(p, f, hn::Set(d, 5.550713274e-02f));
  p = hn::MulAdd(p, f, hn::Set(d, 2.402211972e-01f));
  p = hn::MulAdd(p, f, hn::Set(d, 6.931469671e-01f));
  p = hn::MulAdd(p, f, hn::Set(d, 1.000000072e+00f));
  const hn::RebindToSigned<DF> di;
  const VF scale = hn::BitCast(d, hn::ShiftLeft<23>(hn::Add(hn::BitCast(di, r), hn::Set(di, 127))));
  return hn::IfThenElseZero(hn::Ge(t, hn::Set(d, -125.f)), hn::Mul(p, scale));
#endif
}

// s[r][c·N ..] = Σ_e k[r][e] · qt[e][c·N ..] for R keys (row stride ldk) and C query vectors; mx[c] takes the max.
// kExp: s gets the weights 2^(score·log2 e + mneg[c]) instead, summed into sum[c] (mx is left alone).
template <int R, int C, bool kExp>
HWY_INLINE void ScoreTile(const float* k, size_t ldk, const float* qt, size_t ldq, size_t depth, float* s,
                          size_t lds, VF* mx, const VF* mneg, VF* sum) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = hn::Zero(d);
#pragma GCC unroll 4  // fewer loop instructions competing with the FMAs for ports 0 and 5
  for (size_t e = 0; e < depth; ++e) {
    VF qv[C];
    for (int c = 0; c < C; ++c) qv[c] = hn::LoadU(d, qt + e * ldq + c * N);
    for (int r = 0; r < R; ++r) {
      const VF kb = hn::Set(d, k[r * ldk + e]);
      for (int c = 0; c < C; ++c) acc[r][c] = hn::MulAdd(kb, qv[c], acc[r][c]);
    }
  }
  if (kExp) {
    const VF l2e = hn::Set(d, 1.44269504088896341f);
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) {
        const VF p = Exp2(d, hn::MulAdd(acc[r][c], l2e, mneg[c]));
        hn::StoreU(p, d, s + r * lds + c * N);
        sum[c] = hn::Add(sum[c], p);
      }
  } else {
    for (int c = 0; c < C; ++c) {
      VF m = acc[0][c];
      for (int r = 1; r < R; ++r) m = hn::Max(m, acc[r][c]);
      mx[c] = hn::Max(mx[c], m);
    }
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) hn::StoreU(acc[r][c], d, s + r * lds + c * N);
  }
}

// ot[r][c·N ..] += Σ_j v[j][r] · p[j][c·N ..] for R head dimensions and C query vectors, over n keys.
template <int R, int C>
HWY_INLINE void ValueTile(const float* v, size_t ldv, size_t n, const float* p, size_t ldp, float* ot, size_t ldo) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = hn::LoadU(d, ot + r * ldo + c * N);
#pragma GCC unroll 4
  for (size_t j = 0; j < n; ++j) {
    VF pv[C];
    for (int c = 0; c < C; ++c) pv[c] = hn::LoadU(d, p + j * ldp + c * N);
    for (int r = 0; r < R; ++r) {
      const VF vb = hn::Set(d, v[j * ldv + r]);
      for (int c = 0; c < C; ++c) acc[r][c] = hn::MulAdd(vb, pv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) hn::StoreU(acc[r][c], d, ot + r * ldo + c * N);
}

template <int C, bool kExp>
HWY_INLINE void Scores(const float* k, size_t ldk, size_t nb, const float* qt, size_t ldq, size_t depth, float* s,
                       size_t lds, VF* mx, const VF* mneg, VF* sum, const float* pf, size_t npf) {
  size_t j = 0;
  for (; j + 4 <= nb; j += 4) {
    ScoreTile<4, C, kExp>(k + j * ldk, ldk, qt, ldq, depth, s + j * lds, lds, mx, mneg, sum);
    for (size_t i = j; i < j + 4 && i < npf; ++i) {
      const float* row = pf + i * ldk;
      for (size_t e = 0; e < depth; e += 16) hwy::Prefetch(row + e);  // every 64-byte line of the row
      hwy::Prefetch(row + depth - 1);
    }
  }
  switch (nb - j) {
    case 3: ScoreTile<3, C, kExp>(k + j * ldk, ldk, qt, ldq, depth, s + j * lds, lds, mx, mneg, sum); break;
    case 2: ScoreTile<2, C, kExp>(k + j * ldk, ldk, qt, ldq, depth, s + j * lds, lds, mx, mneg, sum); break;
    case 1: ScoreTile<1, C, kExp>(k + j * ldk, ldk, qt, ldq, depth, s + j * lds, lds, mx, mneg, sum); break;
    default: break;
  }
}

template <int C>
HWY_INLINE void Values(const float* v, size_t ldv, size_t nb, const float* p, size_t ldp, size_t depth, float* ot,
                       size_t ldo) {
  constexpr int VR = 5;
  size_t r = 0;
  for (; r + VR <= depth; r += VR) ValueTile<VR, C>(v + r, ldv, nb, p, ldp, ot + r * ldo, ldo);
  for (; r + 4 <= depth; r += 4) ValueTile<4, C>(v + r, ldv, nb, p, ldp, ot + r * ldo, ldo);
  switch (depth - r) {
    case 3: ValueTile<3, C>(v + r, ldv, nb, p, ldp, ot + r * ldo, ldo); break;
    case 2: ValueTile<2, C>(v + r, ldv, nb, p, ldp, ot + r * ldo, ldo); break;
    case 1: ValueTile<1, C>(v + r, ldv, nb, p, ldp, ot + r * ldo, ldo); break;
    default: break;
  }
}

// One chunk of C query vectors against one block of nb keys: scores and weights, then Oᵀ += V·Pᵀ. The first block
// and causal ones take two passes (scores with their max per query, the online-softmax update and rescale, then the
// weights); later blocks one (see below). Qᵀ and Oᵀ rows are G apart. pf: npf rows (of depth floats) prefetched while
// scoring.
template <int C>
HWY_INLINE void Block(const float* kblk, const float* vblk, size_t ldkv, size_t nb, size_t kb, size_t depth,
                      bool causal, size_t first, const float* qt, float* ot, float* s, size_t G, float* m, float* l,
                      const float* pf, size_t npf) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const VF ninf = hn::Set(d, -INFINITY);
  const VF l2e = hn::Set(d, 1.44269504088896341f);
  VF mb[C], mneg[C], sum[C];
  if (!causal && kb > 0) {
    // One pass: the weights under the running max as it stands (not raised for this block), taken while the scores
    // are in registers. Fine while the block's weights sum to at most 2^48 per query (so no weight overflows, and
    // the outputs only past 2^79 keys × |value|); a score that far above the max is rare (the max settles within
    // the first blocks) and sends the block through the two passes below.
    constexpr float kSlack = 281474976710656.f;  // 2^48
    for (int c = 0; c < C; ++c) {
      mneg[c] = hn::Neg(hn::Mul(hn::LoadU(d, m + c * N), l2e));
      sum[c] = hn::Zero(d);
    }
    Scores<C, true>(kblk, ldkv, nb, qt, G, depth, s, G, mb, mneg, sum, pf, npf);
    bool ok = true;
    for (int c = 0; c < C; ++c) ok &= hn::AllTrue(d, hn::Le(sum[c], hn::Set(d, kSlack)));  // false for inf
    if (HWY_LIKELY(ok)) {
      for (int c = 0; c < C; ++c) hn::StoreU(hn::Add(hn::LoadU(d, l + c * N), sum[c]), d, l + c * N);
      Values<C>(vblk, ldkv, nb, s, G, depth, ot, G);
      return;
    }
    pf = nullptr, npf = 0;
  }
  for (int c = 0; c < C; ++c) mb[c] = ninf;
  Scores<C, false>(kblk, ldkv, nb, qt, G, depth, s, G, mb, mneg, sum, pf, npf);
  // Keys after a query's position are masked (-inf) and the block max recomputed without them.
  const bool masked = causal && kb + nb - 1 > first;
  if (masked) {
    for (int c = 0; c < C; ++c) {
      const size_t fc = first + c * N;  // position of this vector's first query
      mb[c] = ninf;
      for (size_t j = 0; j < nb; ++j) {
        VF x = hn::LoadU(d, s + j * G + c * N);
        if (kb + j > fc) {
          x = hn::IfThenElse(hn::FirstN(d, std::min(N, kb + j - fc)), ninf, x);
          hn::StoreU(x, d, s + j * G + c * N);
        }
        mb[c] = hn::Max(mb[c], x);
      }
    }
  }
  // Weights 2^(s·log2 e - m·log2 e): the product m·log2 e is rounded the same way in every block (so that its error
  // cancels between the sums and the outputs), and s·log2 e is exact inside the fused multiply-add.
  VF mnew[C];
  for (int c = 0; c < C; ++c) {
    const VF mold = hn::LoadU(d, m + c * N);
    mnew[c] = hn::Max(mold, mb[c]);
    if (causal) mnew[c] = hn::IfThenElse(hn::Eq(mnew[c], ninf), hn::Zero(d), mnew[c]);  // nothing visible yet
    const VF lold = hn::LoadU(d, l + c * N);
    if (!hn::AllTrue(d, hn::Eq(mold, mnew[c]))) {  // the max grew: rescale what was accumulated under the old one
      const VF alpha = Exp2(d, hn::Sub(hn::Mul(mold, l2e), hn::Mul(mnew[c], l2e)));
      hn::StoreU(hn::Mul(lold, alpha), d, l + c * N);
      for (size_t e = 0; e < depth; ++e) {
        float* o = ot + e * G + c * N;
        hn::StoreU(hn::Mul(hn::LoadU(d, o), alpha), d, o);
      }
    }
    hn::StoreU(mnew[c], d, m + c * N);
    mneg[c] = hn::Neg(hn::Mul(mnew[c], l2e));
    sum[c] = hn::Zero(d);
  }
  for (size_t j = 0; j < nb; ++j) {
    for (int c = 0; c < C; ++c) {
      const VF p = Exp2(d, hn::MulAdd(hn::LoadU(d, s + j * G + c * N), l2e, mneg[c]));
      hn::StoreU(p, d, s + j * G + c * N);
      sum[c] = hn::Add(sum[c], p);
    }
  }
  for (int c = 0; c < C; ++c) hn::StoreU(hn::Add(hn::LoadU(d, l + c * N), sum[c]), d, l + c * N);
  Values<C>(vblk, ldkv, nb, s, G, depth, ot, G);
}

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
// Transposes the 16×16 block r[0..15] (rows) in place: 2 × 16 unpacks, then 2 × 16 128-bit lane shuffles.
HWY_INLINE void Transpose16x16(__m512* r) {
  __m512 t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // u[i + c], lane k: rows i..i+3 of column 4k + c
    const auto lo = [](__m512 a, __m512 b) {
      return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
    };
    const auto hi = [](__m512 a, __m512 b) {
      return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
    };
    u[i] = lo(t[i], t[i + 2]);
    u[i + 1] = hi(t[i], t[i + 2]);
    u[i + 2] = lo(t[i + 1], t[i + 3]);
    u[i + 3] = hi(t[i + 1], t[i + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
    const __m512 v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88),
                 v3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
    r[c] = _mm512_shuffle_f32x4(v0, v2, 0x88);
    r[8 + c] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
    r[4 + c] = _mm512_shuffle_f32x4(v1, v3, 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
  }
}
#endif

void AttentionTileImpl(const float* q, size_t ldq, size_t nq, const float* k, const float* v, size_t ldkv, size_t nk,
                       size_t depth, float scale, bool causal, size_t q_pos, float* out, size_t ldo) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const size_t G = 4 * N;                   // queries per chunk (one register tile wide)
  const size_t B = 64;                      // keys per block
  const size_t nqp = (nq + N - 1) / N * N;  // queries padded to whole vectors
  const size_t chunks = (nqp + G - 1) / G;
  thread_local std::vector<float> scratch;
  const size_t need = 2 * depth * chunks * G + B * G + 2 * nqp;
  if (scratch.size() < need + 16) scratch.resize(need + 16);
  // Per chunk of G queries, contiguous [depth][G] slices (a long row stride would map them onto few L1 sets).
  // 64-byte aligned: every vector load and store of the scratch stays within one cache line.
  float* qt = scratch.data() + (16 - reinterpret_cast<uintptr_t>(scratch.data()) / sizeof(float) % 16) % 16;
  float* ot = qt + depth * chunks * G;    // running output, transposed
  float* s = ot + depth * chunks * G;     // [B][G] scores, then weights, of one chunk
  float* m = s + B * G;                   // running max per query
  float* l = m + nqp;                     // running sum per query
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  // 16 queries × 16 dimensions at a time: contiguous (masked) row loads, a register transpose, whole-vector stores.
  for (size_t i = 0; i < nqp; i += 16) {
    float* qc = qt + (i / G) * G * depth + i % G;
    for (size_t e0 = 0; e0 < depth; e0 += 16) {
      const size_t ne = std::min<size_t>(16, depth - e0);
      const __mmask16 me = static_cast<__mmask16>((1u << ne) - 1);
      __m512 r[16];
      for (size_t j = 0; j < 16; ++j)
        r[j] = i + j < nq ? _mm512_mul_ps(_mm512_maskz_loadu_ps(me, q + (i + j) * ldq + e0), _mm512_set1_ps(scale))
                          : _mm512_setzero_ps();
      Transpose16x16(r);
      for (size_t c = 0; c < ne; ++c) _mm512_storeu_ps(qc + (e0 + c) * G, r[c]);
    }
  }
#else
  for (size_t i0 = 0; i0 < nqp; i0 += G) {
    const size_t w = std::min(G, nqp - i0);
    float* qc = qt + i0 * depth;
    for (size_t e = 0; e < depth; ++e) {
      float* row = qc + e * G;
      for (size_t i = 0; i < w; ++i) row[i] = i0 + i < nq ? q[(i0 + i) * ldq + e] * scale : 0.f;
    }
  }
#endif
  std::memset(ot, 0, depth * chunks * G * sizeof(float));
  for (size_t i = 0; i < nqp; ++i) m[i] = -INFINITY, l[i] = 0.f;
  const size_t kend = causal ? std::min(nk, q_pos + nq) : nk;  // later keys are masked for every query

  for (size_t kb = 0; kb < kend; kb += B) {
    const size_t nb = std::min(B, kend - kb);
    const float* kblk = k + kb * ldkv;
    const float* vblk = v + kb * ldkv;
    const size_t nnext = kb + B < kend ? std::min(B, kend - kb - B) : 0;
    for (size_t i0 = 0; i0 < nqp; i0 += G) {
      const size_t vecs = std::min(G, nqp - i0) / N;
      const size_t first = q_pos + i0;
      // Prefetch: this block's values at the first query chunk, the next block's keys at the last.
      const float* pf = nullptr;
      size_t npf = 0;
      if (i0 + G >= nqp) pf = kblk + B * ldkv, npf = nnext;
      else if (i0 == 0) pf = vblk, npf = nb;
      float* const qc = qt + i0 * depth;
      float* const oc = ot + i0 * depth;
      switch (vecs) {
        case 4: Block<4>(kblk, vblk, ldkv, nb, kb, depth, causal, first, qc, oc, s, G, m + i0, l + i0, pf, npf); break;
        case 3: Block<3>(kblk, vblk, ldkv, nb, kb, depth, causal, first, qc, oc, s, G, m + i0, l + i0, pf, npf); break;
        case 2: Block<2>(kblk, vblk, ldkv, nb, kb, depth, causal, first, qc, oc, s, G, m + i0, l + i0, pf, npf); break;
        default: Block<1>(kblk, vblk, ldkv, nb, kb, depth, causal, first, qc, oc, s, G, m + i0, l + i0, pf, npf); break;
      }
    }
  }
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  for (size_t i = 0; i < nq; i += 16) {
    const float* oc = ot + (i / G) * G * depth + i % G;
    const __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.f), _mm512_loadu_ps(l + i));
    for (size_t e0 = 0; e0 < depth; e0 += 16) {
      const size_t ne = std::min<size_t>(16, depth - e0);
      const __mmask16 me = static_cast<__mmask16>((1u << ne) - 1);
      __m512 r[16];
      for (size_t c = 0; c < 16; ++c) r[c] = c < ne ? _mm512_mul_ps(_mm512_loadu_ps(oc + (e0 + c) * G), inv) : inv;
      Transpose16x16(r);
      for (size_t j = 0; j < 16 && i + j < nq; ++j) _mm512_mask_storeu_ps(out + (i + j) * ldo + e0, me, r[j]);
    }
  }
#else
  for (size_t i = 0; i < nq; ++i) {
    const float inv = 1.f / l[i];
    const float* oc = ot + (i / G) * G * depth + i % G;
    float* dst = out + i * ldo;
    for (size_t e = 0; e < depth; ++e) dst[e] = oc[e * G] * inv;
  }
#endif
}
}  // namespace HWY_NAMESPACE
#pragma GCC diagnostic pop
}  // namespace pigment::ops::simd
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace pigment::ops::simd {
HWY_EXPORT(AttentionTileImpl);
void attention_tile(const float* q, size_t ldq, size_t nq, const float* k, const float* v, size_t ldkv, size_t nk,
                    size_t d, float scale, bool causal, size_t q_pos, float* out, size_t ldo) {
  HWY_DYNAMIC_DISPATCH(AttentionTileImpl)(q, ldq, nq, k, v, ldkv, nk, d, scale, causal, q_pos, out, ldo);
}
}  // namespace pigment::ops::simd
#endif
