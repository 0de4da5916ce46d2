// 2-D convolution (groups = 1). Reference: direct loops over output pixels.
#include "ops/ops.h"

namespace pigment::ops {

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, Conv2dParams p) {
  PIG_CHECK(x.ndim() == 4 && w.ndim() == 4, "conv2d: expected x [N,C,H,W] and w [O,C,kh,kw], got ",
            shape_str(x.shape()), " and ", shape_str(w.shape()));
  int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  int64_t O = w.dim(0), kh = w.dim(2), kw = w.dim(3);
  PIG_CHECK(w.dim(1) == C, "conv2d: input has ", C, " channels, weight ", shape_str(w.shape()), " expects ", w.dim(1));
  PIG_CHECK(p.stride >= 1, "conv2d: stride must be positive");
  int64_t Ho = (H + p.pad_top + p.pad_bottom - kh) / p.stride + 1;
  int64_t Wo = (W + p.pad_left + p.pad_right - kw) / p.stride + 1;
  PIG_CHECK(Ho > 0 && Wo > 0, "conv2d: output would be empty for input ", shape_str(x.shape()));
  Tensor xf = x.as_f32(), wf = w.as_f32();
  Tensor bf = bias ? bias->as_f32() : Tensor();
  Tensor y = Tensor::empty({N, O, Ho, Wo});
  const float* X = xf.f32();
  const float* Wt = wf.f32();
  float* Y = y.f32();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o) {
      float* yo = Y + (n * O + o) * Ho * Wo;
      float b0 = bias ? bf.f32()[o] : 0.f;
      for (int64_t i = 0; i < Ho * Wo; ++i) yo[i] = b0;
      for (int64_t c = 0; c < C; ++c) {
        const float* xc = X + (n * C + c) * H * W;
        for (int64_t ky = 0; ky < kh; ++ky)
          for (int64_t kx = 0; kx < kw; ++kx) {
            float wv = Wt[((o * C + c) * kh + ky) * kw + kx];
            for (int64_t oy = 0; oy < Ho; ++oy) {
              int64_t iy = oy * p.stride + ky - p.pad_top;
              if (iy < 0 || iy >= H) continue;
              for (int64_t ox = 0; ox < Wo; ++ox) {
                int64_t ix = ox * p.stride + kx - p.pad_left;
                if (ix < 0 || ix >= W) continue;
                yo[oy * Wo + ox] += wv * xc[iy * W + ix];
              }
            }
          }
      }
    }
  return y;
}

}  // namespace pigment::ops
