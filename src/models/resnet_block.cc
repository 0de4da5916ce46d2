#include "models/resnet_block.h"

namespace pigment {

ResnetBlock2D::ResnetBlock2D(const Weights& w, const Params& p) : p_(p) {
  norm1_ = GroupNorm(w, "norm1", p.in_channels, p.groups, p.eps);
  conv1_ = Conv2d::same(w, "conv1", p.in_channels, p.out_channels, 3);
  if (p.temb_channels > 0) time_emb_proj_ = Linear(w, "time_emb_proj", p.temb_channels, p.out_channels);
  norm2_ = GroupNorm(w, "norm2", p.out_channels, p.groups, p.eps);
  conv2_ = Conv2d::same(w, "conv2", p.out_channels, p.out_channels, 3);
  if (p.in_channels != p.out_channels) conv_shortcut_ = Conv2d::same(w, "conv_shortcut", p.in_channels, p.out_channels, 1);
}

Tensor ResnetBlock2D::forward(const Tensor& x, const Tensor& temb, const UNetHooks& hooks) const {
  Tensor h = conv1_(norm1_.silu(x), hooks);
  if (p_.temb_channels > 0) {
    Tensor t = time_emb_proj_(ops::silu(temb), hooks);  // [N, out]
    h = ops::add(h, t.reshape({t.dim(0), t.dim(1), 1, 1}));
  }
  Tensor shortcut = conv_shortcut_.defined() ? conv_shortcut_(x, hooks) : x;
  // dropout is the identity at inference; the shortcut is added inside conv2
  Tensor out = conv2_(norm2_.silu(h), hooks, &shortcut);
  if (p_.output_scale_factor != 1.f) out = ops::scale(out, 1.f / p_.output_scale_factor);
  return out;
}

}  // namespace pigment
