// The recorded forms of the ops (used inside ops/*.cc only): each public op begins with
//   if (autograd::any_needs_grad({&x, &w, ...})) return recorded::op(x, w, ...);
// and the recorded form runs the plain op with recording paused, then records one node per part (fused variants
// are recorded as their parts) with a closure over ops/backward.h that keeps only what the needed gradients use.
#pragma once
#include <vector>

#include "ops/autograd.h"
#include "ops/ops.h"

namespace pigment::ops::recorded {

Tensor linear(const Tensor& x, const Tensor& w, const Tensor* bias, const LinearOptions& options);
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b);
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, Conv2dParams p, const Conv2dOptions& options);
Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps, bool silu);
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps);
Tensor softmax(const Tensor& x);
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale, bool causal);
Tensor activation(const Tensor& x, Activation a);
Tensor geglu(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor clamp(const Tensor& x, float lo, float hi);
Tensor exp(const Tensor& x);
Tensor pointwise(const Tensor& x, Pointwise f);
Tensor upsample_nearest2x(const Tensor& x);
Tensor avg_pool2x(const Tensor& x);
Tensor concat(const std::vector<Tensor>& xs, int dim);
Tensor slice(const Tensor& x, int dim, int64_t begin, int64_t end);
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
Tensor replace_rows(const Tensor& x, const std::vector<int64_t>& at, const Tensor& rows);

}  // namespace pigment::ops::recorded
