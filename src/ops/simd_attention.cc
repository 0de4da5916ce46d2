// Flash-attention tile kernel (see simd_kernels.h): blocks of 4 vectors of keys; S = Q·Kᵀ and O += P·V with register
// tiles of 4 query rows; an online softmax rescales O whenever a row's running maximum grows. Memory per call is
// O(rows × (block + head size)), never rows × keys.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/simd_attention.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep

#include <hwy/contrib/math/math-inl.h>
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

// s[r][0..4N) = Σ_e q[r][e] · kt[e][0..4N) for R rows.
template <int R>
HWY_INLINE void DotTile(const float* q, size_t ldq, const float* kt, size_t ldk, size_t depth, float* s, size_t lds) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < 4; ++c) acc[r][c] = hn::Zero(d);
  for (size_t e = 0; e < depth; ++e) {
    const float* kr = kt + e * ldk;
    const VF k0 = hn::LoadU(d, kr), k1 = hn::LoadU(d, kr + N), k2 = hn::LoadU(d, kr + 2 * N),
             k3 = hn::LoadU(d, kr + 3 * N);
    for (int r = 0; r < R; ++r) {
      const VF qb = hn::Set(d, q[r * ldq + e]);
      acc[r][0] = hn::MulAdd(qb, k0, acc[r][0]);
      acc[r][1] = hn::MulAdd(qb, k1, acc[r][1]);
      acc[r][2] = hn::MulAdd(qb, k2, acc[r][2]);
      acc[r][3] = hn::MulAdd(qb, k3, acc[r][3]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < 4; ++c) hn::StoreU(acc[r][c], d, s + r * lds + c * N);
}

// o[r][0..C·N) += Σ_j p[r][j] · v[j][0..C·N) for R rows and n keys.
template <int R, int C>
HWY_INLINE void PvTile(const float* p, size_t ldp, size_t n, const float* v, size_t ldv, float* o, size_t ldo) {
  const DF d;
  const size_t N = hn::Lanes(d);
  VF acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = hn::LoadU(d, o + r * ldo + c * N);
  for (size_t j = 0; j < n; ++j) {
    VF vv[C];
    for (int c = 0; c < C; ++c) vv[c] = hn::LoadU(d, v + j * ldv + c * N);
    for (int r = 0; r < R; ++r) {
      const VF pb = hn::Set(d, p[r * ldp + j]);
      for (int c = 0; c < C; ++c) acc[r][c] = hn::MulAdd(pb, vv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) hn::StoreU(acc[r][c], d, o + r * ldo + c * N);
}

template <int R>
HWY_INLINE void PvRows(const float* p, size_t ldp, size_t n, const float* v, size_t ldv, size_t vecs, float* o,
                       size_t ldo) {
  const size_t N = hn::Lanes(DF());
  size_t c = 0;
  for (; c + 4 <= vecs; c += 4) PvTile<R, 4>(p, ldp, n, v + c * N, ldv, o + c * N, ldo);
  switch (vecs - c) {
    case 3: PvTile<R, 3>(p, ldp, n, v + c * N, ldv, o + c * N, ldo); break;
    case 2: PvTile<R, 2>(p, ldp, n, v + c * N, ldv, o + c * N, ldo); break;
    case 1: PvTile<R, 1>(p, ldp, n, v + c * N, ldv, o + c * N, ldo); break;
    default: break;
  }
}

void AttentionTileImpl(const float* q, size_t ldq, size_t nq, const float* k, const float* v, size_t ldkv, size_t nk,
                       size_t depth, float scale, bool causal, size_t q_pos, float* out, size_t ldo) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const size_t B = 4 * N;                     // keys per block
  const size_t vecs = (depth + N - 1) / N;    // head size in vectors
  const size_t dp = vecs * N;                 // padded head size
  thread_local std::vector<float> scratch;
  size_t need = depth * B + B * dp + nq * B + nq * dp + 2 * nq;
  if (scratch.size() < need) scratch.resize(need);
  float* kt = scratch.data();      // [depth][B]
  float* vp = kt + depth * B;      // [B][dp]
  float* s = vp + B * dp;          // [nq][B]
  float* o = s + nq * B;           // [nq][dp]
  float* m = o + nq * dp;          // running max per row
  float* l = m + nq;               // running sum per row
  std::memset(o, 0, nq * dp * sizeof(float));
  for (size_t i = 0; i < nq; ++i) m[i] = -INFINITY, l[i] = 0.f;
  const size_t kend = causal ? std::min(nk, q_pos + nq) : nk;  // later keys are masked for every row
  const VF vscale = hn::Set(d, scale), ninf = hn::Set(d, -INFINITY);

  for (size_t kb = 0; kb < kend; kb += B) {
    const size_t nb = std::min(B, kend - kb);
    // Pack this block: Kᵀ [depth][B] and V [B][dp], zero padded so padded lanes contribute nothing.
    for (size_t e = 0; e < depth; ++e) {
      float* row = kt + e * B;
      for (size_t j = 0; j < nb; ++j) row[j] = k[(kb + j) * ldkv + e];
      for (size_t j = nb; j < B; ++j) row[j] = 0.f;
    }
    for (size_t j = 0; j < B; ++j) {
      float* row = vp + j * dp;
      if (j < nb) {
        std::memcpy(row, v + (kb + j) * ldkv, depth * sizeof(float));
        for (size_t e = depth; e < dp; ++e) row[e] = 0.f;
      } else {
        std::memset(row, 0, dp * sizeof(float));
      }
    }
    // S = Q · Kᵀ
    size_t i = 0;
    for (; i + 4 <= nq; i += 4) DotTile<4>(q + i * ldq, ldq, kt, B, depth, s + i * B, B);
    switch (nq - i) {
      case 3: DotTile<3>(q + i * ldq, ldq, kt, B, depth, s + i * B, B); break;
      case 2: DotTile<2>(q + i * ldq, ldq, kt, B, depth, s + i * B, B); break;
      case 1: DotTile<1>(q + i * ldq, ldq, kt, B, depth, s + i * B, B); break;
      default: break;
    }
    // Online softmax: P = exp(S·scale - m_new), O and l rescaled by exp(m_old - m_new).
    for (i = 0; i < nq; ++i) {
      float* srow = s + i * B;
      size_t valid = nb;
      if (causal) {
        size_t last = q_pos + i;  // the last key this row sees
        valid = last < kb ? 0 : std::min(nb, last - kb + 1);
      }
      VF mx = ninf;
      for (size_t c = 0; c < B; c += N) {
        VF x = hn::Mul(hn::LoadU(d, srow + c), vscale);
        size_t cnt = valid > c ? std::min(N, valid - c) : 0;
        x = hn::IfThenElse(hn::FirstN(d, cnt), x, ninf);
        hn::StoreU(x, d, srow + c);
        mx = hn::Max(mx, x);
      }
      const float bm = hn::GetLane(hn::MaxOfLanes(d, mx));
      const float mnew = std::max(m[i], bm);
      if (mnew == -INFINITY) {  // nothing visible yet: contributes nothing
        for (size_t c = 0; c < B; c += N) hn::StoreU(hn::Zero(d), d, srow + c);
        continue;
      }
      const VF vm = hn::Set(d, mnew);
      VF acc = hn::Zero(d);
      for (size_t c = 0; c < B; c += N) {
        VF p = hn::Exp(d, hn::Sub(hn::LoadU(d, srow + c), vm));
        hn::StoreU(p, d, srow + c);
        acc = hn::Add(acc, p);
      }
      const float alpha = m[i] == -INFINITY ? 0.f : std::exp(m[i] - mnew);
      l[i] = l[i] * alpha + hn::GetLane(hn::SumOfLanes(d, acc));
      if (alpha != 1.f) {
        const VF va = hn::Set(d, alpha);
        float* orow = o + i * dp;
        for (size_t c = 0; c < dp; c += N) hn::StoreU(hn::Mul(hn::LoadU(d, orow + c), va), d, orow + c);
      }
      m[i] = mnew;
    }
    // O += P · V
    for (i = 0; i + 4 <= nq; i += 4) PvRows<4>(s + i * B, B, nb, vp, dp, vecs, o + i * dp, dp);
    switch (nq - i) {
      case 3: PvRows<3>(s + i * B, B, nb, vp, dp, vecs, o + i * dp, dp); break;
      case 2: PvRows<2>(s + i * B, B, nb, vp, dp, vecs, o + i * dp, dp); break;
      case 1: PvRows<1>(s + i * B, B, nb, vp, dp, vecs, o + i * dp, dp); break;
      default: break;
    }
  }
  for (size_t i = 0; i < nq; ++i) {
    const float inv = 1.f / l[i];
    const float* orow = o + i * dp;
    float* dst = out + i * ldo;
    for (size_t e = 0; e < depth; ++e) dst[e] = orow[e] * inv;
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
