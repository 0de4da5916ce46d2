// Backward of scaled dot-product attention. ref::: one query at a time, scores and sums in double. Fast: like
// flash-attention's backward, per (batch, head) and per tile of 64 queries, the scores against all keys are
// recomputed (S = q·kᵀ·scale, P = softmax(S)), then
//   dV += Pᵀ·dO,   dP = dO·Vᵀ,   dS = P ⊙ (dP − rowsum(dO ⊙ O)),   dQ = dS·K·scale,   dK += dSᵀ·Q·scale,
// each product by a one-thread oneDNN matmul (ops/tiled_product.h). Memory per task: two 64 × Tk tiles, never a
// Tq × Tk matrix. Tasks are (batch, head, split): the query tiles of a head are cut into a number of splits fixed by
// the shapes (enough tasks for the cores when batch × heads is small), each split accumulates its own dK/dV, and the
// splits are added in order, so no two threads write the same memory and the bits do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "ops/backward.h"
#include "ops/precision.h"
#include "ops/profile.h"
#include "ops/reference.h"
#include "ops/simd_kernels.h"
#include "ops/tiled_product.h"

namespace pigment::ops {

namespace {
struct AttnShape {
  int64_t B, Tq, C, Tk, D;
};
AttnShape check_attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                   const Tensor& out, int heads) {
  PIG_CHECK(q.ndim() == 3 && k.ndim() == 3 && v.ndim() == 3, "attention_backward: expected [B, T, H*D] inputs, got q ",
            shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ", shape_str(v.shape()));
  const int64_t B = q.dim(0), Tq = q.dim(1), C = q.dim(2), Tk = k.dim(1);
  PIG_CHECK(k.dim(0) == B && v.dim(0) == B && k.dim(2) == C && v.dim(2) == C && v.dim(1) == Tk,
            "attention_backward: q ", shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ", shape_str(v.shape()),
            " do not agree");
  PIG_CHECK(dout.shape() == q.shape() && out.shape() == q.shape(), "attention_backward: gradient ",
            shape_str(dout.shape()), " and output ", shape_str(out.shape()), " must have q's shape ",
            shape_str(q.shape()));
  PIG_CHECK(heads > 0 && C % heads == 0, "attention_backward: ", C, " channels do not split into ", heads, " heads");
  return {B, Tq, C, Tk, C / heads};
}
}  // namespace

namespace ref {
AttentionGrads attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& out, int heads, float scale, bool causal) {
  const AttnShape sh = check_attention_backward(dout, q, k, v, out, heads);
  const int64_t B = sh.B, Tq = sh.Tq, C = sh.C, Tk = sh.Tk, D = sh.D;
  Tensor qf = q.as_f32(), kf = k.as_f32(), vf = v.as_f32(), of = out.as_f32(), gf = dout.as_f32();
  AttentionGrads r{Tensor::zeros(q.shape()), Tensor::zeros(k.shape()), Tensor::zeros(v.shape())};
#pragma omp parallel
  {
    std::vector<double> p(static_cast<size_t>(Tk)), ds(static_cast<size_t>(Tk));
    std::vector<double> dk(size_t(Tk * D)), dv(size_t(Tk * D));
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < heads; ++h) {
        std::fill(dk.begin(), dk.end(), 0.0);
        std::fill(dv.begin(), dv.end(), 0.0);
        auto K = [&](int64_t j, int64_t e) { return double(kf.f32()[(b * Tk + j) * C + h * D + e]); };
        auto V = [&](int64_t j, int64_t e) { return double(vf.f32()[(b * Tk + j) * C + h * D + e]); };
        for (int64_t i = 0; i < Tq; ++i) {
          const int64_t row = (b * Tq + i) * C + h * D;
          const float *qi = qf.f32() + row, *oi = of.f32() + row, *gi = gf.f32() + row;
          const int64_t limit = causal ? std::min(Tk, i + 1) : Tk;
          double m = -INFINITY, sum = 0;
          for (int64_t j = 0; j < limit; ++j) {
            double s = 0;
            for (int64_t e = 0; e < D; ++e) s += double(qi[e]) * K(j, e);
            p[size_t(j)] = s * scale;
            m = std::max(m, p[size_t(j)]);
          }
          for (int64_t j = 0; j < limit; ++j) sum += p[size_t(j)] = std::exp(p[size_t(j)] - m);
          for (int64_t j = 0; j < limit; ++j) p[size_t(j)] /= sum;
          double di = 0;  // Σ dO ⊙ O over the row
          for (int64_t e = 0; e < D; ++e) di += double(gi[e]) * oi[e];
          for (int64_t j = 0; j < limit; ++j) {
            double dp = 0;
            for (int64_t e = 0; e < D; ++e) dp += double(gi[e]) * V(j, e);
            ds[size_t(j)] = p[size_t(j)] * (dp - di);
          }
          float* dq = r.dq.f32() + row;
          for (int64_t e = 0; e < D; ++e) {
            double s = 0;
            for (int64_t j = 0; j < limit; ++j) s += ds[size_t(j)] * K(j, e);
            dq[e] = float(s * scale);
          }
          for (int64_t j = 0; j < limit; ++j)
            for (int64_t e = 0; e < D; ++e) {
              dk[size_t(j * D + e)] += ds[size_t(j)] * scale * qi[e];
              dv[size_t(j * D + e)] += p[size_t(j)] * gi[e];
            }
        }
        for (int64_t j = 0; j < Tk; ++j)
          for (int64_t e = 0; e < D; ++e) {
            r.dk.f32()[(b * Tk + j) * C + h * D + e] = float(dk[size_t(j * D + e)]);
            r.dv.f32()[(b * Tk + j) * C + h * D + e] = float(dv[size_t(j * D + e)]);
          }
      }
  }
  return r;
}
}  // namespace ref

