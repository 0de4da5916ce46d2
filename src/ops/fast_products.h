// Precision::Fast versions of linear() and conv2d() (see ops/precision.h); under Precision::Reference they run the
// scalar twins instead. Each returns false, leaving y alone,
// when the fast path does not apply (precision is Fp32, no AMX, no AMX kernel for the shape); the caller then runs
// its float32 path. Arguments are already checked by the caller.
#pragma once
#include "ops/ops.h"

namespace pigment::ops::fast {

bool linear(const Tensor& x, const Tensor& w, const Tensor* bias, const LinearOptions& opt, Tensor& y);
bool conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, const Conv2dParams& p, const Conv2dOptions& opt,
            Tensor& y);

}  // namespace pigment::ops::fast
