// The UNet's blocks, as diffusers names them:
//   TimestepEmbedding         linear_1 → silu → linear_2 (time_embedding, and SDXL's add_embedding)
//   DownBlock                 DownBlock2D / CrossAttnDownBlock2D: resnets (each followed by a spatial transformer in
//                             the cross-attention variant), then a stride-2 conv; every intermediate output is kept
//                             as a skip connection for the up path
//   MidBlock2DCrossAttn       UNetMidBlock2DCrossAttn: resnet, then (transformer, resnet) pairs
//   UpBlock                   UpBlock2D / CrossAttnUpBlock2D: each resnet takes the running state concatenated with
//                             the latest skip connection; then nearest ×2 upsampling and a conv
#pragma once
#include <optional>
#include <vector>

#include "models/resnet_block.h"
#include "models/transformer2d.h"

namespace pigment {

class TimestepEmbedding {
 public:
  TimestepEmbedding() = default;
  TimestepEmbedding(const Weights& w, int64_t in, int64_t out);
  Tensor forward(const Tensor& x, const UNetHooks& hooks) const;

 private:
  Linear linear_1_, linear_2_;
};

// What the blocks share: the resnets' settings and, for cross-attention blocks, the transformers' settings.
struct BlockParams {
  int64_t in_channels = 0, out_channels = 0;
  int64_t temb_channels = 0;
  int num_layers = 1;  // resnets in the block (up blocks: layers_per_block + 1)
  int groups = 32;
  float eps = 1e-5f;
  bool cross_attention = false;
  int heads = 1;  // per-block head count (diffusers' attention_head_dim in SD1/SD2 configs)
  int64_t context_dim = 0;
  std::vector<int> transformer_layers;  // transformer blocks per resnet (num_layers entries)
  bool linear_projection = false;
};

class DownBlock {
 public:
  DownBlock() = default;
  // downsample_padding as diffusers: 1 pads every side; 0 pads only bottom and right.
  DownBlock(const Weights& w, const BlockParams& p, bool add_downsample, int downsample_padding);
  // Appends each resnet/transformer output and the downsampled output to `skips`.
  Tensor forward(Tensor x, const Tensor& temb, const Tensor& context, std::vector<Tensor>& skips,
                 const UNetHooks& hooks) const;
  int num_skips() const { return int(resnets_.size()) + (downsample_.defined() ? 1 : 0); }

 private:
  std::vector<ResnetBlock2D> resnets_;
  std::vector<Transformer2D> attentions_;  // empty for DownBlock2D
  Conv2d downsample_;
};

class MidBlock2DCrossAttn {
 public:
  MidBlock2DCrossAttn() = default;
  // p.in_channels == p.out_channels; output_scale_factor = mid_block_scale_factor.
  MidBlock2DCrossAttn(const Weights& w, const BlockParams& p, float output_scale_factor);
  Tensor forward(Tensor x, const Tensor& temb, const Tensor& context, const UNetHooks& hooks) const;

 private:
  std::vector<ResnetBlock2D> resnets_;
  std::vector<Transformer2D> attentions_;
};

class UpBlock {
 public:
  UpBlock() = default;
  // prev_output_channels: channels arriving from below; skip channels follow diffusers' up-block wiring
  // (in_channels for the last resnet, out_channels for the others).
  UpBlock(const Weights& w, const BlockParams& p, int64_t prev_output_channels, bool add_upsample);
  // Consumes num_layers skips from the back of `skips`. When upsampling, the result is cut to `upsample_to`
  // (H, W) if given: nearest ×2 then cropping equals diffusers' interpolate to the skip size for odd sizes.
  Tensor forward(Tensor x, const Tensor& temb, const Tensor& context, std::vector<Tensor>& skips,
                 std::optional<std::pair<int64_t, int64_t>> upsample_to, const UNetHooks& hooks) const;
  int num_layers() const { return int(resnets_.size()); }

 private:
  std::vector<ResnetBlock2D> resnets_;
  std::vector<Transformer2D> attentions_;  // empty for UpBlock2D
  Conv2d upsample_;
};

}  // namespace pigment
