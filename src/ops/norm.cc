// Group norm, layer norm and softmax. Statistics are accumulated in double for a stable reference.
#include <cmath>

#include "ops/ops.h"

namespace pigment::ops {

Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps) {
  PIG_CHECK(x.ndim() >= 2, "group_norm: input must be [N, C, ...], got ", shape_str(x.shape()));
  int64_t N = x.dim(0), C = x.dim(1);
  PIG_CHECK(groups > 0 && C % groups == 0, "group_norm: ", C, " channels do not split into ", groups, " groups");
  PIG_CHECK(gamma.numel() == C && beta.numel() == C, "group_norm: gamma/beta must have ", C, " elements");
  int64_t S = x.numel() / (N * C), cg = C / groups;
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
        for (int64_t i = 0; i < S; ++i) dst[c * S + i] = (src[c * S + i] - m) * ga + be;
      }
    }
  return y;
}

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  int64_t D = x.dim(-1), rows = x.numel() / D;
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
  int64_t D = x.dim(-1), rows = x.numel() / D;
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

}  // namespace pigment::ops
