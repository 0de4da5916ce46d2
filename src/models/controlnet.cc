#include "models/controlnet.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace pigment {

ControlNetConfig ControlNetConfig::from_json(const std::string& text, const std::string& source) {
  ControlNetConfig c;
  c.unet = UNetConfig::from_json(text, source);  // validates JSON and the shared fields
  nlohmann::json j = nlohmann::json::parse(text);
  auto present = [&](const char* k) { return j.contains(k) && !j[k].is_null(); };
  if (present("conditioning_channels")) {
    PIG_CHECK(j["conditioning_channels"].is_number_integer(), source, ": 'conditioning_channels' should be an integer");
    c.conditioning_channels = j["conditioning_channels"].get<int64_t>();
  }
  if (present("conditioning_embedding_out_channels")) {
    const auto& v = j["conditioning_embedding_out_channels"];
    PIG_CHECK(v.is_array() && !v.empty(), source, ": 'conditioning_embedding_out_channels' should be a list of integers");
    c.conditioning_embedding_out_channels.clear();
    for (const auto& e : v) {
      PIG_CHECK(e.is_number_integer(), source, ": 'conditioning_embedding_out_channels' should list integers");
      c.conditioning_embedding_out_channels.push_back(e.get<int64_t>());
    }
  }
  if (present("controlnet_conditioning_channel_order")) {
    PIG_CHECK(j["controlnet_conditioning_channel_order"].is_string(), source,
              ": 'controlnet_conditioning_channel_order' should be \"rgb\" or \"bgr\"");
    c.channel_order = j["controlnet_conditioning_channel_order"].get<std::string>();
  }
  PIG_CHECK(c.channel_order == "rgb" || c.channel_order == "bgr", source,
            ": controlnet_conditioning_channel_order '", c.channel_order, "' should be \"rgb\" or \"bgr\"");
  if (present("global_pool_conditions")) {
    PIG_CHECK(j["global_pool_conditions"].is_boolean(), source, ": 'global_pool_conditions' should be true or false");
    c.global_pool_conditions = j["global_pool_conditions"].get<bool>();
  }
  return c;
}

ControlNetConfig ControlNetConfig::load(const std::string& path) {
  std::ifstream f(path);
  PIG_CHECK(f, path, ": cannot open the ControlNet config");
  std::stringstream ss;
  ss << f.rdbuf();
  return from_json(ss.str(), path);
}

std::vector<float> controlnet_guess_mode_scales(size_t count, float conditioning_scale) {
  // torch.logspace(-1, 0, count) in float32 on the CPU: the step is a double, the first half counts up from the start
  // and the second half down from the end, each value a double pow rounded to float.
  std::vector<float> s(count);
  const float start = -1.f, end = 0.f;
  double step = count > 1 ? double(end - start) / double(count - 1) : 0.0;
  size_t halfway = count / 2;
  for (size_t i = 0; i < count; ++i) {
    double e = i < halfway ? start + step * double(i) : end - step * double(count - i - 1);
    s[i] = float(std::pow(10.0, e)) * conditioning_scale;
  }
  return s;
}

ControlNet::ControlNet(const ControlNetConfig& cfg, const Weights& w) : cfg_(cfg), encoder_(cfg.unet, w) {
  const auto& ch = cfg.conditioning_embedding_out_channels;
  const auto& boc = cfg.unet.block_out_channels;
  // ControlNetConditioningEmbedding: conv_in, then per level a 3x3 conv and a stride-2 3x3 conv, then conv_out.
  Weights ce = w.sub("controlnet_cond_embedding");
  cond_conv_in_ = Conv2d::same(ce, "conv_in", cfg.conditioning_channels, ch[0], 3);
  for (size_t i = 0; i + 1 < ch.size(); ++i) {
    cond_blocks_.push_back(Conv2d::same(ce, "blocks." + std::to_string(2 * i), ch[i], ch[i], 3));
    cond_blocks_.push_back(
        Conv2d(ce, "blocks." + std::to_string(2 * i + 1), ch[i], ch[i + 1], 3, ops::Conv2dParams::same(1, 2)));
  }
  cond_conv_out_ = Conv2d::same(ce, "conv_out", ch.back(), boc[0], 3);

  // One zero conv per UNet skip connection: conv_in's output, each resnet of each block, each downsampler.
  int k = 0;
  auto zero_conv = [&](int64_t c) { zero_convs_.push_back(Conv2d::same(w, "controlnet_down_blocks." + std::to_string(k++), c, c, 1)); };
  zero_conv(boc[0]);
  for (size_t i = 0; i < boc.size(); ++i) {
    for (int l = 0; l < cfg.unet.layers_per_block[i]; ++l) zero_conv(boc[i]);
    if (i + 1 < boc.size()) zero_conv(boc[i]);
  }
  PIG_CHECK(encoder_.has_mid_block(), w.source(), ": a ControlNet needs a mid block (mid_block_type)");
  zero_conv_mid_ = Conv2d::same(w, "controlnet_mid_block", boc.back(), boc.back(), 1);
}

