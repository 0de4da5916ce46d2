// The op set. Every model, sampler, pipeline and trainer computes with these and nothing else.
// Inputs are contiguous tensors; activations are float32. Weight arguments may be f32, f16 or bf16 (converted
// as the kernel needs). Shapes follow PyTorch: NCHW images, [..., features] sequences.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace pigment::ops {

// ---- products ----
// y[..., out] = x[..., in] · w[out, in]ᵀ + b[out]   (PyTorch nn.Linear)
Tensor linear(const Tensor& x, const Tensor& w, const Tensor* bias = nullptr);
// Batched matrix product: a [B, M, K] (or [M, K]) times b [B, K, N] (or [K, N], shared by the batch).
// trans_a / trans_b read a as [B, K, M] / b as [B, N, K].
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);

struct Conv2dParams {
  int stride = 1;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  static Conv2dParams same(int pad, int stride = 1) { return {stride, pad, pad, pad, pad}; }
};
// x [N, C, H, W], w [O, C, kh, kw], bias [O] → [N, O, H', W']
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, Conv2dParams p);

// ---- normalisation ----
// x [N, C, ...]; statistics per (n, group); gamma/beta [C].
Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps);
// Normalises over the last dimension; gamma/beta [last].
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps);
// Softmax over the last dimension.
Tensor softmax(const Tensor& x);

// ---- attention ----
// q [B, Tq, H*D], k/v [B, Tk, H*D] → [B, Tq, H*D]: per head softmax(q kᵀ · scale) v.
// Computed in tiles of queries with an online softmax: never a full Tq × Tk matrix.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale);
// The same, with an additive mask [Tq, Tk] (use -inf to block), e.g. CLIP's causal mask.
Tensor attention_causal(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale);

// ---- activations (elementwise) ----
Tensor silu(const Tensor& x);
Tensor gelu(const Tensor& x);       // erf form
Tensor gelu_tanh(const Tensor& x);  // tanh approximation
Tensor quick_gelu(const Tensor& x);  // x·σ(1.702x)
// x [..., 2N] → [..., N]: first half · gelu(second half)  (diffusers GEGLU after its projection)
Tensor geglu(const Tensor& x);

// ---- shape and resampling ----
Tensor upsample_nearest2x(const Tensor& x);     // [N, C, H, W] → [N, C, 2H, 2W]
Tensor avg_pool2x(const Tensor& x);             // [N, C, H, W] → [N, C, H/2, W/2]
Tensor concat(const std::vector<Tensor>& xs, int dim);
Tensor slice(const Tensor& x, int dim, int64_t begin, int64_t end);
std::vector<Tensor> chunk(const Tensor& x, int chunks, int dim);
Tensor permute(const Tensor& x, const std::vector<int>& perm);
// NCHW [N, C, H, W] ↔ sequence [N, H*W, C]
Tensor nchw_to_nlc(const Tensor& x);
Tensor nlc_to_nchw(const Tensor& x, int64_t h, int64_t w);

// ---- arithmetic with NumPy broadcasting ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, float s);
Tensor add_scaled(const Tensor& a, const Tensor& b, float sb);  // a + sb·b, same shapes
void add_inplace(Tensor& a, const Tensor& b);                    // a += b, same shapes

// ---- lookups and embeddings ----
// table [V, D] (any float dtype), ids → [ids.size(), D]; ids out of range throw.
Tensor embedding(const Tensor& table, const std::vector<int64_t>& ids);
// Sinusoidal timestep embedding as diffusers' get_timestep_embedding → [len(t), dim].
Tensor timestep_embedding(const std::vector<float>& t, int dim, bool flip_sin_to_cos, float downscale_freq_shift,
                          float max_period = 10000.f);

// ---- reductions and losses ----
float sum_all(const Tensor& x);
float mean_all(const Tensor& x);
float mse(const Tensor& a, const Tensor& b);

}  // namespace pigment::ops
