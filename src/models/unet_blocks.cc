#include "models/unet_blocks.h"

#include "ops/precision.h"

namespace pigment {

namespace {

ResnetBlock2D make_resnet(const Weights& w, int i, int64_t in, int64_t out, const BlockParams& p,
                          float output_scale_factor = 1.f) {
  ResnetBlock2D::Params rp;
  rp.in_channels = in;
  rp.out_channels = out;
  rp.temb_channels = p.temb_channels;
  rp.groups = p.groups;
  rp.eps = p.eps;
  rp.output_scale_factor = output_scale_factor;
  return ResnetBlock2D(w.sub("resnets." + std::to_string(i)), rp);
}

Transformer2D make_transformer(const Weights& w, int i, int64_t channels, const BlockParams& p) {
  Transformer2D::Params tp;
  tp.channels = channels;
  tp.heads = p.heads;
  PIG_CHECK(p.heads > 0 && channels % p.heads == 0, w.source(), ": ", w.prefix(), ": ", channels,
            " channels do not split into ", p.heads, " attention heads");
  tp.head_dim = channels / p.heads;
  tp.context_dim = p.context_dim;
  PIG_CHECK(size_t(i) < p.transformer_layers.size(), w.source(), ": ", w.prefix(),
            ": transformer_layers_per_block has no entry for layer ", i);
  tp.layers = p.transformer_layers[i];
  tp.groups = p.groups;
  tp.linear_projection = p.linear_projection;
  return Transformer2D(w.sub("attentions." + std::to_string(i)), tp);
}

}  // namespace

TimestepEmbedding::TimestepEmbedding(const Weights& w, int64_t in, int64_t out) {
  linear_1_ = Linear(w, "linear_1", in, out);
  linear_2_ = Linear(w, "linear_2", out, out);
}

Tensor TimestepEmbedding::forward(const Tensor& x, const UNetHooks& hooks) const {
  return linear_2_(ops::silu(linear_1_(x, hooks)), hooks);
}

DownBlock::DownBlock(const Weights& w, const BlockParams& p, bool add_downsample, int downsample_padding) {
  for (int i = 0; i < p.num_layers; ++i) {
    resnets_.push_back(make_resnet(w, i, i == 0 ? p.in_channels : p.out_channels, p.out_channels, p));
    if (p.cross_attention) attentions_.push_back(make_transformer(w, i, p.out_channels, p));
  }
  if (add_downsample) {
    // Downsample2D: a stride-2 3x3 conv; with padding 0 diffusers pads only the bottom and right edges by one.
    ops::Conv2dParams cp = downsample_padding == 0 ? ops::Conv2dParams{2, 0, 0, 1, 1}
                                                   : ops::Conv2dParams::same(downsample_padding, 2);
    downsample_ = Conv2d(w, "downsamplers.0.conv", p.out_channels, p.out_channels, 3, cp);
  }
}

Tensor DownBlock::forward(Tensor x, const Tensor& temb, const Tensor& context, std::vector<Tensor>& skips,
                          const UNetHooks& hooks) const {
  for (size_t i = 0; i < resnets_.size(); ++i) {
    x = resnets_[i].forward(x, temb, hooks);
    if (!attentions_.empty()) x = attentions_[i].forward(x, context, hooks);
    skips.push_back(x);
  }
  if (downsample_.defined()) {
    // The resamplers' output is the block's state itself (no residual sum, no norm after it): not in int8
    // (ops/precision.h).
    const ops::ScopedPrecision no_int8(ops::without_int8());
    x = downsample_(x, hooks);
    skips.push_back(x);
  }
  return x;
}

MidBlock2DCrossAttn::MidBlock2DCrossAttn(const Weights& w, const BlockParams& p, float output_scale_factor) {
  int64_t c = p.in_channels;
  resnets_.push_back(make_resnet(w, 0, c, c, p, output_scale_factor));
  for (int i = 0; i < p.num_layers; ++i) {
    attentions_.push_back(make_transformer(w, i, c, p));
    resnets_.push_back(make_resnet(w, i + 1, c, c, p, output_scale_factor));
  }
}

Tensor MidBlock2DCrossAttn::forward(Tensor x, const Tensor& temb, const Tensor& context,
                                    const UNetHooks& hooks) const {
  x = resnets_[0].forward(x, temb, hooks);
  for (size_t i = 0; i < attentions_.size(); ++i) {
    x = attentions_[i].forward(x, context, hooks);
    x = resnets_[i + 1].forward(x, temb, hooks);
  }
  return x;
}

UpBlock::UpBlock(const Weights& w, const BlockParams& p, int64_t prev_output_channels, bool add_upsample) {
  for (int i = 0; i < p.num_layers; ++i) {
    int64_t skip_channels = i == p.num_layers - 1 ? p.in_channels : p.out_channels;
    int64_t resnet_in = i == 0 ? prev_output_channels : p.out_channels;
    resnets_.push_back(make_resnet(w, i, resnet_in + skip_channels, p.out_channels, p));
    if (p.cross_attention) attentions_.push_back(make_transformer(w, i, p.out_channels, p));
  }
  if (add_upsample) upsample_ = Conv2d::same(w, "upsamplers.0.conv", p.out_channels, p.out_channels, 3);
}

Tensor UpBlock::forward(Tensor x, const Tensor& temb, const Tensor& context, std::vector<Tensor>& skips,
                        std::optional<std::pair<int64_t, int64_t>> upsample_to, const UNetHooks& hooks) const {
  for (size_t i = 0; i < resnets_.size(); ++i) {
    PIG_CHECK(!skips.empty(), "UNet up block: ran out of skip connections");
    x = ops::concat({x, skips.back()}, 1);
    skips.pop_back();
    x = resnets_[i].forward(x, temb, hooks);
    if (!attentions_.empty()) x = attentions_[i].forward(x, context, hooks);
  }
  if (upsample_.defined()) {
    x = ops::upsample_nearest2x(x);
    if (upsample_to && (x.dim(2) != upsample_to->first || x.dim(3) != upsample_to->second)) {
      x = ops::slice(x, 2, 0, upsample_to->first);
      x = ops::slice(x, 3, 0, upsample_to->second);
    }
    const ops::ScopedPrecision no_int8(ops::without_int8());  // as the downsampler's
    x = upsample_(x, hooks);
  }
  return x;
}

}  // namespace pigment
