// Precision::Fast versions of the backward products (see ops/precision.h): the same gradients as backward.h's,
// computed from bfloat16 inputs with float32 accumulation on the CPU's fast bf16 path. Each returns false, leaving
// its result alone, when the fast path does not apply (precision not Fast, no fast path on this CPU, a shape it
// leaves to float32, or no bf16 kernel of the path's kind); the caller then runs its float32 path. Arguments are
// already checked by the caller. Results have the same bits at any thread count.
#pragma once
#include "ops/conv_im2col.h"
#include "ops/ops.h"

namespace pigment::ops::fast {

// The linear layers' two backward products take the bf16 path with AMX only. On AVX-512 BF16 without AMX (AMD EPYC
// Zen 5, 2026-12-07, ops_bench linear_bwd_*) float32 was faster at every shape measured — 1.1–1.3x on UNet layers,
// 3–7x on a rank-16 LoRA's — because converting and transposing the operands costs more than the bf16 products
// save; the LoRA 512² training step went from 10.8 to 9.5 s. force_bf16_linear_backward(true) takes the bf16 path
// wherever there is one (so tests check that kernel on every CPU kind).
bool linear_backward_in_bf16();
void force_bf16_linear_backward(bool on);

bool linear_backward_input(const Tensor& dy, const Tensor& w, Tensor& dx);
bool linear_backward_weight(const Tensor& dy, const Tensor& x, Tensor& dw);
bool conv2d_backward_input(const Tensor& dy, const Tensor& w, const detail::ConvShape& s, const Conv2dParams& p,
                           Tensor& dx);
bool conv2d_backward_weight(const Tensor& dy, const Tensor& x, const detail::ConvShape& s, const Conv2dParams& p,
                            Tensor& dw);

}  // namespace pigment::ops::fast
