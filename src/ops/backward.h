// Backward passes of the op set: for each forward op of ops.h, the gradients of a scalar loss with respect to its
// inputs, given the gradient `dy` with respect to its output. Pure functions on tensors: the autograd tape
// (ops/autograd.h) decides which of them to call and what to keep for them.
//
// Each backward lives beside its forward (conv2d.cc ↔ conv2d_backward.cc, ...), with a plain scalar twin in
// pigment::ops::ref (same signature, simple loops, sums in double) that the fast one is tested against, and the
// scalar one is tested against central finite differences in double precision. Gradients are float32; weight
// arguments may be f32, f16 or bf16 as in the forward. Results are deterministic: the same bits at 1 and 2 threads.
#pragma once
#include <vector>

#include "ops/ops.h"

namespace pigment::ops {

// ---- products ----
// y = x·wᵀ (+ b), x [..., in], w [out, in], dy [..., out].
Tensor linear_backward_input(const Tensor& dy, const Tensor& w);   // dx = dy·w → [..., in]
Tensor linear_backward_weight(const Tensor& dy, const Tensor& x);  // dw = Σ_rows dyᵀ·x → [out, in]
// Sum over every dimension but the last: [..., C] → [C] (bias of a linear layer; broadcast rows).
Tensor sum_to_last_dim(const Tensor& dy);
// matmul(a, b, trans_a, trans_b) with a [B, M, K] or [M, K], b [B, K, N] or [K, N] (as in ops.h). Gradients in the
// shapes of a and b (a b shared by the batch gets the sum over the batch).
struct MatmulGrads {
  Tensor da, db;
};
MatmulGrads matmul_backward(const Tensor& dy, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
                            bool need_da = true, bool need_db = true);

// y = conv2d(x, w, b, p), x [N, C, H, W], w [O, C, kh, kw], dy [N, O, H', W'].
Tensor conv2d_backward_input(const Tensor& dy, const Tensor& w, const Shape& x_shape, Conv2dParams p);
Tensor conv2d_backward_weight(const Tensor& dy, const Tensor& x, const Shape& w_shape, Conv2dParams p);
// Sum over N, H, W: [N, C, H, W] → [C] (bias of a convolution; per-channel broadcast).
Tensor sum_to_channels(const Tensor& dy);

// ---- normalisation ----
struct NormGrads {
  Tensor dx, dgamma, dbeta;  // dgamma/dbeta undefined unless asked for
};
NormGrads group_norm_backward(const Tensor& dy, const Tensor& x, int groups, const Tensor& gamma, float eps,
                              bool need_params);
NormGrads layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, float eps, bool need_params);
// y = softmax(x) over the last dimension: dx = y ⊙ (dy − Σ dy ⊙ y).
Tensor softmax_backward(const Tensor& dy, const Tensor& y);

// ---- attention ----
// out = attention(q, k, v, heads, scale) (or attention_causal when `causal`). Recomputes the scores in tiles from
// q and k (never a Tq × Tk matrix per head in memory); `out` is the forward's output (for Σ dout ⊙ out per row).
struct AttentionGrads {
  Tensor dq, dk, dv;
};
AttentionGrads attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& out, int heads, float scale, bool causal);

// ---- activations: dx from dy and the forward's input x ----
Tensor silu_backward(const Tensor& dy, const Tensor& x);
Tensor gelu_backward(const Tensor& dy, const Tensor& x);
Tensor gelu_tanh_backward(const Tensor& dy, const Tensor& x);
Tensor quick_gelu_backward(const Tensor& dy, const Tensor& x);
Tensor geglu_backward(const Tensor& dy, const Tensor& x);  // x [..., 2N], dy [..., N] → [..., 2N]
Tensor activation_backward(const Tensor& dy, const Tensor& x, Activation a);
// relu: dy where x > 0, else 0 (PyTorch's choice at 0). clamp: dy where lo <= x <= hi, else 0 (PyTorch passes the
// gradient at the bounds). exp: dy ⊙ y from the forward's output y = exp(x).
Tensor relu_backward(const Tensor& dy, const Tensor& x);
Tensor clamp_backward(const Tensor& dy, const Tensor& x, float lo, float hi);
Tensor exp_backward(const Tensor& dy, const Tensor& y);
// pointwise: dy ⊙ f'(x) from the forward's input x (PyTorch's conventions at kinks: LeakyReLU and ELU take the
// negative side's slope at 0 only for x < 0 and x <= 0 respectively, as torch; Hardswish's slope is x/3 + 1/2 on
// [-3, 3]).
Tensor pointwise_backward(const Tensor& dy, const Tensor& x, Pointwise f);

