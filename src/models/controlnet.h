// ControlNet (diffusers ControlNetModel): a trainable copy of the UNet's encoder half that reads a control image.
//   control image ─ controlnet_cond_embedding (small conv stack, 8x down) ─┐
//   sample ─ conv_in ───────────────────────────────────────────────────── + ─ down blocks ─ mid block
//   every skip connection ─ 1x1 "zero conv" (controlnet_down_blocks.i) ─ · scale ─→ UNet down residual i
//   mid block output      ─ 1x1 "zero conv" (controlnet_mid_block)     ─ · scale ─→ UNet mid residual
// The residuals enter the frozen UNet through UNetExtras (down_block_additional_residuals / mid_block_...).
#pragma once
#include <string>
#include <vector>

#include "models/unet.h"

namespace pigment {

struct ControlNetConfig {
  UNetConfig unet;  // the encoder-half fields, read from the same config.json (no up blocks)
  int64_t conditioning_channels = 3;
  std::vector<int64_t> conditioning_embedding_out_channels{16, 32, 96, 256};
  std::string channel_order = "rgb";    // controlnet_conditioning_channel_order: "bgr" flips the image channels
  bool global_pool_conditions = false;  // residuals averaged over space (shuffle-style ControlNets)

  static ControlNetConfig from_json(const std::string& json_text, const std::string& source = "config.json");
  static ControlNetConfig load(const std::string& path);
};

struct ControlNetOutput {
  std::vector<Tensor> down_block_residuals;  // one per UNet skip connection, conv_in output first
  Tensor mid_block_residual;
};

// Guess mode's per-residual scales, as diffusers: logspace(-1, 0, count) (10^-1 … 10^0, float32, computed as
// torch.logspace does on the CPU), times conditioning_scale. Entry i scales down residual i; the last, the mid one.
std::vector<float> controlnet_guess_mode_scales(size_t count, float conditioning_scale);

class ControlNet {
 public:
  ControlNet(const ControlNetConfig& cfg, const Weights& w);
  // A diffusers folder: config.json + diffusion_pytorch_model.safetensors.
  static ControlNet load(const std::string& model_dir);

  // sample, timesteps and encoder_hidden_states as for the UNet (extras: SDXL text_embeds/time_ids and hooks; its
  // residual fields are ignored); controlnet_cond [B, conditioning_channels, 8h, 8w] in [0, 1].
  // guess_mode scales the residuals geometrically from 0.1 (first) to 1.0 (mid) instead of uniformly.
  ControlNetOutput forward(const Tensor& sample, const std::vector<float>& timesteps,
                           const Tensor& encoder_hidden_states, const Tensor& controlnet_cond,
                           float conditioning_scale = 1.f, bool guess_mode = false,
                           const UNetExtras& extras = {}) const;
  const ControlNetConfig& config() const { return cfg_; }

 private:
  Tensor embed_condition(const Tensor& cond, const UNetHooks& hooks) const;

  ControlNetConfig cfg_;
  UNetEncoder encoder_;
  Conv2d cond_conv_in_, cond_conv_out_;
  std::vector<Conv2d> cond_blocks_;
  std::vector<Conv2d> zero_convs_;  // controlnet_down_blocks
  Conv2d zero_conv_mid_;            // controlnet_mid_block
};

}  // namespace pigment
