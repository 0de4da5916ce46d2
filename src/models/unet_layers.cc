#include "models/unet_layers.h"

namespace pigment {

Linear::Linear(const Weights& w, const std::string& name, int64_t in, int64_t out, bool bias)
    : name_(w.prefix() + name) {
  weight_ = w.get(name + ".weight", {out, in});
  if (bias) bias_ = w.get(name + ".bias", {out});
}

Tensor Linear::operator()(const Tensor& x, const UNetHooks& hooks) const {
  Tensor y = ops::linear(x, weight_, bias_.defined() ? &bias_ : nullptr);
  if (hooks.layer_delta) hooks.layer_delta(name_, x, y);
  return y;
}

Tensor Linear::operator()(const Tensor& x, const UNetHooks& hooks, ops::Activation act, const Tensor* residual) const {
  if (hooks.layer_delta && act != ops::Activation::None) {  // the delta belongs before the activation
    Tensor y = (*this)(x, hooks);
    switch (act) {
      case ops::Activation::Silu: y = ops::silu(y); break;
      case ops::Activation::Gelu: y = ops::gelu(y); break;
      case ops::Activation::GeluTanh: y = ops::gelu_tanh(y); break;
      case ops::Activation::QuickGelu: y = ops::quick_gelu(y); break;
      case ops::Activation::None: break;
    }
    if (residual) ops::add_inplace(y, *residual);
    return y;
  }
  ops::LinearOptions o;
  o.activation = act;
  o.residual = residual;
  Tensor y = ops::linear(x, weight_, bias_.defined() ? &bias_ : nullptr, o);
  if (hooks.layer_delta) hooks.layer_delta(name_, x, y);
  return y;
}

Conv2d::Conv2d(const Weights& w, const std::string& name, int64_t in, int64_t out, int kernel,
               ops::Conv2dParams params)
    : name_(w.prefix() + name), params_(params) {
  weight_ = w.get(name + ".weight", {out, in, kernel, kernel});
  bias_ = w.get(name + ".bias", {out});
}

Conv2d Conv2d::same(const Weights& w, const std::string& name, int64_t in, int64_t out, int kernel) {
  return Conv2d(w, name, in, out, kernel, ops::Conv2dParams::same((kernel - 1) / 2));
}

Tensor Conv2d::operator()(const Tensor& x, const UNetHooks& hooks) const {
  Tensor y = ops::conv2d(x, weight_, &bias_, params_);
  if (hooks.layer_delta) hooks.layer_delta(name_, x, y);
  return y;
}

Tensor Conv2d::operator()(const Tensor& x, const UNetHooks& hooks, const Tensor* residual) const {
  ops::Conv2dOptions o;
  o.residual = residual;
  Tensor y = ops::conv2d(x, weight_, &bias_, params_, o);
  if (hooks.layer_delta) hooks.layer_delta(name_, x, y);
  return y;
}

Tensor Conv2d::pointwise(const Tensor& x, const Tensor* residual) const {
  PIG_CHECK(weight_.dim(2) == 1 && weight_.dim(3) == 1 && params_.stride == 1 && params_.pad_top == 0 &&
                params_.pad_left == 0 && params_.pad_bottom == 0 && params_.pad_right == 0,
            name_, ": not a 1x1 convolution");
  ops::LinearOptions o;
  o.residual = residual;
  return ops::linear(x, weight_.reshape({weight_.dim(0), weight_.dim(1)}), &bias_, o);
}

GroupNorm::GroupNorm(const Weights& w, const std::string& name, int64_t channels, int groups, float eps)
    : groups_(groups), eps_(eps) {
  PIG_CHECK(groups > 0 && channels % groups == 0, w.source(), ": ", w.prefix() + name, ": ", channels,
            " channels do not split into ", groups, " groups (norm_num_groups)");
  gamma_ = w.get(name + ".weight", {channels});
  beta_ = w.get(name + ".bias", {channels});
}

Tensor GroupNorm::operator()(const Tensor& x) const { return ops::group_norm(x, groups_, gamma_, beta_, eps_); }
Tensor GroupNorm::silu(const Tensor& x) const { return ops::group_norm_silu(x, groups_, gamma_, beta_, eps_); }

LayerNorm::LayerNorm(const Weights& w, const std::string& name, int64_t dim, float eps) : eps_(eps) {
  gamma_ = w.get(name + ".weight", {dim});
  beta_ = w.get(name + ".bias", {dim});
}

Tensor LayerNorm::operator()(const Tensor& x) const { return ops::layer_norm(x, gamma_, beta_, eps_); }

}  // namespace pigment
