#include "ops/conv2d_narrow.h"

#include <string>

#include "ops/precision.h"
#include "ops/profile.h"
#include "ops/simd_kernels.h"

namespace pigment::ops {

bool conv2d_narrow(const Tensor& x, const Tensor& w, const Tensor* bias, const Conv2dParams& p,
                   const Conv2dOptions& opt, Tensor& y) {
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3), O = w.dim(0);
  if (w.dim(2) != 3 || w.dim(3) != 3 || O < 1 || O > 4 || p.stride != 1 || p.pad_top != 1 || p.pad_left != 1 ||
      p.pad_bottom != 1 || p.pad_right != 1 || W % 16 != 0 || N == 0 || C == 0 || H == 0 || W == 0 ||
      precision() == Precision::Reference || opt.algorithm == ConvAlgorithm::Winograd)
    return false;
  profile::Scope prof(
      [&] {
        return "conv2d 3x3 narrow " + std::to_string(C) + "->" + std::to_string(O) + " @" + std::to_string(H) + "x" +
               std::to_string(W) + " N" + std::to_string(N);
      },
      2.0 * double(N * O * H * W) * double(C * 9));
  // Weights as [c][ky][kx][o] (the kernel broadcasts 3·O of them per input row), bias as f32.
  const Tensor wf = w.as_f32();
  Tensor wt = Tensor::empty({C, 3, 3, O});
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t k = 0; k < 9; ++k) wt.f32()[(c * 9 + k) * O + o] = wf.f32()[(o * C + c) * 9 + k];
  const Tensor bf = bias ? bias->as_f32() : Tensor();
  const Tensor xf = x.as_f32();
  y = Tensor::empty({N, O, H, W});
  const float* X = xf.f32();
  float* Y = y.f32();
  const float* B = bias ? bf.f32() : nullptr;
#pragma omp parallel for schedule(static) if (N * H * W * C > (1 << 14))
  for (int64_t nr = 0; nr < N * H; ++nr) {
    const int64_t n = nr / H, row = nr % H;
    simd::conv3x3_narrow_row(X + n * C * H * W, C, H, W, wt.f32(), B, int(O), row, Y + n * O * H * W);
  }
  if (opt.residual) add_inplace(y, *opt.residual);
  return true;
}

}  // namespace pigment::ops
