// Backward of group norm, layer norm and softmax. The statistics are recomputed from x. ref::: everything in double.
// Fast: one task per (image, group) / per block of rows, in parallel; sums are float partial sums over fixed chunks
// (vectorised) added in double in a fixed order, and the parameter gradients are per-image / per-block partials
// added in order, so the bits do not depend on the thread count.
//
// With x̂ = (x − mean)·rstd and g = γ ⊙ dy, over the elements of one group (or row), count n:
//   dx = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂)),   dγ = Σ dy ⊙ x̂,   dβ = Σ dy.
#include <cmath>
#include <vector>

#include "ops/backward.h"
#include "ops/precision.h"
#include "ops/profile.h"
#include "ops/reference.h"
#include "ops/simd_kernels.h"

namespace pigment::ops {

namespace {
struct GroupShape {
  int64_t N, C, S, cg;
};
GroupShape check_group_norm_backward(const Tensor& dy, const Tensor& x, int groups, const Tensor& gamma) {
  PIG_CHECK(x.ndim() >= 2, "group_norm_backward: input must be [N, C, ...], got ", shape_str(x.shape()));
  PIG_CHECK(dy.shape() == x.shape(), "group_norm_backward: gradient ", shape_str(dy.shape()), " and input ",
            shape_str(x.shape()), " differ");
  const int64_t N = x.dim(0), C = x.dim(1);
  PIG_CHECK(groups > 0 && C % groups == 0, "group_norm_backward: ", C, " channels do not split into ", groups,
            " groups");
  PIG_CHECK(gamma.numel() == C, "group_norm_backward: gamma must have ", C, " elements, got ", gamma.numel());
  return {N, C, N * C != 0 ? x.numel() / (N * C) : 0, C / groups};
}

int64_t check_layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma) {
  PIG_CHECK(x.ndim() >= 1, "layer_norm_backward: input must have at least one dimension");
  PIG_CHECK(dy.shape() == x.shape(), "layer_norm_backward: gradient ", shape_str(dy.shape()), " and input ",
            shape_str(x.shape()), " differ");
  PIG_CHECK(gamma.numel() == x.dim(-1), "layer_norm_backward: gamma must have ", x.dim(-1), " elements, got ",
            gamma.numel());
  return x.dim(-1);
}

void check_softmax_backward(const Tensor& dy, const Tensor& y) {
  PIG_CHECK(y.ndim() >= 1 && dy.shape() == y.shape(), "softmax_backward: gradient ", shape_str(dy.shape()),
            " and output ", shape_str(y.shape()), " differ");
}
}  // namespace

namespace ref {
NormGrads group_norm_backward(const Tensor& dy, const Tensor& x, int groups, const Tensor& gamma, float eps,
                              bool need_params) {
  const GroupShape sh = check_group_norm_backward(dy, x, groups, gamma);
  const int64_t N = sh.N, C = sh.C, S = sh.S, cg = sh.cg, cnt = cg * S;
  Tensor xf = x.as_f32(), gf = dy.as_f32(), ga = gamma.as_f32();
  NormGrads r;
  r.dx = Tensor::empty(x.shape());
  std::vector<double> dgamma(size_t(N * C)), dbeta(size_t(N * C));  // per (image, channel)
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t gi = 0; gi < groups; ++gi) {
      const int64_t c0 = gi * cg, off = (n * C + c0) * S;
      const float *X = xf.f32() + off, *G = gf.f32() + off;
      double s = 0;
      for (int64_t i = 0; i < cnt; ++i) s += X[i];
      const double mean = cnt ? s / double(cnt) : 0;
      double s2 = 0;
      for (int64_t i = 0; i < cnt; ++i) s2 += (X[i] - mean) * (X[i] - mean);
      const double rstd = 1.0 / std::sqrt((cnt ? s2 / double(cnt) : 0) + eps);
      double sg = 0, sgx = 0;  // Σ g and Σ g·x̂ over the group
      for (int64_t c = 0; c < cg; ++c) {
        double a = 0, b = 0;
        for (int64_t i = 0; i < S; ++i) {
          a += G[c * S + i];
          b += G[c * S + i] * (X[c * S + i] - mean) * rstd;
        }
        dbeta[size_t(n * C + c0 + c)] = a;
        dgamma[size_t(n * C + c0 + c)] = b;
        sg += ga.f32()[c0 + c] * a;
        sgx += ga.f32()[c0 + c] * b;
      }
      float* D = r.dx.f32() + off;
      for (int64_t c = 0; c < cg; ++c)
        for (int64_t i = 0; i < S; ++i) {
          const double xh = (X[c * S + i] - mean) * rstd;
          D[c * S + i] = float(rstd * (ga.f32()[c0 + c] * double(G[c * S + i]) - sg / double(cnt) - xh * sgx / double(cnt)));
        }
    }
  if (need_params) {
    r.dgamma = Tensor::empty({C});
    r.dbeta = Tensor::empty({C});
    for (int64_t c = 0; c < C; ++c) {
      double a = 0, b = 0;
      for (int64_t n = 0; n < N; ++n) a += dgamma[size_t(n * C + c)], b += dbeta[size_t(n * C + c)];
      r.dgamma.f32()[c] = float(a);
      r.dbeta.f32()[c] = float(b);
    }
  }
  return r;
}

