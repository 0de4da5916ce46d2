// Flash-attention tile kernel (see simd_kernels.h), with queries in vector lanes: Sᵀ[key][query] = Σ_e k[key][e] ·
// Qᵀ[e][query] and Oᵀ[e][query] += Σ_key v[key][e] · Pᵀ[key][query]. Keys and values are read in place as broadcasts
// (no packing), the head size needs no padding, and the softmax over keys is a vertical max / sum across rows of Sᵀ
// (no horizontal reductions). Keys are visited in blocks with an online softmax, so memory per call is
// O(queries × (block + head size)), never queries × keys.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/simd_attention.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep

#include <hwy/highway.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "ops/simd_kernels.h"

HWY_BEFORE_NAMESPACE();
namespace pigment::ops::simd {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// exp(x) for x <= 0: 2^t with t = x·log2(e) split into n + f, 2^f by its Taylor series (degree 6, relative error
// ~1e-7 on |f| <= 1/2) and 2^n built in the exponent bits. Adding 1.5·2^23 rounds t to an integer held in the low
// mantissa bits, which become the exponent after a shift. Results below 2^-126 (x < -87) are 0. The rounding of t
// adds |t|·2^-24 relative error, tiny where it matters: the largest weights have t near 0.
HWY_INLINE VF ExpNonPositive(DF d, VF x) {
  const hn::RebindToSigned<DF> di;
  const VF magic = hn::Set(d, 12582912.f);
  const VF t = hn::Max(hn::Mul(x, hn::Set(d, 1.44269504088896341f)), hn::Set(d, -126.f));
  const VF r = hn::Add(t, magic);
  const VF f = hn::Mul(hn::Sub(t, hn::Sub(r, magic)), hn::Set(d, 0.693147180559945309f));  // ∈ [-0.35, 0.35]
  VF p = hn::Set(d, 1.f / 720.f);
  p = hn::MulAdd(p, f, hn::Set(d, 1.f / 120.f));
  p = hn::MulAdd(p, f, hn::Set(d, 1.f / 24.f));
  p = hn::MulAdd(p, f, hn::Set(d, 1.f / 6.f));
  p = hn::MulAdd(p, f, hn::Set(d, 0.5f));
  p = hn::MulAdd(p, f, hn::Set(d, 1.f));
  p = hn::MulAdd(p, f, hn::Set(d, 1.f));
  const VF scale = hn::BitCast(d, hn::ShiftLeft<23>(hn::Add(hn::BitCast(di, r), hn::Set(di, 127))));
  return hn::IfThenElseZero(hn::Ge(x, hn::Set(d, -87.f)), hn::Mul(p, scale));
}

// s[r][c·N ..] = Σ_e k[r][e] · qt[e][c·N ..] for R keys (row stride ldk) and C query vectors.
template <int R, int C>
HWY_INLINE void ScoreTile(const float* k, size_t ldk, const float* qt, size_t ldq, size_t depth, float* s,
                          size_t lds) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = hn::Zero(d);
  for (size_t e = 0; e < depth; ++e) {
    VF qv[C];
    for (int c = 0; c < C; ++c) qv[c] = hn::LoadU(d, qt + e * ldq + c * N);
    for (int r = 0; r < R; ++r) {
      const VF kb = hn::Set(d, k[r * ldk + e]);
      for (int c = 0; c < C; ++c) acc[r][c] = hn::MulAdd(kb, qv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) hn::StoreU(acc[r][c], d, s + r * lds + c * N);
}

// ot[r][c·N ..] += Σ_j v[j][r] · p[j][c·N ..] for R head dimensions and C query vectors, over n keys.
template <int R, int C>
HWY_INLINE void ValueTile(const float* v, size_t ldv, size_t n, const float* p, size_t ldp, float* ot, size_t ldo) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = hn::LoadU(d, ot + r * ldo + c * N);
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

template <int C>
HWY_INLINE void Scores(const float* k, size_t ldk, size_t nb, const float* qt, size_t ldq, size_t depth, float* s,
                       size_t lds) {
  size_t j = 0;
  for (; j + 4 <= nb; j += 4) ScoreTile<4, C>(k + j * ldk, ldk, qt, ldq, depth, s + j * lds, lds);
  switch (nb - j) {
    case 3: ScoreTile<3, C>(k + j * ldk, ldk, qt, ldq, depth, s + j * lds, lds); break;
    case 2: ScoreTile<2, C>(k + j * ldk, ldk, qt, ldq, depth, s + j * lds, lds); break;
    case 1: ScoreTile<1, C>(k + j * ldk, ldk, qt, ldq, depth, s + j * lds, lds); break;
    default: break;
  }
}

template <int C>
HWY_INLINE void Values(const float* v, size_t ldv, size_t nb, const float* p, size_t ldp, size_t depth, float* ot,
                       size_t ldo) {
  size_t r = 0;
  for (; r + 4 <= depth; r += 4) ValueTile<4, C>(v + r, ldv, nb, p, ldp, ot + r * ldo, ldo);
  switch (depth - r) {
    case 3: ValueTile<3, C>(v + r, ldv, nb, p, ldp, ot + r * ldo, ldo); break;
    case 2: ValueTile<2, C>(v + r, ldv, nb, p, ldp, ot + r * ldo, ldo); break;
    case 1: ValueTile<1, C>(v + r, ldv, nb, p, ldp, ot + r * ldo, ldo); break;
    default: break;
  }
}

void AttentionTileImpl(const float* q, size_t ldq, size_t nq, const float* k, const float* v, size_t ldkv, size_t nk,
                       size_t depth, float scale, bool causal, size_t q_pos, float* out, size_t ldo) {
  const DF d;
  const size_t N = hn::Lanes(d);
  // Queries per register tile: 4 vectors, or 2 for large heads so that their slice of Qᵀ stays in L1.
  const size_t G = (depth <= 64 ? 4 : 2) * N;
  const size_t B = 64;                     // keys per block
  const size_t nqp = (nq + N - 1) / N * N;  // queries padded to whole vectors
  thread_local std::vector<float> scratch;
  const size_t need = 2 * depth * nqp + B * G + 2 * nqp;
  if (scratch.size() < need) scratch.resize(need);
  float* qt = scratch.data();   // [depth][nqp] queries, transposed and scaled
  float* ot = qt + depth * nqp;  // [depth][nqp] running output, transposed
  float* s = ot + depth * nqp;   // [B][G] scores, then weights, of one register tile
  float* m = s + B * G;          // running max per query
  float* l = m + nqp;            // running sum per query
  for (size_t e = 0; e < depth; ++e) {
    float* row = qt + e * nqp;
    for (size_t i = 0; i < nq; ++i) row[i] = q[i * ldq + e] * scale;
    for (size_t i = nq; i < nqp; ++i) row[i] = 0.f;
  }
  std::memset(ot, 0, depth * nqp * sizeof(float));
  for (size_t i = 0; i < nqp; ++i) m[i] = -INFINITY, l[i] = 0.f;
  const size_t kend = causal ? std::min(nk, q_pos + nq) : nk;  // later keys are masked for every query
  const VF ninf = hn::Set(d, -INFINITY);

  for (size_t kb = 0; kb < kend; kb += B) {
    const size_t nb = std::min(B, kend - kb);
    const float* kblk = k + kb * ldkv;
    const float* vblk = v + kb * ldkv;
    for (size_t i0 = 0; i0 < nqp; i0 += G) {
      const size_t vecs = std::min(G, nqp - i0) / N;
      switch (vecs) {
        case 4: Scores<4>(kblk, ldkv, nb, qt + i0, nqp, depth, s, G); break;
        case 3: Scores<3>(kblk, ldkv, nb, qt + i0, nqp, depth, s, G); break;
        case 2: Scores<2>(kblk, ldkv, nb, qt + i0, nqp, depth, s, G); break;
        default: Scores<1>(kblk, ldkv, nb, qt + i0, nqp, depth, s, G); break;
      }
      // Online softmax down the columns of Sᵀ, one query vector at a time.
      for (size_t c = 0; c < vecs; ++c) {
        const size_t first = q_pos + i0 + c * N;  // position of this vector's first query
        VF mb = ninf;
        for (size_t j = 0; j < nb; ++j) {
          VF x = hn::LoadU(d, s + j * G + c * N);
          if (causal && kb + j > first) {  // lanes before the key's position cannot see it
            x = hn::IfThenElse(hn::FirstN(d, std::min(N, kb + j - first)), ninf, x);
            hn::StoreU(x, d, s + j * G + c * N);
          }
          mb = hn::Max(mb, x);
        }
        const VF mold = hn::LoadU(d, m + i0 + c * N);
        VF mnew = hn::Max(mold, mb);
        mnew = hn::IfThenElse(hn::Eq(mnew, ninf), hn::Zero(d), mnew);  // nothing visible yet: weights stay 0
        VF sum = hn::Zero(d);
        for (size_t j = 0; j < nb; ++j) {
          const VF p = ExpNonPositive(d, hn::Sub(hn::LoadU(d, s + j * G + c * N), mnew));
          hn::StoreU(p, d, s + j * G + c * N);
          sum = hn::Add(sum, p);
        }
        const VF lold = hn::LoadU(d, l + i0 + c * N);
        if (hn::AllTrue(d, hn::Eq(mold, mnew))) {
          hn::StoreU(hn::Add(lold, sum), d, l + i0 + c * N);
        } else {  // the max grew: rescale what was accumulated under the old one
          const VF alpha = ExpNonPositive(d, hn::Sub(mold, mnew));
          hn::StoreU(hn::MulAdd(lold, alpha, sum), d, l + i0 + c * N);
          for (size_t e = 0; e < depth; ++e) {
            float* o = ot + e * nqp + i0 + c * N;
            hn::StoreU(hn::Mul(hn::LoadU(d, o), alpha), d, o);
          }
        }
        hn::StoreU(mnew, d, m + i0 + c * N);
      }
      switch (vecs) {
        case 4: Values<4>(vblk, ldkv, nb, s, G, depth, ot + i0, nqp); break;
        case 3: Values<3>(vblk, ldkv, nb, s, G, depth, ot + i0, nqp); break;
        case 2: Values<2>(vblk, ldkv, nb, s, G, depth, ot + i0, nqp); break;
        default: Values<1>(vblk, ldkv, nb, s, G, depth, ot + i0, nqp); break;
      }
    }
  }
  for (size_t i = 0; i < nq; ++i) {
    const float inv = 1.f / l[i];
    float* dst = out + i * ldo;
    for (size_t e = 0; e < depth; ++e) dst[e] = ot[e * nqp + i] * inv;
  }
}

}  // namespace HWY_NAMESPACE
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