namespace {
constexpr int64_t kQueryTile = 64;
constexpr int64_t kTargetTasks = 32;  // splits per head are chosen so that batch × heads × splits reaches this

// The products of one query tile of nq rows (see the file comment); *_acc add to their result.
struct TileProducts {
  SerialProduct scores, dv_first, dv_acc, dp, dq, dk_first, dk_acc;
  TileProducts(int64_t nq, int64_t Tk, int64_t D, int64_t C)
      : scores(nq, Tk, D, D, 1, 1, C, Tk, false),      // S[nq, Tk] = Qs[nq, D] · Kᵀ
        dv_first(Tk, D, nq, 1, Tk, C, 1, D, false),    // dV[Tk, D] = Pᵀ[Tk, nq] · dO[nq, D]
        dv_acc(Tk, D, nq, 1, Tk, C, 1, D, true),
        dp(nq, Tk, D, C, 1, 1, C, Tk, false),          // dP[nq, Tk] = dO[nq, D] · Vᵀ
        dq(nq, D, Tk, Tk, 1, C, 1, C, false),          // dQ[nq, D] = dS[nq, Tk] · K (into dq, row stride C)
        dk_first(Tk, D, nq, 1, Tk, D, 1, D, false),    // dK[Tk, D] = dSᵀ[Tk, nq] · Qs[nq, D]
        dk_acc(Tk, D, nq, 1, Tk, D, 1, D, true) {}
};

AttentionGrads attention_backward_fast(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                       const Tensor& out, int heads, float scale, bool causal) {
  const AttnShape sh = check_attention_backward(dout, q, k, v, out, heads);
  const int64_t B = sh.B, Tq = sh.Tq, C = sh.C, Tk = sh.Tk, D = sh.D;
  profile::Scope prof(
      [&] {
        return std::string(causal ? "attention_backward causal " : "attention_backward ") + std::to_string(Tq) + "x" +
               std::to_string(Tk) + " " + std::to_string(heads) + "x" + std::to_string(D) + " B" + std::to_string(B);
      },
      10.0 * double(B * Tq) * double(Tk) * double(C));
  AttentionGrads r{Tensor::zeros(q.shape()), Tensor::zeros(k.shape()), Tensor::zeros(v.shape())};
  if (Tq == 0 || Tk == 0 || D == 0) return r;
  Tensor qf = q.as_f32(), kf = k.as_f32(), vf = v.as_f32(), of = out.as_f32(), gf = dout.as_f32();
  const int64_t tiles = (Tq + kQueryTile - 1) / kQueryTile, BH = B * heads;
  const int64_t splits = std::clamp<int64_t>((kTargetTasks + BH - 1) / BH, 1, tiles), tasks = BH * splits;
  const TileProducts full(std::min(kQueryTile, Tq), Tk, D, C);
  const int64_t last = Tq % kQueryTile;
  const TileProducts tail(last ? last : 1, Tk, D, C);
  // Per task: its dK and dV partials [Tk, D].
  std::vector<float> part_dk(size_t(tasks * Tk * D)), part_dv(size_t(tasks * Tk * D));
  const float *Q = qf.f32(), *K = kf.f32(), *V = vf.f32(), *O = of.f32(), *G = gf.f32();
  float* dQ = r.dq.f32();
#pragma omp parallel
  {
    std::vector<float> qs(size_t(kQueryTile * D)), p(size_t(kQueryTile * Tk)), ds(size_t(kQueryTile * Tk)),
        di(static_cast<size_t>(kQueryTile));
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t bh = t / splits, split = t % splits, b = bh / heads, h = bh % heads;
      const int64_t tile0 = split * tiles / splits, tile1 = (split + 1) * tiles / splits;
      const int64_t off_kv = b * Tk * C + h * D;
      float *dk = part_dk.data() + t * Tk * D, *dv = part_dv.data() + t * Tk * D;
      for (int64_t tile = tile0; tile < tile1; ++tile) {
        const int64_t i0 = tile * kQueryTile, nq = std::min(kQueryTile, Tq - i0);
        const TileProducts& pr = nq == kQueryTile || nq == Tq ? full : tail;
        const int64_t off_q = (b * Tq + i0) * C + h * D;
        for (int64_t i = 0; i < nq; ++i) {
          const float *qi = Q + off_q + i * C, *oi = O + off_q + i * C, *gi = G + off_q + i * C;
          float s = 0;
          for (int64_t e = 0; e < D; ++e) {
            qs[size_t(i * D + e)] = qi[e] * scale;
            s += gi[e] * oi[e];
          }
          di[size_t(i)] = s;
        }
        pr.scores.run(qs.data(), K + off_kv, p.data());
        for (int64_t i = 0; i < nq; ++i) {
          float* row = p.data() + i * Tk;
          if (causal)
            for (int64_t j = i0 + i + 1; j < Tk; ++j) row[j] = -INFINITY;  // query i sees keys j <= i
          simd::softmax_row(row, row, size_t(Tk));
        }
        (tile == tile0 ? pr.dv_first : pr.dv_acc).run(p.data(), G + off_q, dv);
        pr.dp.run(G + off_q, V + off_kv, ds.data());
        for (int64_t i = 0; i < nq; ++i) {
          const float* pi = p.data() + i * Tk;
          float* dsi = ds.data() + i * Tk;
          const float d = di[size_t(i)];
#pragma omp simd
          for (int64_t j = 0; j < Tk; ++j) dsi[j] = pi[j] * (dsi[j] - d);
        }
        pr.dq.run(ds.data(), K + off_kv, dQ + off_q);
        for (int64_t i = 0; i < nq; ++i)
          for (int64_t e = 0; e < D; ++e) dQ[off_q + i * C + e] *= scale;
        (tile == tile0 ? pr.dk_first : pr.dk_acc).run(ds.data(), qs.data(), dk);
      }
      if (tile0 == tile1) {
        std::memset(dk, 0, size_t(Tk * D) * sizeof(float));
        std::memset(dv, 0, size_t(Tk * D) * sizeof(float));
      }
    }
  }
  // The splits of each head added in order into dK, dV.
  float *dK = r.dk.f32(), *dV = r.dv.f32();
#pragma omp parallel for collapse(2) schedule(static) if (BH * Tk * D > 65536)
  for (int64_t bh = 0; bh < BH; ++bh)
    for (int64_t j = 0; j < Tk; ++j) {
      const int64_t b = bh / heads, h = bh % heads;
      float *dkj = dK + (b * Tk + j) * C + h * D, *dvj = dV + (b * Tk + j) * C + h * D;
      for (int64_t s = 0; s < splits; ++s) {
        const float *pk = part_dk.data() + ((bh * splits + s) * Tk + j) * D,
                    *pv = part_dv.data() + ((bh * splits + s) * Tk + j) * D;
        for (int64_t e = 0; e < D; ++e) {
          dkj[e] = s == 0 ? pk[e] : dkj[e] + pk[e];
          dvj[e] = s == 0 ? pv[e] : dvj[e] + pv[e];
        }
      }
    }
  return r;
}
}  // namespace

AttentionGrads attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& out, int heads, float scale, bool causal) {
  if (precision() == Precision::Reference) return ref::attention_backward(dout, q, k, v, out, heads, scale, causal);
  return attention_backward_fast(dout, q, k, v, out, heads, scale, causal);
}

}  // namespace pigment::ops