NormGrads layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, float eps, bool need_params) {
  const int64_t D = check_layer_norm_backward(dy, x, gamma), rows = D ? x.numel() / D : 0;
  Tensor xf = x.as_f32(), gf = dy.as_f32(), ga = gamma.as_f32();
  NormGrads r;
  r.dx = Tensor::empty(x.shape());
  std::vector<double> xhat(size_t(rows * D));  // kept for the parameter gradients
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < rows; ++row) {
    const float *X = xf.f32() + row * D, *G = gf.f32() + row * D;
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < D; ++i) s += X[i];
    const double mean = s / double(D);
    for (int64_t i = 0; i < D; ++i) s2 += (X[i] - mean) * (X[i] - mean);
    const double rstd = 1.0 / std::sqrt(s2 / double(D) + eps);
    double sg = 0, sgx = 0;
    for (int64_t i = 0; i < D; ++i) {
      const double xh = (X[i] - mean) * rstd, g = double(G[i]) * ga.f32()[i];
      xhat[size_t(row * D + i)] = xh;
      sg += g;
      sgx += g * xh;
    }
    for (int64_t i = 0; i < D; ++i)
      r.dx.f32()[row * D + i] =
          float(rstd * (double(G[i]) * ga.f32()[i] - sg / double(D) - xhat[size_t(row * D + i)] * sgx / double(D)));
  }
  if (need_params) {
    r.dgamma = Tensor::empty({D});
    r.dbeta = Tensor::empty({D});
    for (int64_t i = 0; i < D; ++i) {
      double a = 0, b = 0;
      for (int64_t row = 0; row < rows; ++row) {
        a += double(gf.f32()[row * D + i]) * xhat[size_t(row * D + i)];
        b += gf.f32()[row * D + i];
      }
      r.dgamma.f32()[i] = float(a);
      r.dbeta.f32()[i] = float(b);
    }
  }
  return r;
}

Tensor softmax_backward(const Tensor& dy, const Tensor& y) {
  check_softmax_backward(dy, y);
  const int64_t D = y.dim(-1), rows = D ? y.numel() / D : 0;
  Tensor yf = y.as_f32(), gf = dy.as_f32();
  Tensor dx = Tensor::empty(y.shape());
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < rows; ++row) {
    const float *Y = yf.f32() + row * D, *G = gf.f32() + row * D;
    double s = 0;
    for (int64_t i = 0; i < D; ++i) s += double(G[i]) * Y[i];
    for (int64_t i = 0; i < D; ++i) dx.f32()[row * D + i] = float(double(Y[i]) * (G[i] - s));
  }
  return dx;
}
}  // namespace ref

