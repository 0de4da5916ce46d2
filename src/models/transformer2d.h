// diffusers Transformer2DModel (continuous input) as the UNet uses it: a spatial transformer over the pixels of a
// feature map, with self-attention, cross-attention to the text conditioning and a GEGLU feed-forward.
//   residual = x;  h = proj_in(GroupNorm(x, eps 1e-6))  (1x1 conv for SD1, linear on the sequence for SD2/SDXL)
//   for each BasicTransformerBlock: h += attn1(norm1(h)); h += attn2(norm2(h), context); h += ff(norm3(h))
//   out = proj_out(h) + residual
#pragma once
#include <vector>

#include "models/unet_layers.h"

namespace pigment {

// diffusers Attention with the classic processor: softmax(q kᵀ / sqrt(head_dim)) v per head, then to_out.0.
// to_q/to_k/to_v have no bias. upcast_attention only changes the dtype of the scores, so nothing in float32.
class Attention {
 public:
  Attention() = default;
  // context_dim = query_dim for self-attention.
  Attention(const Weights& w, int64_t query_dim, int64_t context_dim, int heads, int64_t head_dim);
  // x [B, T, query_dim]; context [B, S, context_dim], or null for self-attention.
  // residual (same shape as x) is added by the output projection.
  Tensor forward(const Tensor& x, const Tensor* context, const UNetHooks& hooks, const Tensor* residual = nullptr) const;

 private:
  std::string name_;
  int heads_ = 1;
  int64_t head_dim_ = 1, context_dim_ = 0;
  Linear to_q_, to_k_, to_v_, to_out_;
};

// Two attentions and a GEGLU feed-forward (ff.net.0.proj → geglu → ff.net.2), each pre-normed and residual.
class BasicTransformerBlock {
 public:
  BasicTransformerBlock() = default;
  BasicTransformerBlock(const Weights& w, int64_t dim, int heads, int64_t head_dim, int64_t context_dim);
  Tensor forward(const Tensor& x, const Tensor& context, const UNetHooks& hooks) const;

 private:
  LayerNorm norm1_, norm2_, norm3_;
  Attention attn1_, attn2_;
  Linear ff_in_, ff_out_;
};

class Transformer2D {
 public:
  struct Params {
    int64_t channels = 0;  // in = out = inner channels (heads · head_dim)
    int heads = 1;
    int64_t head_dim = 0;
    int64_t context_dim = 0;  // cross_attention_dim
    int layers = 1;           // transformer blocks (SDXL: transformer_layers_per_block)
    int groups = 32;
    bool linear_projection = false;  // use_linear_projection
  };
  Transformer2D() = default;
  Transformer2D(const Weights& w, const Params& p);
  // x [N, C, H, W], context [N, S, context_dim] → [N, C, H, W]
  Tensor forward(const Tensor& x, const Tensor& context, const UNetHooks& hooks) const;

 private:
  Params p_;
  GroupNorm norm_;
  Conv2d proj_in_conv_, proj_out_conv_;
  Linear proj_in_linear_, proj_out_linear_;
  std::vector<BasicTransformerBlock> blocks_;
};

}  // namespace pigment
