// 3x3 convolutions (stride 1, padding 1) with at most 4 output channels — the UNet's and the VAE's conv_out — as a
// SIMD kernel over output rows (simd::conv3x3_narrow_row). oneDNN blocks output channels by 16 and ran the VAE's
// 128→3 convolution at 512x512 at ≈ 18 GFLOP/s (0.1 s per decode, 0.4 s at 1024²).
#pragma once
#include "ops/ops.h"

namespace pigment::ops {

// Computes conv2d(x, w, bias, p) + opt.residual into y and returns true when w is 3x3 with at most 4 outputs, stride 1,
// padding 1 on every side, the width a multiple of 16 and the precision not Reference (under Fast: the float32
// fallback where the bf16 kernels decline) and no explicit Winograd request; returns false (y untouched) otherwise. Arguments are already checked by the caller.
bool conv2d_narrow(const Tensor& x, const Tensor& w, const Tensor* bias, const Conv2dParams& p,
                   const Conv2dOptions& opt, Tensor& y);

}  // namespace pigment::ops
