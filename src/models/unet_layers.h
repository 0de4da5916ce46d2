// The parameterised layers the UNet and ControlNet are built from (linear, conv, group/layer norm), and the hooks
// through which tests and adapters reach inside a forward pass.
// Each layer holds views of its weights (in file dtype) and its full diffusers name, so that an adapter can address
// it: LoRA either merges into a patched weight map before the model is built, or adds run-time deltas through
// UNetHooks::layer_delta; hypernetworks replace attention contexts through UNetHooks::attention_context.
#pragma once
#include <functional>
#include <string>

#include "core/tensor.h"
#include "models/weights.h"
#include "ops/ops.h"

namespace pigment {

// What one attention layer attends to. Keys and values may come from different contexts: A1111 hypernetworks
// transform the context separately for k and for v.
struct AttentionContext {
  Tensor key, value;
};

struct UNetHooks {
  // Sees named intermediates of a forward pass as full tensors: "time_proj", "time_embedding", "add_embedding",
  // "conv_in", "down_blocks.<i>" (hidden states), "mid_block", "up_blocks.<i>", "conv_norm_out",
  // and for ControlNet "controlnet_cond_embedding".
  std::function<void(const std::string& name, const Tensor& value)> capture;
  // Replaces the context of attention layer `name` (e.g. "down_blocks.0.attentions.0.transformer_blocks.0.attn2").
  // For self-attention (attn1) the context is the layer's own normalised input.
  std::function<AttentionContext(const std::string& name, const Tensor& context)> attention_context;
  // Adds a run-time delta to the output y of linear or conv layer `name`, computed from its input x.
  std::function<void(const std::string& name, const Tensor& x, Tensor& y)> layer_delta;
  // Training: run each block (UNet down / mid / up block) as a checkpointed segment (ops/autograd.h), keeping only
  // its inputs for the backward and recomputing the rest there.
  bool checkpoint_blocks = false;

  void emit(const std::string& name, const Tensor& value) const {
    if (capture) capture(name, value);
  }
};

// nn.Linear: weight [out, in], optional bias [out].
class Linear {
 public:
  Linear() = default;
  Linear(const Weights& w, const std::string& name, int64_t in, int64_t out, bool bias = true);
  Tensor operator()(const Tensor& x, const UNetHooks& hooks) const;
  // act(x·wᵀ + b) + residual in one pass over the output (residual may be null).
  Tensor operator()(const Tensor& x, const UNetHooks& hooks, ops::Activation act, const Tensor* residual) const;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  Tensor weight_, bias_;
};

// nn.Conv2d with a square kernel: weight [out, in, k, k], bias [out].
class Conv2d {
 public:
  Conv2d() = default;
  Conv2d(const Weights& w, const std::string& name, int64_t in, int64_t out, int kernel,
         ops::Conv2dParams params);
  // The usual "same" convolution: padding (k-1)/2, stride 1.
  static Conv2d same(const Weights& w, const std::string& name, int64_t in, int64_t out, int kernel);
  Tensor operator()(const Tensor& x, const UNetHooks& hooks) const;
  // conv(x) + b + residual, the sum fused into the convolution (residual [N, out, H', W'] or null).
  Tensor operator()(const Tensor& x, const UNetHooks& hooks, const Tensor* residual) const;
  // A 1x1 convolution (stride 1, no padding) applied as the linear map over channels that it is, on channels-last
  // rows x [N, L, in] → [N, L, out] (+ residual [N, L, out]): no layout reorders around the product. Run-time layer
  // deltas (UNetHooks::layer_delta) expect NCHW tensors, so callers use this only when there are none.
  Tensor pointwise(const Tensor& x, const Tensor* residual = nullptr) const;
  const std::string& name() const { return name_; }
  bool defined() const { return weight_.defined(); }

 private:
  std::string name_;
  Tensor weight_, bias_;
  ops::Conv2dParams params_;
};

// nn.GroupNorm over [N, C, ...] with affine gamma/beta [C].
class GroupNorm {
 public:
  GroupNorm() = default;
  GroupNorm(const Weights& w, const std::string& name, int64_t channels, int groups, float eps);
  Tensor operator()(const Tensor& x) const;
  // silu(norm(x)) in one pass over the output.
  Tensor silu(const Tensor& x) const;

 private:
  Tensor gamma_, beta_;
  int groups_ = 1;
  float eps_ = 1e-5f;
};

// nn.LayerNorm over the last dimension.
class LayerNorm {
 public:
  LayerNorm() = default;
  LayerNorm(const Weights& w, const std::string& name, int64_t dim, float eps);
  Tensor operator()(const Tensor& x) const;

 private:
  Tensor gamma_, beta_;
  float eps_ = 1e-5f;
};

}  // namespace pigment
