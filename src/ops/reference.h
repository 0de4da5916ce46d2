// Plain scalar twins of every op in ops.h: the oracle that the fast kernels are held to (and the place to read what
// an op means). Simple loops, statistics in double; only the outermost loop is parallel. Slow: for tests and
// debugging, not for models.
#pragma once
#include <vector>

#include "ops/ops.h"

namespace pigment::ops::ref {

Tensor linear(const Tensor& x, const Tensor& w, const Tensor* bias = nullptr);
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, Conv2dParams p);

Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps);
Tensor group_norm_silu(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps);
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps);
Tensor softmax(const Tensor& x);

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale);
Tensor attention_causal(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale);

Tensor silu(const Tensor& x);
Tensor gelu(const Tensor& x);
Tensor gelu_tanh(const Tensor& x);
Tensor quick_gelu(const Tensor& x);
Tensor geglu(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor clamp(const Tensor& x, float lo, float hi);
Tensor exp(const Tensor& x);
Tensor pointwise(const Tensor& x, Pointwise f);
// The activation named by `a` (Activation::None: a copy).
Tensor activation(const Tensor& x, Activation a);

Tensor upsample_nearest2x(const Tensor& x);
Tensor avg_pool2x(const Tensor& x);
Tensor concat(const std::vector<Tensor>& xs, int dim);
Tensor slice(const Tensor& x, int dim, int64_t begin, int64_t end);
std::vector<Tensor> chunk(const Tensor& x, int chunks, int dim);
Tensor permute(const Tensor& x, const std::vector<int>& perm);
Tensor nchw_to_nlc(const Tensor& x);
Tensor nlc_to_nchw(const Tensor& x, int64_t h, int64_t w);

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, float s);
Tensor add_scaled(const Tensor& a, const Tensor& b, float sb);
void add_inplace(Tensor& a, const Tensor& b);

Tensor embedding(const Tensor& table, const std::vector<int64_t>& ids);
Tensor timestep_embedding(const std::vector<float>& t, int dim, bool flip_sin_to_cos, float downscale_freq_shift,
                          float max_period = 10000.f);
float sum_all(const Tensor& x);
float mean_all(const Tensor& x);
float mse(const Tensor& a, const Tensor& b);

}  // namespace pigment::ops::ref
