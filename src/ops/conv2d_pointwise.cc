#include "ops/conv2d_pointwise.h"

#include <cstring>

#include "ops/precision.h"

namespace pigment::ops {

bool conv2d_pointwise(const Tensor& x, const Tensor& w, const Tensor* bias, const Conv2dParams& p,
                      const Conv2dOptions& opt, Tensor& y) {
  if (w.dim(2) != 1 || w.dim(3) != 1 || p.stride != 1 || p.pad_top || p.pad_left || p.pad_bottom || p.pad_right ||
      precision() == Precision::Reference)
    return false;
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3), O = w.dim(0), HW = H * W;
  if (N == 0 || C == 0 || O == 0 || HW == 0) return false;
  // The weight repeated per image: matmul's batch shares b, not a (a few MB at most).
  Tensor wf = w.as_f32();
  Tensor wb = Tensor::empty({N, O, C});
  for (int64_t n = 0; n < N; ++n) std::memcpy(wb.f32() + n * O * C, wf.f32(), size_t(O * C) * sizeof(float));
  y = matmul(wb, x.reshape({N, C, HW})).reshape({N, O, H, W});
  if (!bias && !opt.residual) return true;
  Tensor bf = bias ? bias->as_f32() : Tensor();
  Tensor rf = opt.residual ? opt.residual->as_f32() : Tensor();
  float* Y = y.f32();
  const float* B = bias ? bf.f32() : nullptr;
  const float* R = opt.residual ? rf.f32() : nullptr;
#pragma omp parallel for schedule(static) if (N * O * HW > (1 << 16))
  for (int64_t row = 0; row < N * O; ++row) {
    float* yr = Y + row * HW;
    const float b = B ? B[row % O] : 0.f;
    if (R) {
      const float* rr = R + row * HW;
      for (int64_t i = 0; i < HW; ++i) yr[i] = (yr[i] + b) + rr[i];
    } else {
      for (int64_t i = 0; i < HW; ++i) yr[i] += b;
    }
  }
  return true;
}

}  // namespace pigment::ops