namespace {
constexpr int64_t kChunk = 8192;  // elements per float partial sum: fixed, so the bits never depend on threads

// Σ x[i]
double chunked_sum(const float* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i += kChunk) s += simd::sum(x + i, size_t(std::min(kChunk, n - i)));
  return s;
}
// Σ (x[i] − mean)²
double chunked_sq_dev(const float* x, int64_t n, float mean) {
  double s = 0;
  for (int64_t i = 0; i < n; i += kChunk) s += simd::sum_sq_dev(x + i, size_t(std::min(kChunk, n - i)), mean);
  return s;
}
// Σ g[i]·(x[i] − mean)
double chunked_dot_centered(const float* g, const float* x, int64_t n, float mean) {
  double s = 0;
  for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
    const int64_t len = std::min(kChunk, n - i0);
    float acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < len; ++i) acc += g[i0 + i] * (x[i0 + i] - mean);
    s += acc;
  }
  return s;
}
}  // namespace

NormGrads group_norm_backward(const Tensor& dy, const Tensor& x, int groups, const Tensor& gamma, float eps,
                              bool need_params) {
  if (precision() == Precision::Reference) return ref::group_norm_backward(dy, x, groups, gamma, eps, need_params);
  profile::Scope prof([] { return std::string("group_norm_backward"); });
  const GroupShape sh = check_group_norm_backward(dy, x, groups, gamma);
  const int64_t N = sh.N, C = sh.C, S = sh.S, cg = sh.cg, cnt = cg * S;
  Tensor xf = x.as_f32(), gf = dy.as_f32(), ga = gamma.as_f32();
  NormGrads r;
  r.dx = Tensor::empty(x.shape());
  std::vector<double> dgamma(size_t(N * C)), dbeta(size_t(N * C));  // per (image, channel)
  const float* Ga = ga.f32();
#pragma omp parallel for schedule(dynamic, 1) if (x.numel() > 32768)
  for (int64_t t = 0; t < N * groups; ++t) {
    const int64_t n = t / groups, c0 = t % groups * cg, off = (n * C + c0) * S;
    const float *X = xf.f32() + off, *G = gf.f32() + off;
    float* D = r.dx.f32() + off;
    const float mean = cnt ? float(chunked_sum(X, cnt) / double(cnt)) : 0.f;
    const double rstd = 1.0 / std::sqrt((cnt ? chunked_sq_dev(X, cnt, mean) / double(cnt) : 0.0) + eps);
    double sg = 0, sgx = 0;  // Σ g and Σ g·x̂ over the group
    for (int64_t c = 0; c < cg; ++c) {
      const double a = chunked_sum(G + c * S, S), b = chunked_dot_centered(G + c * S, X + c * S, S, mean) * rstd;
      dbeta[size_t(n * C + c0 + c)] = a;
      dgamma[size_t(n * C + c0 + c)] = b;
      sg += Ga[c0 + c] * a;
      sgx += Ga[c0 + c] * b;
    }
    // dx = k1·dy − k2·(x − mean) + k0, per channel
    const float k2 = float(rstd * rstd * sgx / double(cnt)), k0 = float(-rstd * sg / double(cnt));
    for (int64_t c = 0; c < cg; ++c) {
      const float k1 = float(rstd * Ga[c0 + c]);
      const float *gc = G + c * S, *xc = X + c * S;
      float* dc = D + c * S;
#pragma omp simd
      for (int64_t i = 0; i < S; ++i) dc[i] = k1 * gc[i] - k2 * (xc[i] - mean) + k0;
    }
  }
  if (need_params) {
    r.dgamma = Tensor::empty({C});
    r.dbeta = Tensor::empty({C});
    for (int64_t c = 0; c < C; ++c) {
      double a = 0, b = 0;
      for (int64_t n = 0; n < N; ++n) a += dgamma[size_t(n * C + c)], b += dbeta[size_t(n * C + c)];
      r.dgamma.f32()[c] = float(a);
      r.dbeta.f32()[c] = float(b);
    }
  }
  return r;
}