// ---- shape and resampling ----
Tensor upsample_nearest2x_backward(const Tensor& dy);  // [N, C, 2H, 2W] → [N, C, H, W] (sum of each 2x2)
Tensor avg_pool2x_backward(const Tensor& dy);          // [N, C, H, W] → [N, C, 2H, 2W] (dy / 4 to each)
// Gradient of slice(x, dim, begin, end): dy placed into zeros of x_shape.
Tensor slice_backward(const Tensor& dy, const Shape& x_shape, int dim, int64_t begin);
// Gradient of a broadcast: sums g over the dimensions that `shape` broadcast (NumPy rules) → `shape`.
Tensor reduce_to_shape(const Tensor& g, const Shape& shape);

// ---- lookups ----
// Gradient of embedding(table, ids) with respect to the table: row r gets the sum of dy over the positions holding
// r → [vocab, D]; rows not present are zero.
Tensor embedding_backward(const Tensor& dy, const std::vector<int64_t>& ids, int64_t vocab);

// ---- losses ----
// mse(a, b) = mean((a − b)²): d/da = 2 (a − b) / numel · dloss.
Tensor mse_backward(const Tensor& a, const Tensor& b, float dloss = 1.f);
// Weighted MSE over a batch: loss = (1/B) Σ_b w_b · mean_{rest}((a_b − t_b)²), a and t [B, ...], w [B].
float weighted_mse(const Tensor& a, const Tensor& t, const std::vector<float>& w);
Tensor weighted_mse_backward(const Tensor& a, const Tensor& t, const std::vector<float>& w, float dloss = 1.f);
// l1(a, b) = mean(|a − b|): d/da = sign(a − b) / numel · dloss (0 where a = b, as torch).
float l1(const Tensor& a, const Tensor& b);
Tensor l1_backward(const Tensor& a, const Tensor& b, float dloss = 1.f);

namespace ref {
Tensor linear_backward_input(const Tensor& dy, const Tensor& w);
Tensor linear_backward_weight(const Tensor& dy, const Tensor& x);
Tensor sum_to_last_dim(const Tensor& dy);
MatmulGrads matmul_backward(const Tensor& dy, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
                            bool need_da = true, bool need_db = true);
Tensor conv2d_backward_input(const Tensor& dy, const Tensor& w, const Shape& x_shape, Conv2dParams p);
Tensor conv2d_backward_weight(const Tensor& dy, const Tensor& x, const Shape& w_shape, Conv2dParams p);
Tensor sum_to_channels(const Tensor& dy);
NormGrads group_norm_backward(const Tensor& dy, const Tensor& x, int groups, const Tensor& gamma, float eps,
                              bool need_params);
NormGrads layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, float eps, bool need_params);
Tensor softmax_backward(const Tensor& dy, const Tensor& y);
AttentionGrads attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& out, int heads, float scale, bool causal);
Tensor silu_backward(const Tensor& dy, const Tensor& x);
Tensor gelu_backward(const Tensor& dy, const Tensor& x);
Tensor gelu_tanh_backward(const Tensor& dy, const Tensor& x);
Tensor quick_gelu_backward(const Tensor& dy, const Tensor& x);
Tensor geglu_backward(const Tensor& dy, const Tensor& x);
Tensor activation_backward(const Tensor& dy, const Tensor& x, Activation a);
Tensor relu_backward(const Tensor& dy, const Tensor& x);
Tensor clamp_backward(const Tensor& dy, const Tensor& x, float lo, float hi);
Tensor exp_backward(const Tensor& dy, const Tensor& y);
Tensor pointwise_backward(const Tensor& dy, const Tensor& x, Pointwise f);
Tensor upsample_nearest2x_backward(const Tensor& dy);
Tensor avg_pool2x_backward(const Tensor& dy);
Tensor slice_backward(const Tensor& dy, const Shape& x_shape, int dim, int64_t begin);
Tensor reduce_to_shape(const Tensor& g, const Shape& shape);
Tensor embedding_backward(const Tensor& dy, const std::vector<int64_t>& ids, int64_t vocab);
Tensor mse_backward(const Tensor& a, const Tensor& b, float dloss = 1.f);
float weighted_mse(const Tensor& a, const Tensor& t, const std::vector<float>& w);
Tensor weighted_mse_backward(const Tensor& a, const Tensor& t, const std::vector<float>& w, float dloss = 1.f);
float l1(const Tensor& a, const Tensor& b);
Tensor l1_backward(const Tensor& a, const Tensor& b, float dloss = 1.f);
}  // namespace ref

}  // namespace pigment::ops
