// float32 exp and log as PyTorch's CPU kernels compute them. torch.exp / torch.log on float tensors go through
// SLEEF's vector functions (Sleef_expf*_u10, Sleef_logf*_u10, with FMA), which are within 1 ulp but not always
// correctly rounded, so they can differ from the C library in the last bit. Samplers whose later steps depend on
// those bits (DPM++ SDE's Brownian-tree times, rounded to 6 decimals) use these.
#pragma once

namespace pigment::torch_math {

float expf(float x);
float logf(float x);

}  // namespace pigment::torch_math
