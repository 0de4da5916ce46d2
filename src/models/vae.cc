#include "models/vae.h"

#include <algorithm>
#include <cmath>

#include "ops/autograd.h"
#include "ops/conv2d_bands.h"
#include "ops/ops.h"

namespace pigment {

namespace {
constexpr float kEps = 1e-6f;  // every GroupNorm of AutoencoderKL

// The 3x3 convolutions run in row bands where the image is large (ops/conv2d_bands.h): the same bits as one
// convolution, with a bounded Winograd work space (a 256-channel 512x512 convolution would take 1.2 GB).
Tensor conv3x3(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor* residual = nullptr) {
  ops::BandOptions o;
  o.residual = residual;
  return ops::conv3x3_banded(x, w, &b, o);
}
Tensor conv1x1(const Tensor& x, const Tensor& w, const Tensor& b) {
  return ops::conv2d(x, w, &b, ops::Conv2dParams::same(0));
}
}  // namespace

// ---- config ----

VaeConfig VaeConfig::from_config(const ModelConfig& config) {
  VaeConfig c;
  const std::string& src = config.source();
  c.in_channels = config.get_int("in_channels", c.in_channels);
  c.out_channels = config.get_int("out_channels", c.out_channels);
  c.latent_channels = config.get_int("latent_channels", c.latent_channels);
  if (config.has("block_out_channels")) c.block_out_channels = config.get_ints("block_out_channels");
  c.layers_per_block = config.get_int("layers_per_block", c.layers_per_block);
  c.norm_num_groups = config.get_int("norm_num_groups", c.norm_num_groups);
  c.sample_size = config.has("sample_size") && config.json()["sample_size"].is_array()
                      ? config.get_ints("sample_size").at(0)
                      : config.get_int("sample_size", c.sample_size);
  c.scaling_factor = config.get_double("scaling_factor", c.scaling_factor);
  c.mid_block_add_attention = config.get_bool("mid_block_add_attention", c.mid_block_add_attention);
  c.use_quant_conv = config.get_bool("use_quant_conv", c.use_quant_conv);
  c.use_post_quant_conv = config.get_bool("use_post_quant_conv", c.use_post_quant_conv);
  PIG_CHECK(config.get_string("act_fn", "silu") == "silu", src, ": act_fn '", config.get_string("act_fn"),
            "' is not supported (silu)");
  const size_t levels = c.block_out_channels.size();
  PIG_CHECK(levels >= 1, src, ": block_out_channels is empty");
  auto check_types = [&](const char* key, const char* expected) {
    if (!config.has(key)) return;
    auto types = config.get_strings(key);
    PIG_CHECK(types.size() == levels, src, ": ", key, " has ", types.size(), " entries, block_out_channels ", levels);
    for (const auto& t : types) PIG_CHECK(t == expected, src, ": ", key, " entry '", t, "' is not supported (", expected, ")");
  };
  check_types("down_block_types", "DownEncoderBlock2D");
  check_types("up_block_types", "UpDecoderBlock2D");
  PIG_CHECK(c.in_channels > 0 && c.out_channels > 0 && c.latent_channels > 0 && c.layers_per_block > 0, src,
            ": channel counts and layers_per_block must be positive");
  PIG_CHECK(c.norm_num_groups > 0, src, ": norm_num_groups must be positive");
  for (int64_t ch : c.block_out_channels)
    PIG_CHECK(ch > 0 && ch % c.norm_num_groups == 0, src, ": block_out_channels entry ", ch,
              " does not split into norm_num_groups = ", c.norm_num_groups);
  PIG_CHECK(c.sample_size > 0, src, ": sample_size must be positive");
  return c;
}

// ---- posterior ----

LatentDistribution::LatentDistribution(const Tensor& moments) {
  PIG_CHECK(moments.ndim() == 4 && moments.dim(1) % 2 == 0, "VAE posterior: moments ", shape_str(moments.shape()),
            " are not [B, 2·latent, h, w]");
  auto halves = ops::chunk(moments, 2, 1);
  mean_ = halves[0];
  // Ops, not a loop, so that a training tape sees the posterior (VAE fine-tuning, the KL term); the same bits.
  logvar_ = ops::clamp(halves[1], -30.f, 20.f);
  std_ = ops::exp(ops::scale(logvar_, 0.5f));
}

Tensor LatentDistribution::sample(const Tensor& noise) const {
  PIG_CHECK(noise.shape() == mean_.shape(), "VAE posterior: noise ", shape_str(noise.shape()), " is not the latent shape ",
            shape_str(mean_.shape()));
  return ops::add(mean_, ops::mul(std_, noise));
}

// ---- loading ----

Vae::Resnet Vae::load_resnet(const Weights& w, int64_t in, int64_t out) {
  Resnet r;
  r.norm1_w = w.get("norm1.weight", {in});
  r.norm1_b = w.get("norm1.bias", {in});
  r.conv1_w = w.get("conv1.weight", {out, in, 3, 3});
  r.conv1_b = w.get("conv1.bias", {out});
  r.norm2_w = w.get("norm2.weight", {out});
  r.norm2_b = w.get("norm2.bias", {out});
  r.conv2_w = w.get("conv2.weight", {out, out, 3, 3});
  r.conv2_b = w.get("conv2.bias", {out});
  if (in != out) {
    r.shortcut_w = w.get("conv_shortcut.weight", {out, in, 1, 1});
    r.shortcut_b = w.get("conv_shortcut.bias", {out});
  }
  return r;
}

Vae::Attention Vae::load_attention(const Weights& w, int64_t C) {
  // diffusers 0.25 names (to_q, ...), or the pre-0.14 ones (query, ...) that older diffusers folders still carry.
  // Single-file checkpoints store these projections as 1x1 convolutions: accept [C, C, 1, 1] too.
  auto linear = [&](const std::string& name, const std::string& old_name, Tensor& weight, Tensor& bias) {
    std::string n = !w.has(name + ".weight") && w.has(old_name + ".weight") ? old_name : name;
    weight = w.get(n + ".weight");
    if (weight.ndim() == 4 && weight.dim(2) == 1 && weight.dim(3) == 1) weight = weight.reshape({weight.dim(0), weight.dim(1)});
    PIG_CHECK(weight.shape() == Shape({C, C}), w.source(), ": tensor '", w.prefix() + n, ".weight' has shape ",
              shape_str(weight.shape()), ", expected ", shape_str({C, C}));
    bias = w.get(n + ".bias", {C});
  };
  Attention a;
  a.norm_w = w.get("group_norm.weight", {C});
  a.norm_b = w.get("group_norm.bias", {C});
  linear("to_q", "query", a.q_w, a.q_b);
  linear("to_k", "key", a.k_w, a.k_b);
  linear("to_v", "value", a.v_w, a.v_b);
  linear("to_out.0", "proj_attn", a.out_w, a.out_b);
  return a;
}

Vae::Mid Vae::load_mid(const Weights& w, int64_t C, bool attention) {
  Mid m;
  m.first = load_resnet(w.sub("resnets.0"), C, C);
  if (attention) m.attentions.push_back(load_attention(w.sub("attentions.0"), C));
  m.rest.push_back(load_resnet(w.sub("resnets.1"), C, C));
  return m;
}

Vae Vae::load(const VaeConfig& config, const Weights& weights) {
  Vae v;
  v.config_ = config;
  const auto& ch = config.block_out_channels;
  const int64_t n = int64_t(ch.size()), L = config.latent_channels;

  Weights e = weights.sub("encoder");
  v.encoder_.conv_in_w = e.get("conv_in.weight", {ch[0], config.in_channels, 3, 3});
  v.encoder_.conv_in_b = e.get("conv_in.bias", {ch[0]});
  for (int64_t i = 0; i < n; ++i) {
    Weights b = e.sub("down_blocks." + std::to_string(i));
    Level lv;
    int64_t in = i == 0 ? ch[0] : ch[i - 1];
    for (int64_t r = 0; r < config.layers_per_block; ++r)
      lv.resnets.push_back(load_resnet(b.sub("resnets." + std::to_string(r)), r == 0 ? in : ch[i], ch[i]));
    if (i + 1 < n) {
      lv.resample_w = b.get("downsamplers.0.conv.weight", {ch[i], ch[i], 3, 3});
      lv.resample_b = b.get("downsamplers.0.conv.bias", {ch[i]});
    }
    v.encoder_.levels.push_back(std::move(lv));
  }
  v.encoder_.mid = load_mid(e.sub("mid_block"), ch.back(), config.mid_block_add_attention);
  v.encoder_.norm_out_w = e.get("conv_norm_out.weight", {ch.back()});
  v.encoder_.norm_out_b = e.get("conv_norm_out.bias", {ch.back()});
  v.encoder_.conv_out_w = e.get("conv_out.weight", {2 * L, ch.back(), 3, 3});
  v.encoder_.conv_out_b = e.get("conv_out.bias", {2 * L});
  if (config.use_quant_conv) {
    v.quant_w_ = weights.get("quant_conv.weight", {2 * L, 2 * L, 1, 1});
    v.quant_b_ = weights.get("quant_conv.bias", {2 * L});
  }

  Weights d = weights.sub("decoder");
  if (config.use_post_quant_conv) {
    v.post_quant_w_ = weights.get("post_quant_conv.weight", {L, L, 1, 1});
    v.post_quant_b_ = weights.get("post_quant_conv.bias", {L});
  }
  v.decoder_.conv_in_w = d.get("conv_in.weight", {ch.back(), L, 3, 3});
  v.decoder_.conv_in_b = d.get("conv_in.bias", {ch.back()});
  v.decoder_.mid = load_mid(d.sub("mid_block"), ch.back(), config.mid_block_add_attention);
  int64_t prev = ch.back();
  for (int64_t i = 0; i < n; ++i) {
    Weights b = d.sub("up_blocks." + std::to_string(i));
    int64_t out = ch[n - 1 - i];
    Level lv;
    for (int64_t r = 0; r <= config.layers_per_block; ++r)
      lv.resnets.push_back(load_resnet(b.sub("resnets." + std::to_string(r)), r == 0 ? prev : out, out));
    if (i + 1 < n) {
      lv.resample_w = b.get("upsamplers.0.conv.weight", {out, out, 3, 3});
      lv.resample_b = b.get("upsamplers.0.conv.bias", {out});
    }
    v.decoder_.levels.push_back(std::move(lv));
    prev = out;
  }
  v.decoder_.norm_out_w = d.get("conv_norm_out.weight", {ch[0]});
  v.decoder_.norm_out_b = d.get("conv_norm_out.bias", {ch[0]});
  v.decoder_.conv_out_w = d.get("conv_out.weight", {config.out_channels, ch[0], 3, 3});
  v.decoder_.conv_out_b = d.get("conv_out.bias", {config.out_channels});
  return v;
}

// ---- blocks ----

Tensor Vae::norm(const Tensor& x, const Tensor& w, const Tensor& b) const {
  return ops::group_norm(x, int(config_.norm_num_groups), w, b, kEps);
}

Tensor Vae::norm_silu(const Tensor& x, const Tensor& w, const Tensor& b) const {
  return ops::group_norm_silu(x, int(config_.norm_num_groups), w, b, kEps);
}

Tensor Vae::resnet(const Resnet& r, Tensor x) const {
  // The shortcut (x, or its 1x1 projection when the channel count changes) is added by conv2 as it stores. With a
  // projection, x is dropped as soon as both of its uses are done (the caller moves it in), before conv1 runs.
  Tensor shortcut = r.shortcut_w.defined() ? conv1x1(x, r.shortcut_w, r.shortcut_b) : x;
  Tensor h = norm_silu(x, r.norm1_w, r.norm1_b);
  x = Tensor();
  h = conv3x3(h, r.conv1_w, r.conv1_b);
  h = norm_silu(h, r.norm2_w, r.norm2_b);
  return conv3x3(h, r.conv2_w, r.conv2_b, &shortcut);
}

Tensor Vae::attention(const Attention& a, const Tensor& x) const {
  // One head over all channels, every pixel a token; GroupNorm first, residual after.
  const int64_t C = x.dim(1), H = x.dim(2), W = x.dim(3);
  Tensor h = ops::nchw_to_nlc(norm(x, a.norm_w, a.norm_b));
  Tensor q = ops::linear(h, a.q_w, &a.q_b);
  Tensor k = ops::linear(h, a.k_w, &a.k_b);
  Tensor v = ops::linear(h, a.v_w, &a.v_b);
  h = ops::attention(q, k, v, 1, float(1.0 / std::sqrt(double(C))));
  h = ops::nlc_to_nchw(ops::linear(h, a.out_w, &a.out_b), H, W);
  return ops::add(h, x);
}

Tensor Vae::norm_out(const Tensor& x, const Tower& t, const std::string& name, const VaeProbe& probe) const {
  if (!probe) return norm_silu(x, t.norm_out_w, t.norm_out_b);
  // A probe wants the norm's own output, before the activation.
  Tensor h = norm(x, t.norm_out_w, t.norm_out_b);
  probe(name, h);
  return ops::silu(h);
}

Tensor Vae::mid(const Mid& m, Tensor x) const {
  Tensor h = resnet(m.first, std::move(x));
  for (size_t i = 0; i < m.rest.size(); ++i) {
    if (i < m.attentions.size()) h = attention(m.attentions[i], h);
    h = resnet(m.rest[i], std::move(h));
  }
  return h;
}

Tensor Vae::encode_moments(const Tensor& image, const VaeProbe& probe) const {
  auto see = [&](const std::string& name, const Tensor& t) {
    if (probe) probe(name, t);
  };
  PIG_CHECK(image.ndim() == 4 && image.dim(1) == config_.in_channels, "VAE encode: image ", shape_str(image.shape()),
            " is not [B, ", config_.in_channels, ", H, W]");
  Tensor h = conv3x3(image, encoder_.conv_in_w, encoder_.conv_in_b);
  see("encoder.conv_in", h);
  for (size_t i = 0; i < encoder_.levels.size(); ++i) {
    const Level& lv = encoder_.levels[i];
    for (const auto& r : lv.resnets) h = resnet(r, std::move(h));
    if (lv.resample_w.defined()) {
      // diffusers' Downsample2D with padding 0: pad right and bottom by one, then a stride-2 3x3 conv.
      ops::Conv2dParams p;
      p.stride = 2;
      p.pad_bottom = p.pad_right = 1;
      h = ops::conv2d(h, lv.resample_w, &lv.resample_b, p);
    }
    see("encoder.down_blocks." + std::to_string(i), h);
  }
  h = mid(encoder_.mid, std::move(h));
  see("encoder.mid_block", h);
  h = norm_out(h, encoder_, "encoder.conv_norm_out", probe);
  h = conv3x3(h, encoder_.conv_out_w, encoder_.conv_out_b);
  see("encoder.conv_out", h);
  if (quant_w_.defined()) {
    h = conv1x1(h, quant_w_, quant_b_);
    see("quant_conv", h);
  }
  return h;
}

Tensor Vae::decode_untiled(const Tensor& latents, const VaeProbe& probe) const {
  auto see = [&](const std::string& name, const Tensor& t) {
    if (probe) probe(name, t);
  };
  PIG_CHECK(latents.ndim() == 4 && latents.dim(1) == config_.latent_channels, "VAE decode: latents ",
            shape_str(latents.shape()), " are not [B, ", config_.latent_channels, ", h, w]");
  Tensor h = latents;
  if (post_quant_w_.defined()) {
    h = conv1x1(h, post_quant_w_, post_quant_b_);
    see("post_quant_conv", h);
  }
  h = conv3x3(h, decoder_.conv_in_w, decoder_.conv_in_b);
  see("decoder.conv_in", h);
  h = mid(decoder_.mid, std::move(h));
  see("decoder.mid_block", h);
  for (size_t i = 0; i < decoder_.levels.size(); ++i) {
    const Level& lv = decoder_.levels[i];
    for (const auto& r : lv.resnets) h = resnet(r, std::move(h));
    if (lv.resample_w.defined()) {
      // Upsample2D (nearest 2x, then a 3x3 conv): the upsampled image, 4x the size of h, is made band by band.
      h = ops::upsample2x_conv3x3_banded(h, lv.resample_w, &lv.resample_b);
    }
    see("decoder.up_blocks." + std::to_string(i), h);
  }
  h = norm_out(h, decoder_, "decoder.conv_norm_out", probe);
  return conv3x3(h, decoder_.conv_out_w, decoder_.conv_out_b);
}

// ---- tiling ----

namespace {
// The blend weights of row (or column) k: a's fades out, b's in.
float blend_weight_a(int64_t k, int64_t extent) { return float(1.0 - double(k) / double(extent)); }
float blend_weight_b(int64_t k, int64_t extent) { return float(double(k) / double(extent)); }

// blend() under a training tape: the same sums with recorded ops, b replaced by a new tensor.
void blend_recorded(const Tensor& a, Tensor& b, int64_t extent, int dim) {
  std::vector<float> fa, fb;
  for (int64_t k = 0; k < extent; ++k) {
    fa.push_back(blend_weight_a(k, extent));
    fb.push_back(blend_weight_b(k, extent));
  }
  const Shape ws = dim == 2 ? Shape{1, 1, extent, 1} : Shape{1, 1, 1, extent};
  Tensor mixed = ops::add(ops::mul(ops::slice(a, dim, a.dim(dim) - extent, a.dim(dim)), Tensor::from_vector(ws, fa)),
                          ops::mul(ops::slice(b, dim, 0, extent), Tensor::from_vector(ws, fb)));
  b = extent == b.dim(dim) ? mixed : ops::concat({mixed, ops::slice(b, dim, extent, b.dim(dim))}, dim);
}

// b's first rows (dim 2, or columns for dim 3) fade in from a's last ones, in place, as diffusers' blend_v/blend_h.
void blend(const Tensor& a, Tensor& b, int64_t extent, int dim) {
  extent = std::min({a.dim(dim), b.dim(dim), extent});
  const int64_t NC = b.dim(0) * b.dim(1), ha = a.dim(2), wa = a.dim(3), hb = b.dim(2), wb = b.dim(3);
  PIG_CHECK(NC == a.dim(0) * a.dim(1) && (dim == 2 ? wa == wb : ha == hb), "VAE tiling: neighbouring tiles ",
            shape_str(a.shape()), " and ", shape_str(b.shape()), " do not line up");
  if (extent <= 0) return;
  if (ops::autograd::any_needs_grad({&a, &b})) return blend_recorded(a, b, extent, dim);
  const float* pa = a.f32();
  float* pb = b.f32();
  for (int64_t k = 0; k < extent; ++k) {
    const float fb = blend_weight_b(k, extent), fa = blend_weight_a(k, extent);
    for (int64_t c = 0; c < NC; ++c) {
      if (dim == 2) {
        const float* ra = pa + (c * ha + ha - extent + k) * wa;
        float* rb = pb + (c * hb + k) * wb;
        for (int64_t x = 0; x < wb; ++x) rb[x] = ra[x] * fa + rb[x] * fb;
      } else {
        for (int64_t y = 0; y < hb; ++y) {
          float& v = pb[(c * hb + y) * wb + k];
          v = pa[(c * ha + y) * wa + wa - extent + k] * fa + v * fb;
        }
      }
    }
  }
}
}  // namespace

Tensor Vae::tiled(const Tensor& x, int64_t tile_in, int64_t tile_out, double overlap,
                  const std::function<Tensor(const Tensor&)>& run) {
  const int64_t step = int64_t(double(tile_in) * (1.0 - overlap));
  const int64_t extent = int64_t(double(tile_out) * overlap);
  const int64_t limit = tile_out - extent;
  PIG_CHECK(step > 0 && limit > 0, "VAE tiling: overlap ", overlap, " leaves no step between tiles of ", tile_in);
  // Each step must become exactly one crop, or the joined result would have the wrong size (diffusers then
  // silently returns a misshapen image, e.g. for 48-pixel tiles of an 8x VAE).
  PIG_CHECK(step * tile_out == limit * tile_in, "VAE tiling: tiles of ", tile_in, " with overlap ", overlap,
            " do not tile evenly (a step of ", step, " maps to ", step * tile_out / double(tile_in), ", the crop is ",
            limit, "); choose another tile size");
  const int64_t H = x.dim(2), W = x.dim(3);
  std::vector<Tensor> above, row, out_rows;  // only the previous row of tiles stays alive
  for (int64_t i = 0; i < H; i += step) {
    row.clear();
    std::vector<Tensor> crops;
    Tensor band = ops::slice(x, 2, i, std::min(H, i + tile_in));
    for (int64_t j = 0; j < W; j += step) {
      Tensor t = run(ops::slice(band, 3, j, std::min(W, j + tile_in)));
      size_t col = row.size();
      // Blend with the (already blended) neighbours above and to the left, in diffusers' order.
      if (!above.empty()) blend(above.at(col), t, extent, 2);
      if (col > 0) blend(row[col - 1], t, extent, 3);
      crops.push_back(ops::slice(ops::slice(t, 2, 0, std::min(limit, t.dim(2))), 3, 0, std::min(limit, t.dim(3))));
      row.push_back(std::move(t));
    }
    out_rows.push_back(ops::concat(crops, 3));
    above = std::move(row);
    row = {};
  }
  return ops::concat(out_rows, 2);
}

int64_t Vae::tile_sample_size(const VaeTiling& t) const {
  int64_t s = t.tile_sample_size > 0 ? t.tile_sample_size : config_.sample_size;
  PIG_CHECK(s / config_.downscale() >= 1, "VAE tiling: tile of ", s, " pixels is smaller than one latent (",
            config_.downscale(), " pixels)");
  PIG_CHECK(t.overlap >= 0 && t.overlap < 1, "VAE tiling: overlap ", t.overlap, " outside [0, 1)");
  return s;
}

// ---- public ----

LatentDistribution Vae::encode(const Tensor& image, const VaeTiling& tiling, const VaeProbe& probe) const {
  if (tiling.enabled) {
    const int64_t ts = tile_sample_size(tiling);
    // As diffusers: tile only when the image is larger than one tile.
    if (image.ndim() == 4 && (image.dim(2) > ts || image.dim(3) > ts)) {
      const int64_t tl = int64_t(double(ts) / double(config_.downscale()));
      return LatentDistribution(
          tiled(image, ts, tl, tiling.overlap, [&](const Tensor& t) { return encode_moments(t, probe); }));
    }
  }
  return LatentDistribution(encode_moments(image, probe));
}

Tensor Vae::decode(const Tensor& latents, const VaeTiling& tiling, const VaeProbe& probe) const {
  if (tiling.enabled) {
    const int64_t ts = tile_sample_size(tiling);
    const int64_t tl = int64_t(double(ts) / double(config_.downscale()));
    if (latents.ndim() == 4 && (latents.dim(2) > tl || latents.dim(3) > tl))
      return tiled(latents, tl, ts, tiling.overlap, [&](const Tensor& t) { return decode_untiled(t, probe); });
  }
  return decode_untiled(latents, probe);
}

}  // namespace pigment
