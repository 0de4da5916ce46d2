#include "models/transformer2d.h"

#include <cmath>

#include "ops/precision.h"

namespace pigment {

Attention::Attention(const Weights& w, int64_t query_dim, int64_t context_dim, int heads, int64_t head_dim)
    : name_(w.prefix().empty() ? "" : w.prefix().substr(0, w.prefix().size() - 1)),
      heads_(heads),
      head_dim_(head_dim),
      context_dim_(context_dim) {
  int64_t inner = heads * head_dim;
  to_q_ = Linear(w, "to_q", query_dim, inner, false);
  to_k_ = Linear(w, "to_k", context_dim, inner, false);
  to_v_ = Linear(w, "to_v", context_dim, inner, false);
  to_out_ = Linear(w, "to_out.0", inner, query_dim);
}

Tensor Attention::forward(const Tensor& x, const Tensor* context, const UNetHooks& hooks,
                          const Tensor* residual) const {
  const Tensor& ctx = context ? *context : x;
  PIG_CHECK(ctx.ndim() == 3 && ctx.dim(0) == x.dim(0) && ctx.dim(2) == context_dim_, name_, ": context has shape ",
            shape_str(ctx.shape()), ", expected [", x.dim(0), ", tokens, ", context_dim_, "]");
  Tensor q = to_q_(x, hooks);
  Tensor k, v;
  {
    // The text's keys and values (and a hypernetwork's transform of the text) stay out of int8: every query
    // attends to them, and there are few tokens (ops/precision.h). Self-attention's, the image's own rows, take it.
    const ops::ScopedPrecision kv_precision(context ? ops::without_int8() : ops::precision());
    AttentionContext kv{ctx, ctx};
    if (hooks.attention_context) kv = hooks.attention_context(name_, ctx);
    k = to_k_(kv.key, hooks);
    v = to_v_(kv.value, hooks);
  }
  Tensor o = ops::attention(q, k, v, heads_, 1.f / std::sqrt(float(head_dim_)));
  return to_out_(o, hooks, ops::Activation::None, residual);  // to_out.1 is dropout
}

BasicTransformerBlock::BasicTransformerBlock(const Weights& w, int64_t dim, int heads, int64_t head_dim,
                                             int64_t context_dim) {
  // BasicTransformerBlock's LayerNorms keep PyTorch's default eps (1e-5); only the block's GroupNorm uses 1e-6.
  norm1_ = LayerNorm(w, "norm1", dim, 1e-5f);
  attn1_ = Attention(w.sub("attn1"), dim, dim, heads, head_dim);
  norm2_ = LayerNorm(w, "norm2", dim, 1e-5f);
  attn2_ = Attention(w.sub("attn2"), dim, context_dim, heads, head_dim);
  norm3_ = LayerNorm(w, "norm3", dim, 1e-5f);
  int64_t ff_inner = 4 * dim;
  ff_in_ = Linear(w, "ff.net.0.proj", dim, 2 * ff_inner);  // GEGLU: value and gate halves
  ff_out_ = Linear(w, "ff.net.2", ff_inner, dim);
}

Tensor BasicTransformerBlock::forward(const Tensor& x, const Tensor& context, const UNetHooks& hooks) const {
  // Residual sums fused into the output projections.
  Tensor h = attn1_.forward(norm1_(x), nullptr, hooks, &x);
  h = attn2_.forward(norm2_(h), &context, hooks, &h);
  return ff_out_(ops::geglu(ff_in_(norm3_(h), hooks)), hooks, ops::Activation::None, &h);
}

Transformer2D::Transformer2D(const Weights& w, const Params& p) : p_(p) {
  PIG_CHECK(p.heads * p.head_dim == p.channels, w.source(), ": ", w.prefix(), ": ", p.heads, " heads of ", p.head_dim,
            " do not make ", p.channels, " channels");
  norm_ = GroupNorm(w, "norm", p.channels, p.groups, 1e-6f);
  if (p.linear_projection) {
    proj_in_linear_ = Linear(w, "proj_in", p.channels, p.channels);
    proj_out_linear_ = Linear(w, "proj_out", p.channels, p.channels);
  } else {
    proj_in_conv_ = Conv2d::same(w, "proj_in", p.channels, p.channels, 1);
    proj_out_conv_ = Conv2d::same(w, "proj_out", p.channels, p.channels, 1);
  }
  for (int i = 0; i < p.layers; ++i)
    blocks_.emplace_back(w.sub("transformer_blocks." + std::to_string(i)), p.channels, p.heads, p.head_dim,
                         p.context_dim);
}

Tensor Transformer2D::forward(const Tensor& x, const Tensor& context, const UNetHooks& hooks) const {
  int64_t H = x.dim(2), W = x.dim(3);
  Tensor h = norm_(x);
  // SD1 projects with a 1x1 conv before flattening; SD2/SDXL flatten first and project with a linear layer.
  // Both are the same map, but the weights have different shapes.
  // Without run-time layer deltas, SD1's 1x1 convolutions run as linear layers on the flattened rows: the same map
  // without the convolution's layout reorders (≈ 1.7x faster at 64x64).
  const bool pointwise = !p_.linear_projection && !hooks.layer_delta;
  if (p_.linear_projection) {
    h = proj_in_linear_(ops::nchw_to_nlc(h), hooks);
  } else if (pointwise) {
    h = proj_in_conv_.pointwise(ops::nchw_to_nlc(h));
  } else {
    h = ops::nchw_to_nlc(proj_in_conv_(h, hooks));
  }
  for (const auto& block : blocks_) h = block.forward(h, context, hooks);
  if (p_.linear_projection) {
    h = ops::nlc_to_nchw(proj_out_linear_(h, hooks), H, W);
  } else if (pointwise) {
    h = ops::nlc_to_nchw(proj_out_conv_.pointwise(h), H, W);
  } else {
    return proj_out_conv_(ops::nlc_to_nchw(h, H, W), hooks, &x);  // residual fused
  }
  ops::add_inplace(h, x);
  return h;
}

}  // namespace pigment
