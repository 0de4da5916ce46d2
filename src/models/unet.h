// Stable Diffusion's noise predictor: diffusers UNet2DConditionModel (SD1, SD2, SDXL, inpainting), exact in float32.
//
//   t ──time_proj (sinusoids)──time_embedding (MLP)──┐ (+ SDXL add_embedding of [text_embeds, sinusoids(time_ids)])
//                                                     ▼ emb: added per channel inside every resnet
//   sample ─conv_in─ down_blocks ──────────── mid_block ──────────── up_blocks ─ GroupNorm ─ silu ─ conv_out ─ ε̂
//                     │ every resnet/transformer/downsampler output ──▲ skip, concatenated at the matching up resnet
//   text states (encoder_hidden_states) ─ cross-attention in every transformer
//
// The encoder half (time conditioning, conv_in, down blocks, mid block) is UNetEncoder, shared with ControlNet.
#pragma once
#include <string>
#include <vector>

#include "models/unet_blocks.h"
#include "models/weights.h"

namespace pigment {

// The fields of diffusers' UNet2DConditionModel (and ControlNetModel) config.json that define the architecture,
// normalised: per-block settings are expanded to lists, and diffusers' naming quirk is resolved (SD1/SD2 configs put
// the number of heads in `attention_head_dim` when `num_attention_heads` is null).
struct UNetConfig {
  int64_t in_channels = 4, out_channels = 4;
  std::vector<int64_t> block_out_channels{320, 640, 1280, 1280};
  std::vector<std::string> down_block_types, up_block_types;  // up_block_types is empty for a ControlNet
  std::string mid_block_type = "UNetMidBlock2DCrossAttn";    // "" when the config has none
  std::vector<int> layers_per_block;                          // per down block
  std::vector<int> num_attention_heads;                       // per down block
  std::vector<int64_t> cross_attention_dim;                   // per down block
  std::vector<std::vector<int>> down_transformer_layers;      // per down block, per resnet
  std::vector<int> mid_transformer_layers;                    // per mid-block layer
  std::vector<std::vector<int>> up_transformer_layers;        // per up block, per resnet
  bool use_linear_projection = false;
  bool upcast_attention = false;  // float32 already: no effect
  int norm_num_groups = 32;
  float norm_eps = 1e-5f;
  bool flip_sin_to_cos = true;
  float freq_shift = 0;
  int downsample_padding = 1;
  float mid_block_scale_factor = 1;
  bool center_input_sample = false;
  int conv_in_kernel = 3, conv_out_kernel = 3;
  int64_t time_embed_dim = 0;          // time_embedding_dim, or 4 · block_out_channels[0]
  std::string addition_embed_type;     // "" or "text_time" (SDXL)
  int addition_time_embed_dim = 0;     // SDXL: sinusoid width per time_ids value
  int64_t projection_class_embeddings_input_dim = 0;  // SDXL: text_embeds width + 6 · addition_time_embed_dim

  // Parses config.json text; `source` names the file in errors. Options pigment does not implement are rejected.
  static UNetConfig from_json(const std::string& json_text, const std::string& source = "config.json");
  static UNetConfig load(const std::string& path);
};

// Everything a forward pass may take besides sample, timesteps and text states.
struct UNetExtras {
  // SDXL "text_time" conditioning: pooled text embedding [B, D] and time_ids [B, 6]
  // (original h, w, crop top, left, target h, w).
  Tensor text_embeds, time_ids;
  // ControlNet residuals, added as diffusers does: down residual i to skip connection i (conv_in output first),
  // the mid residual to the mid block output. Give both or neither.
  std::vector<Tensor> down_block_additional_residuals;
  Tensor mid_block_additional_residual;
  UNetHooks hooks;
};

// The encoder half shared by the UNet and ControlNet: time conditioning, conv_in, down blocks and mid block.
class UNetEncoder {
 public:
  UNetEncoder() = default;
  UNetEncoder(const UNetConfig& cfg, const Weights& w);
  // emb [B, time_embed_dim]: time_embedding(time_proj(t)), plus add_embedding(...) for SDXL.
  // `timesteps` has 1 entry (broadcast to the batch) or `batch` entries.
  Tensor time_embedding(const std::vector<float>& timesteps, int64_t batch, const UNetExtras& extras) const;
  Tensor conv_in(const Tensor& sample, const UNetHooks& hooks) const;
  // Runs the down blocks; `skips` must hold conv_in's output and receives every block's skip connections.
  Tensor down(Tensor x, const Tensor& emb, const Tensor& context, std::vector<Tensor>& skips,
              const UNetHooks& hooks) const;
  Tensor mid(Tensor x, const Tensor& emb, const Tensor& context, const UNetHooks& hooks) const;
  bool has_mid_block() const { return has_mid_; }
  const std::vector<DownBlock>& down_blocks() const { return down_blocks_; }

 private:
  UNetConfig cfg_;
  std::string source_;
  TimestepEmbedding time_embedding_, add_embedding_;
  Conv2d conv_in_;
  std::vector<DownBlock> down_blocks_;
  MidBlock2DCrossAttn mid_block_;
  bool has_mid_ = false;
};

class UNet {
 public:
  UNet(const UNetConfig& cfg, const Weights& w);
  // A diffusers folder: config.json + diffusion_pytorch_model.safetensors.
  static UNet load(const std::string& model_dir);

  // sample [B, in_channels, H, W]; timesteps: 1 or B values (ints or fractional, as the sampler gives them);
  // encoder_hidden_states [B, tokens, cross_attention_dim] → noise prediction [B, out_channels, H, W].
  Tensor forward(const Tensor& sample, const std::vector<float>& timesteps, const Tensor& encoder_hidden_states,
                 const UNetExtras& extras = {}) const;
  const UNetConfig& config() const { return cfg_; }
  const Weights& weights() const { return weights_; }

 private:
  UNetConfig cfg_;
  Weights weights_;
  UNetEncoder encoder_;
  std::vector<UpBlock> up_blocks_;
  GroupNorm conv_norm_out_;
  Conv2d conv_out_;
};

// Weights of a diffusers component folder (config.json beside diffusion_pytorch_model.*), named as diffusers names them.
Weights load_diffusers_weights(const std::string& model_dir);

}  // namespace pigment
