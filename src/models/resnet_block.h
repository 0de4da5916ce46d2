// diffusers ResnetBlock2D with the "default" time-embedding norm, as every Stable Diffusion UNet uses it:
//   h = conv1(silu(norm1(x)));  h += time_emb_proj(silu(temb))[:, :, None, None];
//   h = conv2(silu(norm2(h)));  out = (shortcut(x) + h) / output_scale_factor
// The time term is added per channel before norm2, so it survives the normalisation only because a group holds
// several channels. The shortcut is a 1x1 conv when the channel count changes, else the identity.
#pragma once
#include "models/unet_layers.h"

namespace pigment {

class ResnetBlock2D {
 public:
  struct Params {
    int64_t in_channels = 0, out_channels = 0;
    int64_t temb_channels = 0;  // 0: no time embedding (not used by the UNet, kept for clarity of the contract)
    int groups = 32;
    float eps = 1e-5f;
    float output_scale_factor = 1.f;
  };
  ResnetBlock2D() = default;
  ResnetBlock2D(const Weights& w, const Params& p);
  // x [N, in, H, W], temb [N, temb_channels] → [N, out, H, W]
  Tensor forward(const Tensor& x, const Tensor& temb, const UNetHooks& hooks) const;

 private:
  Params p_;
  GroupNorm norm1_, norm2_;
  Conv2d conv1_, conv2_, conv_shortcut_;
  Linear time_emb_proj_;
};

}  // namespace pigment
