// Group norm, layer norm and softmax. ref::: statistics accumulated in double, two passes. Fast: SIMD kernels;
// statistics as float partial sums over fixed-size chunks combined in double in a fixed order, so they neither lose
// precision on large groups nor depend on the thread count.
#include <cmath>
#include <vector>

#include "ops/autograd_ops.h"
#include "ops/precision.h"
#include "ops/profile.h"
#include "ops/reference.h"
#include "ops/simd_kernels.h"

namespace pigment::ops {

namespace {
struct GroupNormShape {
  int64_t N, C, S, cg;
};
GroupNormShape check_group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta) {
  PIG_CHECK(x.ndim() >= 2, "group_norm: input must be [N, C, ...], got ", shape_str(x.shape()));
  int64_t N = x.dim(0), C = x.dim(1);
  PIG_CHECK(groups > 0 && C % groups == 0, "group_norm: ", C, " channels do not split into ", groups, " groups");
  PIG_CHECK(gamma.numel() == C && beta.numel() == C, "group_norm: gamma/beta must have ", C, " elements, got ",
            gamma.numel(), " and ", beta.numel());
  return {N, C, N * C != 0 ? x.numel() / (N * C) : 0, C / groups};
}
}  // namespace

namespace ref {
namespace {
Tensor group_norm_impl(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps, bool silu) {
  const GroupNormShape sh = check_group_norm(x, groups, gamma, beta);
  const int64_t N = sh.N, C = sh.C, S = sh.S, cg = sh.cg;
  Tensor xf = x.as_f32(), g = gamma.as_f32(), b = beta.as_f32();
  Tensor y = Tensor::empty(x.shape());
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t gi = 0; gi < groups; ++gi) {
      const float* src = xf.f32() + (n * C + gi * cg) * S;
      float* dst = y.f32() + (n * C + gi * cg) * S;
      int64_t cnt = cg * S;
      double s = 0, s2 = 0;
      for (int64_t i = 0; i < cnt; ++i) s += src[i];
      double mean = s / cnt;
      for (int64_t i = 0; i < cnt; ++i) s2 += (src[i] - mean) * (src[i] - mean);
      float rstd = float(1.0 / std::sqrt(s2 / cnt + eps));
      for (int64_t c = 0; c < cg; ++c) {
        float ga = g.f32()[gi * cg + c] * rstd, be = b.f32()[gi * cg + c];
        float m = float(mean);
        for (int64_t i = 0; i < S; ++i) {
          float v = (src[c * S + i] - m) * ga + be;
          dst[c * S + i] = silu ? v / (1.f + std::exp(-v)) : v;
        }
      }
    }
  return y;
}
}  // namespace

Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps) {
  return group_norm_impl(x, groups, gamma, beta, eps, false);
}
Tensor group_norm_silu(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps) {
  return group_norm_impl(x, groups, gamma, beta, eps, true);
}

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  int64_t D = x.dim(-1), rows = D ? x.numel() / D : 0;
  PIG_CHECK(gamma.numel() == D && beta.numel() == D, "layer_norm: gamma/beta must have ", D, " elements");
  Tensor xf = x.as_f32(), g = gamma.as_f32(), b = beta.as_f32();
  Tensor y = Tensor::empty(x.shape());
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = xf.f32() + r * D;
    float* dst = y.f32() + r * D;
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < D; ++i) s += src[i];
    double mean = s / D;
    for (int64_t i = 0; i < D; ++i) s2 += (src[i] - mean) * (src[i] - mean);
    float rstd = float(1.0 / std::sqrt(s2 / D + eps));
    for (int64_t i = 0; i < D; ++i) dst[i] = (src[i] - float(mean)) * rstd * g.f32()[i] + b.f32()[i];
  }
  return y;
}

Tensor softmax(const Tensor& x) {
  int64_t D = x.dim(-1), rows = D ? x.numel() / D : 0;
  Tensor xf = x.as_f32();
  Tensor y = Tensor::empty(x.shape());
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = xf.f32() + r * D;
    float* dst = y.f32() + r * D;
    float m = -INFINITY;
    for (int64_t i = 0; i < D; ++i) m = std::max(m, src[i]);
    double s = 0;
    for (int64_t i = 0; i < D; ++i) s += dst[i] = std::exp(src[i] - m);
    float inv = float(1.0 / s);
    for (int64_t i = 0; i < D; ++i) dst[i] *= inv;
  }
  return y;
}
}  // namespace ref

