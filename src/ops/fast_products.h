// Precision::Fast versions of linear() and conv2d() (see ops/precision.h); under Precision::Reference they run the
// scalar twins instead. Each returns false, leaving y alone, when the fast path does not apply (precision is Fp32, no
// fast path on this CPU, a shape it leaves to float32, or no bf16 kernel of the fast path's kind for the shape); the
// caller then runs its float32 path. Arguments are already checked by the caller.
#pragma once
#include "ops/ops.h"

namespace pigment::ops::fast {

bool linear(const Tensor& x, const Tensor& w, const Tensor* bias, const LinearOptions& opt, Tensor& y);
// fp32_winograd: whether the float32 path would run this convolution as Winograd (conv2d.cc's choice).
bool conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, const Conv2dParams& p, const Conv2dOptions& opt,
            bool fp32_winograd, Tensor& y);

// Whether Precision::Fast is set and its fast path takes a convolution of this shape (before asking oneDNN for a
// kernel): the shape rule of fast_products.cc. fp32_winograd as above.
bool takes_conv(int64_t in_channels, int64_t out_channels, int64_t out_pixels, bool fp32_winograd);

}  // namespace pigment::ops::fast
