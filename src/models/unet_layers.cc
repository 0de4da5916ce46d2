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

GroupNorm::GroupNorm(const Weights& w, const std::string& name, int64_t channels, int groups, float eps)
    : groups_(groups), eps_(eps) {
  PIG_CHECK(groups > 0 && channels % groups == 0, w.source(), ": ", w.prefix() + name, ": ", channels,
            " channels do not split into ", groups, " groups (norm_num_groups)");
  gamma_ = w.get(name + ".weight", {channels});
  beta_ = w.get(name + ".bias", {channels});
}

Tensor GroupNorm::operator()(const Tensor& x) const { return ops::group_norm(x, groups_, gamma_, beta_, eps_); }

LayerNorm::LayerNorm(const Weights& w, const std::string& name, int64_t dim, float eps) : eps_(eps) {
  gamma_ = w.get(name + ".weight", {dim});
  beta_ = w.get(name + ".bias", {dim});
}

Tensor LayerNorm::operator()(const Tensor& x) const { return ops::layer_norm(x, gamma_, beta_, eps_); }

}  // namespace pigment
