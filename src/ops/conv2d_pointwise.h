// 1x1 convolutions (stride 1, no padding) as the matrix products they are, on NCHW data as it lies: per image
// Y[O, H·W] = W[O, C] · X[C, H·W], then bias and residual in one pass. A convolution primitive reorders input and
// output to oneDNN's blocked layout around a product this cheap (docs/performance.md: 67 GFLOP/s for the VAE's
// 256→128 shortcut at 512x512 that way).
#pragma once
#include "ops/ops.h"

namespace pigment::ops {

// Computes conv2d(x, w, bias, p) + opt.residual into y and returns true when w is 1x1 with stride 1 and no padding
// and the precision is not Reference (conv2d asks Precision::Fast's bf16 kernels first, so under Fast this is the
// float32 fallback, the same bits as Fp32); returns false (y untouched) otherwise. Arguments are already checked by the caller.
bool conv2d_pointwise(const Tensor& x, const Tensor& w, const Tensor* bias, const Conv2dParams& p,
                      const Conv2dOptions& opt, Tensor& y);

}  // namespace pigment::ops
