// The VAE, with the semantics of diffusers' AutoencoderKL: an encoder to the moments of a diagonal Gaussian over
// latents (8x smaller for 4 levels), and a decoder back to images in [-1, 1]. Weights use diffusers naming
// (encoder.*, decoder.*, quant_conv, post_quant_conv) and stay in their file dtype. Scaling by
// scaling_factor is the caller's job, as in diffusers: pipelines encode → sample · scaling_factor, and decode
// latents / scaling_factor.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/model_config.h"
#include "models/weights.h"

namespace pigment {

// Defaults are diffusers' AutoencoderKL defaults (used for keys a config.json leaves out).
struct VaeConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  int64_t latent_channels = 4;
  std::vector<int64_t> block_out_channels = {64};
  int64_t layers_per_block = 1;
  int64_t norm_num_groups = 32;  // real SD VAEs use 32; read it, never assume it
  int64_t sample_size = 32;      // the tile size of tiled encode/decode, in pixels
  double scaling_factor = 0.18215;
  bool mid_block_add_attention = true;
  bool use_quant_conv = true;
  bool use_post_quant_conv = true;

  static VaeConfig from_config(const ModelConfig& config);
  // Pixels per latent: 2^(levels - 1).
  int64_t downscale() const { return int64_t(1) << (block_out_channels.size() - 1); }
};

// The encoder's output: a diagonal Gaussian (diffusers' DiagonalGaussianDistribution).
class LatentDistribution {
 public:
  LatentDistribution() = default;
  // moments [B, 2·latent, h, w] = mean ++ logvar along channels; logvar is clamped to [-30, 20].
  explicit LatentDistribution(const Tensor& moments);

  const Tensor& mean() const { return mean_; }
  const Tensor& logvar() const { return logvar_; }
  const Tensor& stddev() const { return std_; }  // exp(0.5 · logvar)
  const Tensor& mode() const { return mean_; }
  // mean + std · noise, for noise of the mean's shape drawn by the caller (diffusers' latent_dist.sample(generator)
  // draws randn_tensor(mean.shape, generator); pipelines/latent_sampling.h does that with pigment's generators). The
  // model layer takes the tensor, not a generator: models/ does not depend on sampling/.
  Tensor sample(const Tensor& noise) const;

 private:
  Tensor mean_, logvar_, std_;
};

// Tiled encode/decode (diffusers' enable_tiling): the image is cut into overlapping tiles of tile_sample_size
// pixels (tile_sample_size / downscale latents), each run alone, and the seams blended linearly over
// overlap·tile. Peak memory then depends on the tile, not the image. Results differ slightly from the untiled
// path because GroupNorm statistics are per tile.
struct VaeTiling {
  bool enabled = false;
  int64_t tile_sample_size = 0;  // pixels; 0 = config.sample_size (diffusers' tile_sample_min_size)
  double overlap = 0.25;         // diffusers' tile_overlap_factor
};

// Sees intermediate results under diffusers module names ("encoder.conv_in", "encoder.down_blocks.0", ...,
// "quant_conv", "post_quant_conv", "decoder.mid_block", "decoder.up_blocks.3", "decoder.conv_norm_out").
// With tiling it sees every tile.
using VaeProbe = std::function<void(const std::string& name, const Tensor& value)>;

class Vae {
 public:
  Vae() = default;
  // Checks every tensor's presence and shape now, so a wrong checkpoint fails at load, naming the tensor.
  static Vae load(const VaeConfig& config, const Weights& weights);
  static Vae load(const ModelConfig& config, const Weights& weights) {
    return load(VaeConfig::from_config(config), weights);
  }

  // image [B, in_channels, H, W] in [-1, 1] → latents of H/downscale × W/downscale (rounded up).
  LatentDistribution encode(const Tensor& image, const VaeTiling& tiling = {}, const VaeProbe& probe = {}) const;
  // latents [B, latent_channels, h, w] (unscaled) → image [B, out_channels, h·downscale, w·downscale].
  Tensor decode(const Tensor& latents, const VaeTiling& tiling = {}, const VaeProbe& probe = {}) const;

  // diffusers' tiled loop, for any map that scales space by tile_out / tile_in: x [N, C, H, W] is cut into tiles
  // of tile_in pixels every tile_in·(1-overlap) pixels; each `run` result has its first tile_out·overlap rows and
  // columns blended linearly with the (already blended) tiles above and to the left, and is cropped to
  // tile_out·(1-overlap) before the tiles are joined.
  static Tensor tiled(const Tensor& x, int64_t tile_in, int64_t tile_out, double overlap,
                      const std::function<Tensor(const Tensor&)>& run);

  const VaeConfig& config() const { return config_; }
  float scaling_factor() const { return float(config_.scaling_factor); }

 private:
  struct Resnet {
    Tensor norm1_w, norm1_b, conv1_w, conv1_b, norm2_w, norm2_b, conv2_w, conv2_b, shortcut_w, shortcut_b;
  };
  struct Attention {
    Tensor norm_w, norm_b, q_w, q_b, k_w, k_b, v_w, v_b, out_w, out_b;
  };
  struct Level {
    std::vector<Resnet> resnets;
    Tensor resample_w, resample_b;  // down/upsampler conv; undefined on the last level
  };
  struct Mid {
    Resnet first;
    std::vector<Attention> attentions;  // empty without mid-block attention
    std::vector<Resnet> rest;
  };
  struct Tower {  // encoder or decoder
    Tensor conv_in_w, conv_in_b;
    std::vector<Level> levels;
    Mid mid;
    Tensor norm_out_w, norm_out_b, conv_out_w, conv_out_b;
  };

  static Resnet load_resnet(const Weights& w, int64_t in, int64_t out);
  static Attention load_attention(const Weights& w, int64_t channels);
  static Mid load_mid(const Weights& w, int64_t channels, bool attention);

  // x by value: a caller that moves its activation in lets it be freed inside, once no longer needed.
  Tensor resnet(const Resnet& r, Tensor x) const;
  Tensor attention(const Attention& a, const Tensor& x) const;
  Tensor mid(const Mid& m, Tensor x) const;
  Tensor norm(const Tensor& x, const Tensor& w, const Tensor& b) const;
  Tensor norm_silu(const Tensor& x, const Tensor& w, const Tensor& b) const;
  // conv_norm_out + silu of a tower.
  Tensor norm_out(const Tensor& x, const Tower& t, const std::string& name, const VaeProbe& probe) const;
  // Encoder + quant_conv: image → moments.
  Tensor encode_moments(const Tensor& image, const VaeProbe& probe) const;
  // post_quant_conv + decoder.
  Tensor decode_untiled(const Tensor& latents, const VaeProbe& probe) const;
  int64_t tile_sample_size(const VaeTiling& t) const;

  VaeConfig config_;
  Tower encoder_, decoder_;
  Tensor quant_w_, quant_b_, post_quant_w_, post_quant_b_;  // undefined when the config turns them off
};

}  // namespace pigment