NormGrads layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, float eps, bool need_params) {
  if (precision() == Precision::Reference) return ref::layer_norm_backward(dy, x, gamma, eps, need_params);
  profile::Scope prof([] { return std::string("layer_norm_backward"); });
  const int64_t D = check_layer_norm_backward(dy, x, gamma), rows = D ? x.numel() / D : 0;
  Tensor xf = x.as_f32(), gf = dy.as_f32(), ga = gamma.as_f32();
  NormGrads r;
  r.dx = Tensor::empty(x.shape());
  // Blocks of rows: each gives its float partial dγ, dβ (rows added in order); the blocks are added in double.
  constexpr int64_t kRows = 32;
  const int64_t blocks = (rows + kRows - 1) / kRows;
  std::vector<float> pg(need_params ? size_t(blocks * D) : 0, 0.f), pb(need_params ? size_t(blocks * D) : 0, 0.f);
  const float* Ga = ga.f32();
#pragma omp parallel for schedule(static) if (x.numel() > 32768)
  for (int64_t blk = 0; blk < blocks; ++blk)
    for (int64_t row = blk * kRows; row < std::min(rows, (blk + 1) * kRows); ++row) {
      const float *X = xf.f32() + row * D, *G = gf.f32() + row * D;
      float* Dx = r.dx.f32() + row * D;
      const float mean = float(chunked_sum(X, D) / double(D));
      const float rstd = float(1.0 / std::sqrt(chunked_sq_dev(X, D, mean) / double(D) + eps));
      float sg = 0, sgx = 0;
#pragma omp simd reduction(+ : sg, sgx)
      for (int64_t i = 0; i < D; ++i) {
        const float g = G[i] * Ga[i];
        sg += g;
        sgx += g * (X[i] - mean);
      }
      const float m_g = sg / float(D), m_gx = sgx * rstd / float(D);
#pragma omp simd
      for (int64_t i = 0; i < D; ++i) Dx[i] = rstd * (G[i] * Ga[i] - m_g - (X[i] - mean) * rstd * m_gx);
      if (need_params) {
        float *pgb = pg.data() + blk * D, *pbb = pb.data() + blk * D;
#pragma omp simd
        for (int64_t i = 0; i < D; ++i) {
          pgb[i] += G[i] * (X[i] - mean) * rstd;
          pbb[i] += G[i];
        }
      }
    }
  if (need_params) {
    r.dgamma = Tensor::empty({D});
    r.dbeta = Tensor::empty({D});
#pragma omp parallel for schedule(static) if (blocks * D > 65536)
    for (int64_t i = 0; i < D; ++i) {
      double a = 0, b = 0;
      for (int64_t blk = 0; blk < blocks; ++blk) a += pg[size_t(blk * D + i)], b += pb[size_t(blk * D + i)];
      r.dgamma.f32()[i] = float(a);
      r.dbeta.f32()[i] = float(b);
    }
  }
  return r;
}

Tensor softmax_backward(const Tensor& dy, const Tensor& y) {
  if (precision() == Precision::Reference) return ref::softmax_backward(dy, y);
  profile::Scope prof([] { return std::string("softmax_backward"); });
  check_softmax_backward(dy, y);
  const int64_t D = y.dim(-1), rows = D ? y.numel() / D : 0;
  Tensor yf = y.as_f32(), gf = dy.as_f32();
  Tensor dx = Tensor::empty(y.shape());
#pragma omp parallel for schedule(static) if (y.numel() > 32768)
  for (int64_t row = 0; row < rows; ++row) {
    const float *Y = yf.f32() + row * D, *G = gf.f32() + row * D;
    float* Dx = dx.f32() + row * D;
    double s = 0;
    for (int64_t i0 = 0; i0 < D; i0 += kChunk) {
      float acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t i = i0; i < std::min(D, i0 + kChunk); ++i) acc += G[i] * Y[i];
      s += acc;
    }
    const float sf = float(s);
#pragma omp simd
    for (int64_t i = 0; i < D; ++i) Dx[i] = Y[i] * (G[i] - sf);
  }
  return dx;
}

}  // namespace pigment::ops