namespace {
constexpr int64_t kChunk = 8192;  // elements per partial sum: fixed, so the result never depends on threads

Tensor group_norm_fast(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps, bool silu) {
  profile::Scope prof([] { return std::string("group_norm"); });
  const GroupNormShape sh = check_group_norm(x, groups, gamma, beta);
  const int64_t N = sh.N, C = sh.C, S = sh.S, cg = sh.cg;
  Tensor xf = x.as_f32(), gf = gamma.as_f32(), bf = beta.as_f32();
  Tensor y = Tensor::empty(x.shape());
  const int64_t NG = N * groups, cnt = cg * S;
  if (NG == 0 || cnt == 0) return y;
  const int64_t chunks = (cnt + kChunk - 1) / kChunk;
  const float* X = xf.f32();
  // One pass over memory for the statistics: each chunk (32 KiB, in L1 after its first read) gives its sum and its
  // squared deviations from its own mean; the chunks combine exactly in double (Chan et al.'s pairwise update).
  std::vector<float> part(static_cast<size_t>(NG * chunks)), part_m2(static_cast<size_t>(NG * chunks));
  std::vector<float> mean(static_cast<size_t>(NG)), rstd(static_cast<size_t>(NG));
  auto chunk_range = [&](int64_t t, int64_t& begin, int64_t& len) {
    int64_t g = t / chunks, c = t % chunks;
    begin = g * cnt + c * kChunk;
    len = std::min(kChunk, cnt - c * kChunk);
  };
  const int64_t tasks = NG * chunks;
  const bool par = x.numel() > 32768;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t t = 0; t < tasks; ++t) {
    int64_t b, len;
    chunk_range(t, b, len);
    part[t] = simd::sum(X + b, size_t(len));
    part_m2[t] = simd::sum_sq_dev(X + b, size_t(len), part[t] / float(len));
  }
  for (int64_t g = 0; g < NG; ++g) {
    double s = 0;
    for (int64_t c = 0; c < chunks; ++c) s += part[g * chunks + c];
    const double m = s / double(cnt);
    double m2 = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      const double len = double(std::min(kChunk, cnt - c * kChunk));
      const double d = double(part[g * chunks + c]) / len - m;
      m2 += double(part_m2[g * chunks + c]) + len * d * d;
    }
    mean[g] = float(m);
    rstd[g] = float(1.0 / std::sqrt(m2 / double(cnt) + eps));
  }
  const float* G = gf.f32();
  const float* B = bf.f32();
  float* Y = y.f32();
#pragma omp parallel for schedule(static) if (par)
  for (int64_t nc = 0; nc < N * C; ++nc) {
    const int64_t c = nc % C, g = (nc / C) * groups + c / cg;
    simd::normalize(X + nc * S, Y + nc * S, size_t(S), mean[g], G[c] * rstd[g], B[c], silu);
  }
  return y;
}
}  // namespace

Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps) {
  if (autograd::any_needs_grad({&x, &gamma, &beta})) return recorded::group_norm(x, groups, gamma, beta, eps, false);
  if (precision() == Precision::Reference) return ref::group_norm(x, groups, gamma, beta, eps);
  return group_norm_fast(x, groups, gamma, beta, eps, false);
}
Tensor group_norm_silu(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps) {
  if (autograd::any_needs_grad({&x, &gamma, &beta})) return recorded::group_norm(x, groups, gamma, beta, eps, true);
  if (precision() == Precision::Reference) return ref::group_norm_silu(x, groups, gamma, beta, eps);
  return group_norm_fast(x, groups, gamma, beta, eps, true);
}

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  if (autograd::any_needs_grad({&x, &gamma, &beta})) return recorded::layer_norm(x, gamma, beta, eps);
  if (precision() == Precision::Reference) return ref::layer_norm(x, gamma, beta, eps);
  profile::Scope prof([] { return std::string("layer_norm"); });
  PIG_CHECK(x.ndim() >= 1, "layer_norm: input must have at least one dimension");
  const int64_t D = x.dim(-1), rows = D ? x.numel() / D : 0;
  PIG_CHECK(gamma.numel() == D && beta.numel() == D, "layer_norm: gamma/beta must have ", D, " elements, got ",
            gamma.numel(), " and ", beta.numel());
  Tensor xf = x.as_f32(), g = gamma.as_f32(), b = beta.as_f32();
  Tensor y = Tensor::empty(x.shape());
#pragma omp parallel for schedule(static) if (x.numel() > 32768)
  for (int64_t r = 0; r < rows; ++r)
    simd::layer_norm_row(xf.f32() + r * D, y.f32() + r * D, size_t(D), g.f32(), b.f32(), eps);
  return y;
}

Tensor softmax(const Tensor& x) {
  if (autograd::any_needs_grad({&x})) return recorded::softmax(x);
  if (precision() == Precision::Reference) return ref::softmax(x);
  profile::Scope prof([] { return std::string("softmax"); });
  PIG_CHECK(x.ndim() >= 1, "softmax: input must have at least one dimension");
  const int64_t D = x.dim(-1), rows = D ? x.numel() / D : 0;
  Tensor xf = x.as_f32();
  Tensor y = Tensor::empty(x.shape());
#pragma omp parallel for schedule(static) if (x.numel() > 32768)
  for (int64_t r = 0; r < rows; ++r) simd::softmax_row(xf.f32() + r * D, y.f32() + r * D, size_t(D));
  return y;
}

}  // namespace pigment::ops