ControlNet ControlNet::load(const std::string& model_dir) {
  ControlNetConfig cfg = ControlNetConfig::load((std::filesystem::path(model_dir) / "config.json").string());
  return ControlNet(cfg, load_diffusers_weights(model_dir));
}

Tensor ControlNet::embed_condition(const Tensor& cond, const UNetHooks& hooks) const {
  Tensor x = ops::silu(cond_conv_in_(cond, hooks));
  for (const auto& conv : cond_blocks_) x = ops::silu(conv(x, hooks));
  return cond_conv_out_(x, hooks);
}

ControlNetOutput ControlNet::forward(const Tensor& sample, const std::vector<float>& timesteps,
                                     const Tensor& encoder_hidden_states, const Tensor& controlnet_cond,
                                     float conditioning_scale, bool guess_mode, const UNetExtras& extras) const {
  const UNetHooks& hooks = extras.hooks;
  PIG_CHECK(sample.ndim() == 4, "ControlNet: sample has shape ", shape_str(sample.shape()), ", expected [B, C, H, W]");
  int64_t batch = sample.dim(0);
  PIG_CHECK(controlnet_cond.ndim() == 4 && controlnet_cond.dim(0) == batch &&
                controlnet_cond.dim(1) == cfg_.conditioning_channels,
            "ControlNet: control image has shape ", shape_str(controlnet_cond.shape()), ", expected [", batch, ", ",
            cfg_.conditioning_channels, ", H, W]");
  const Tensor& ctx = encoder_hidden_states;
  PIG_CHECK(ctx.defined() && ctx.ndim() == 3 && ctx.dim(0) == batch, "ControlNet: encoder_hidden_states has shape ",
            ctx.defined() ? shape_str(ctx.shape()) : "(none)", ", expected [", batch, ", tokens, dim]");

  Tensor cond = controlnet_cond;
  if (cfg_.channel_order == "bgr") {
    std::vector<Tensor> planes;
    for (int64_t c = cond.dim(1) - 1; c >= 0; --c) planes.push_back(ops::slice(cond, 1, c, c + 1));
    cond = ops::concat(planes, 1);
  }

  Tensor emb = encoder_.time_embedding(timesteps, batch, extras);
  Tensor x = encoder_.conv_in(sample, hooks);
  Tensor cond_emb = embed_condition(cond, hooks);
  hooks.emit("controlnet_cond_embedding", cond_emb);
  PIG_CHECK(cond_emb.shape() == x.shape(), "ControlNet: the control image embeds to ", shape_str(cond_emb.shape()),
            " but the latent is ", shape_str(x.shape()), " after conv_in (the image must be 8x the latent size)");
  x = ops::add(x, cond_emb);

  std::vector<Tensor> skips{x};
  x = encoder_.down(x, emb, ctx, skips, hooks);
  x = encoder_.mid(x, emb, ctx, hooks);
  PIG_CHECK(skips.size() == zero_convs_.size(), "ControlNet: ", skips.size(), " skip connections for ",
            zero_convs_.size(), " controlnet_down_blocks");

  ControlNetOutput out;
  std::vector<float> scales = guess_mode && !cfg_.global_pool_conditions
                                  ? controlnet_guess_mode_scales(skips.size() + 1, conditioning_scale)
                                  : std::vector<float>(skips.size() + 1, conditioning_scale);
  for (size_t i = 0; i < skips.size(); ++i)
    out.down_block_residuals.push_back(ops::scale(zero_convs_[i](skips[i], hooks), scales[i]));
  out.mid_block_residual = ops::scale(zero_conv_mid_(x, hooks), scales.back());

  if (cfg_.global_pool_conditions) {
    // Mean over space, kept as [B, C, 1, 1] and broadcast when the UNet adds it.
    auto pool = [](const Tensor& t) {
      int64_t hw = t.dim(2) * t.dim(3);
      Tensor m = ops::matmul(t.reshape({t.dim(0) * t.dim(1), hw}), Tensor::full({hw, 1}, 1.f / float(hw)));
      return m.reshape({t.dim(0), t.dim(1), 1, 1});
    };
    for (auto& r : out.down_block_residuals) r = pool(r);
    out.mid_block_residual = pool(out.mid_block_residual);
  }
  return out;
}

}  // namespace pigment
