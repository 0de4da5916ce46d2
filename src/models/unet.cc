#include "models/unet.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "io/checkpoint.h"
#include "ops/autograd.h"

namespace pigment {

namespace {

using json = nlohmann::json;

// Config readers that treat a null like an absent key and name the file and key on a type error.
struct ConfigReader {
  const json& j;
  const std::string& source;

  bool present(const char* key) const { return j.contains(key) && !j[key].is_null(); }
  [[noreturn]] void bad(const char* key, const char* expected) const {
    fail(source, ": '", key, "' should be ", expected, ", got ", present(key) ? j[key].dump() : "nothing");
  }
  int64_t integer(const char* key, int64_t def) const {
    if (!present(key)) return def;
    if (!j[key].is_number_integer()) bad(key, "an integer");
    return j[key].get<int64_t>();
  }
  double number(const char* key, double def) const {
    if (!present(key)) return def;
    if (!j[key].is_number()) bad(key, "a number");
    return j[key].get<double>();
  }
  bool boolean(const char* key, bool def) const {
    if (!present(key)) return def;
    if (!j[key].is_boolean()) bad(key, "true or false");
    return j[key].get<bool>();
  }
  std::string string(const char* key, const std::string& def) const {
    if (!present(key)) return def;
    if (!j[key].is_string()) bad(key, "a string");
    return j[key].get<std::string>();
  }
  std::vector<std::string> strings(const char* key) const {
    std::vector<std::string> v;
    if (!present(key)) return v;
    if (!j[key].is_array()) bad(key, "a list of strings");
    for (const auto& e : j[key]) {
      if (!e.is_string()) bad(key, "a list of strings");
      v.push_back(e.get<std::string>());
    }
    return v;
  }
  // An integer repeated n times, or a list of n integers.
  std::vector<int64_t> per_block(const char* key, size_t n, std::optional<int64_t> def) const {
    if (!present(key)) {
      if (!def) bad(key, "an integer or a list of integers");
      return std::vector<int64_t>(n, *def);
    }
    const json& v = j[key];
    if (v.is_number_integer()) return std::vector<int64_t>(n, v.get<int64_t>());
    if (!v.is_array() || v.size() != n) bad(key, ("an integer or a list of " + std::to_string(n) + " integers").c_str());
    std::vector<int64_t> out;
    for (const auto& e : v) {
      if (!e.is_number_integer()) bad(key, "a list of integers");
      out.push_back(e.get<int64_t>());
    }
    return out;
  }
  // Options pigment does not implement must keep their default (null, false or the given string).
  void require_default(const char* key, const std::string& def = "") const {
    if (!present(key)) return;
    const json& v = j[key];
    bool ok = (v.is_boolean() && !v.get<bool>()) || (v.is_string() && v.get<std::string>() == def) ||
              (v.is_array() && std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_boolean() && !e.get<bool>(); }));
    if (!ok) fail(source, ": '", key, "' = ", v.dump(), " is not supported");
  }
};

// transformer_layers_per_block entry for a block of n resnets: an int (same for each resnet) or a list of n ints.
std::vector<int> layers_entry(const json& e, size_t n, const std::string& source, const char* key) {
  if (e.is_number_integer()) return std::vector<int>(n, e.get<int>());
  PIG_CHECK(e.is_array() && e.size() == n, source, ": '", key, "' entry ", e.dump(), " should be an integer or a list of ",
            n, " integers");
  std::vector<int> v;
  for (const auto& x : e) {
    PIG_CHECK(x.is_number_integer(), source, ": '", key, "' entry ", e.dump(), " should list integers");
    v.push_back(x.get<int>());
  }
  return v;
}

}  // namespace

UNetConfig UNetConfig::from_json(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    fail(source, ": invalid JSON: ", e.what());
  }
  PIG_CHECK(j.is_object(), source, ": expected a JSON object");
  ConfigReader r{j, source};
  UNetConfig c;
  c.in_channels = r.integer("in_channels", 4);
  c.out_channels = r.integer("out_channels", 4);
  c.down_block_types = r.strings("down_block_types");
  c.up_block_types = r.strings("up_block_types");
  PIG_CHECK(!c.down_block_types.empty(), source, ": 'down_block_types' is missing or empty");
  size_t n = c.down_block_types.size();
  for (const auto& t : c.down_block_types)
    PIG_CHECK(t == "CrossAttnDownBlock2D" || t == "DownBlock2D", source, ": down block type '", t,
              "' is not supported (CrossAttnDownBlock2D, DownBlock2D)");
  for (const auto& t : c.up_block_types)
    PIG_CHECK(t == "CrossAttnUpBlock2D" || t == "UpBlock2D", source, ": up block type '", t,
              "' is not supported (CrossAttnUpBlock2D, UpBlock2D)");
  PIG_CHECK(c.up_block_types.empty() || c.up_block_types.size() == n, source, ": ", c.up_block_types.size(),
            " up blocks for ", n, " down blocks");
  // An explicit null means "no mid block"; an absent key means diffusers' default.
  bool no_mid = j.contains("mid_block_type") && j["mid_block_type"].is_null();
  c.mid_block_type = no_mid ? "" : r.string("mid_block_type", "UNetMidBlock2DCrossAttn");
  PIG_CHECK(c.mid_block_type.empty() || c.mid_block_type == "UNetMidBlock2DCrossAttn", source, ": mid_block_type '",
            c.mid_block_type, "' is not supported (UNetMidBlock2DCrossAttn)");

  c.block_out_channels.clear();
  for (int64_t v : r.per_block("block_out_channels", n, std::nullopt)) c.block_out_channels.push_back(v);
  PIG_CHECK(j["block_out_channels"].is_array(), source, ": 'block_out_channels' should be a list of ", n, " integers");
  c.layers_per_block.clear();
  for (int64_t v : r.per_block("layers_per_block", n, 2)) c.layers_per_block.push_back(int(v));

  // diffusers: num_attention_heads = num_attention_heads or attention_head_dim. In SD1/SD2 configs the field named
  // attention_head_dim really holds the head count (8 for SD1; a per-block list such as [5, 10, 20, 20] for SD2).
  const char* heads_key = r.present("num_attention_heads") ? "num_attention_heads" : "attention_head_dim";
  for (int64_t v : r.per_block(heads_key, n, 8)) c.num_attention_heads.push_back(int(v));
  c.cross_attention_dim = r.per_block("cross_attention_dim", n, 1280);

  // transformer_layers_per_block: an int, a per-block list, or (asymmetric SDXL variants) per-block lists per resnet
  // together with reverse_transformer_layers_per_block for the up path.
  const char* tk = "transformer_layers_per_block";
  json tl = r.present(tk) ? j[tk] : json(1);
  if (tl.is_number_integer()) tl = json(std::vector<json>(n, tl));
  PIG_CHECK(tl.is_array() && tl.size() == n, source, ": '", tk, "' should be an integer or a list of ", n, " entries");
  for (size_t i = 0; i < n; ++i)
    c.down_transformer_layers.push_back(layers_entry(tl[i], c.layers_per_block[i], source, tk));
  c.mid_transformer_layers = layers_entry(tl[n - 1], 1, source, tk);
  const char* rk = "reverse_transformer_layers_per_block";
  for (size_t i = 0; i < n; ++i) {
    size_t layers = c.layers_per_block[n - 1 - i] + 1;
    if (r.present(rk)) {
      PIG_CHECK(j[rk].is_array() && j[rk].size() == n, source, ": '", rk, "' should be a list of ", n, " entries");
      c.up_transformer_layers.push_back(layers_entry(j[rk][i], layers, source, rk));
    } else {
      PIG_CHECK(tl[n - 1 - i].is_number_integer(), source, ": '", tk, "' lists per-resnet counts, so '", rk,
                "' is required");
      c.up_transformer_layers.push_back(layers_entry(tl[n - 1 - i], layers, source, tk));
    }
  }

  c.use_linear_projection = r.boolean("use_linear_projection", false);
  c.upcast_attention = r.boolean("upcast_attention", false);
  c.norm_num_groups = int(r.integer("norm_num_groups", 32));
  c.norm_eps = float(r.number("norm_eps", 1e-5));
  c.flip_sin_to_cos = r.boolean("flip_sin_to_cos", true);
  c.freq_shift = float(r.number("freq_shift", 0));
  c.downsample_padding = int(r.integer("downsample_padding", 1));
  c.mid_block_scale_factor = float(r.number("mid_block_scale_factor", 1));
  c.center_input_sample = r.boolean("center_input_sample", false);
  c.conv_in_kernel = int(r.integer("conv_in_kernel", 3));
  c.conv_out_kernel = int(r.integer("conv_out_kernel", 3));
  PIG_CHECK(c.conv_in_kernel % 2 == 1 && c.conv_out_kernel % 2 == 1, source, ": conv_in_kernel and conv_out_kernel must be odd");
  c.time_embed_dim = r.integer("time_embedding_dim", 4 * c.block_out_channels[0]);
  c.addition_embed_type = r.string("addition_embed_type", "");
  PIG_CHECK(c.addition_embed_type.empty() || c.addition_embed_type == "text_time", source, ": addition_embed_type '",
            c.addition_embed_type, "' is not supported (text_time)");
  if (c.addition_embed_type == "text_time") {
    c.addition_time_embed_dim = int(r.integer("addition_time_embed_dim", 0));
    c.projection_class_embeddings_input_dim = r.integer("projection_class_embeddings_input_dim", 0);
    PIG_CHECK(c.addition_time_embed_dim > 0 && c.projection_class_embeddings_input_dim > 0, source,
              ": addition_embed_type 'text_time' needs addition_time_embed_dim and "
              "projection_class_embeddings_input_dim");
  }

  // Architecture options of diffusers that SD checkpoints do not use; refuse rather than compute something else.
  std::string act = r.string("act_fn", "silu");
  PIG_CHECK(act == "silu" || act == "swish", source, ": act_fn '", act, "' is not supported (silu)");
  r.require_default("resnet_time_scale_shift", "default");
  r.require_default("time_embedding_type", "positional");
  r.require_default("attention_type", "default");
  for (const char* key : {"class_embed_type", "num_class_embeds", "encoder_hid_dim_type", "time_cond_proj_dim",
                          "timestep_post_act", "time_embedding_act_fn", "cross_attention_norm", "only_cross_attention",
                          "dual_cross_attention", "resnet_skip_time_act", "class_embeddings_concat",
                          "mid_block_only_cross_attention"})
    r.require_default(key);
  return c;
}

UNetConfig UNetConfig::load(const std::string& path) {
  std::ifstream f(path);
  PIG_CHECK(f, path, ": cannot open the UNet config");
  std::stringstream ss;
  ss << f.rdbuf();
  return from_json(ss.str(), path);
}

Weights load_diffusers_weights(const std::string& model_dir) {
  // load_checkpoint finds the weights file of a component folder (safetensors, fp16 variant, sharded or .bin).
  Checkpoint ck = load_checkpoint(model_dir);
  return Weights(std::make_shared<const TensorMap>(std::move(ck.tensors)), ck.path);
}

// ---- the encoder half ----

UNetEncoder::UNetEncoder(const UNetConfig& cfg, const Weights& w) : cfg_(cfg), source_(w.source()) {
  const auto& ch = cfg.block_out_channels;
  size_t n = ch.size();
  time_embedding_ = TimestepEmbedding(w.sub("time_embedding"), ch[0], cfg.time_embed_dim);
  if (cfg.addition_embed_type == "text_time")
    add_embedding_ = TimestepEmbedding(w.sub("add_embedding"), cfg.projection_class_embeddings_input_dim,
                                       cfg.time_embed_dim);
  conv_in_ = Conv2d::same(w, "conv_in", cfg.in_channels, ch[0], cfg.conv_in_kernel);

  int64_t out = ch[0];
  for (size_t i = 0; i < n; ++i) {
    BlockParams p;
    p.in_channels = out;
    p.out_channels = out = ch[i];
    p.temb_channels = cfg.time_embed_dim;
    p.num_layers = cfg.layers_per_block[i];
    p.groups = cfg.norm_num_groups;
    p.eps = cfg.norm_eps;
    p.cross_attention = cfg.down_block_types[i] == "CrossAttnDownBlock2D";
    p.heads = cfg.num_attention_heads[i];
    p.context_dim = cfg.cross_attention_dim[i];
    p.transformer_layers = cfg.down_transformer_layers[i];
    p.linear_projection = cfg.use_linear_projection;
    down_blocks_.emplace_back(w.sub("down_blocks." + std::to_string(i)), p, i + 1 < n, cfg.downsample_padding);
  }
  if (!cfg.mid_block_type.empty()) {
    BlockParams p;
    p.in_channels = p.out_channels = ch.back();
    p.temb_channels = cfg.time_embed_dim;
    p.num_layers = 1;
    p.groups = cfg.norm_num_groups;
    p.eps = cfg.norm_eps;
    p.cross_attention = true;
    p.heads = cfg.num_attention_heads.back();
    p.context_dim = cfg.cross_attention_dim.back();
    p.transformer_layers = cfg.mid_transformer_layers;
    p.linear_projection = cfg.use_linear_projection;
    mid_block_ = MidBlock2DCrossAttn(w.sub("mid_block"), p, cfg.mid_block_scale_factor);
    has_mid_ = true;
  }
}

Tensor UNetEncoder::time_embedding(const std::vector<float>& timesteps, int64_t batch,
                                   const UNetExtras& extras) const {
  PIG_CHECK(timesteps.size() == 1 || int64_t(timesteps.size()) == batch, "UNet: ", timesteps.size(),
            " timesteps for a batch of ", batch, " (give 1 or ", batch, ")");
  // A single timestep is broadcast to the batch, as diffusers' timesteps.expand(batch).
  std::vector<float> t = timesteps.size() == 1 ? std::vector<float>(batch, timesteps[0]) : timesteps;
  const UNetHooks& hooks = extras.hooks;
  Tensor t_emb = ops::timestep_embedding(t, int(cfg_.block_out_channels[0]), cfg_.flip_sin_to_cos, cfg_.freq_shift);
  hooks.emit("time_proj", t_emb);
  Tensor emb = time_embedding_.forward(t_emb, hooks);
  hooks.emit("time_embedding", emb);

  if (cfg_.addition_embed_type == "text_time") {
    // SDXL: each of the 6 time_ids gets its own sinusoid embedding; those are flattened per sample and appended to
    // the pooled text embedding.
    const Tensor& te = extras.text_embeds;
    const Tensor& ids = extras.time_ids;
    PIG_CHECK(te.defined() && ids.defined(), "UNet (", source_,
              "): addition_embed_type 'text_time' needs text_embeds and time_ids");
    PIG_CHECK(te.ndim() == 2 && te.dim(0) == batch, "UNet: text_embeds has shape ", shape_str(te.shape()),
              ", expected [", batch, ", D]");
    PIG_CHECK(ids.ndim() == 2 && ids.dim(0) == batch, "UNet: time_ids has shape ", shape_str(ids.shape()),
              ", expected [", batch, ", 6]");
    int64_t width = te.dim(1) + ids.dim(1) * cfg_.addition_time_embed_dim;
    PIG_CHECK(width == cfg_.projection_class_embeddings_input_dim, "UNet: text_embeds ", shape_str(te.shape()),
              " and time_ids ", shape_str(ids.shape()), " make ", width,
              " features, projection_class_embeddings_input_dim is ", cfg_.projection_class_embeddings_input_dim);
    Tensor time_embeds =
        ops::timestep_embedding(ids.as_f32().to_vector(), cfg_.addition_time_embed_dim, cfg_.flip_sin_to_cos,
                                cfg_.freq_shift)
            .reshape({batch, -1});
    Tensor aug = add_embedding_.forward(ops::concat({te.as_f32(), time_embeds}, 1), hooks);
    hooks.emit("add_embedding", aug);
    emb = ops::add(emb, aug);
  }
  return emb;
}

Tensor UNetEncoder::conv_in(const Tensor& sample, const UNetHooks& hooks) const {
  PIG_CHECK(sample.ndim() == 4 && sample.dim(1) == cfg_.in_channels, "UNet (", source_, "): sample has shape ",
            shape_str(sample.shape()), ", expected [B, ", cfg_.in_channels, ", H, W]");
  Tensor x = cfg_.center_input_sample ? ops::add(ops::scale(sample, 2.f), Tensor::full({1}, -1.f)) : sample;
  x = conv_in_(x, hooks);
  hooks.emit("conv_in", x);
  return x;
}

namespace {
// A block's work: directly, or as a checkpointed segment when training asks for it.
std::vector<Tensor> run_block(const UNetHooks& hooks, const ops::autograd::Segment& f, const std::vector<Tensor>& in) {
  return hooks.checkpoint_blocks ? ops::autograd::checkpoint(f, in) : f(in);
}
}  // namespace

Tensor UNetEncoder::down(Tensor x, const Tensor& emb, const Tensor& context, std::vector<Tensor>& skips,
                         const UNetHooks& hooks) const {
  for (size_t i = 0; i < down_blocks_.size(); ++i) {
    // In: x, emb, context. Out: the block's output, then the skip connections it adds.
    const auto out = run_block(
        hooks,
        // The segment may run again in the backward, after this call returned: it keeps copies, no references.
        [this, i, hooks](const std::vector<Tensor>& in) {
          std::vector<Tensor> added;
          Tensor y = down_blocks_[i].forward(in[0], in[1], in[2], added, hooks);
          added.insert(added.begin(), y);
          return added;
        },
        {x, emb, context});
    x = out[0];
    skips.insert(skips.end(), out.begin() + 1, out.end());
    hooks.emit("down_blocks." + std::to_string(i), x);
  }
  return x;
}

Tensor UNetEncoder::mid(Tensor x, const Tensor& emb, const Tensor& context, const UNetHooks& hooks) const {
  if (!has_mid_) return x;
  x = run_block(
      hooks,
      [this, hooks](const std::vector<Tensor>& in) {
        return std::vector<Tensor>{mid_block_.forward(in[0], in[1], in[2], hooks)};
      },
      {x, emb, context})[0];
  hooks.emit("mid_block", x);
  return x;
}

// ---- the UNet ----

namespace {
// A ControlNet residual matches its feature map, or is spatially pooled to [B, C, 1, 1] (global_pool_conditions).
bool residual_fits(const Tensor& r, const Tensor& x) {
  if (r.shape() == x.shape()) return true;
  return r.ndim() == 4 && r.dim(0) == x.dim(0) && r.dim(1) == x.dim(1) && r.dim(2) == 1 && r.dim(3) == 1;
}
}  // namespace

UNet::UNet(const UNetConfig& cfg, const Weights& w) : cfg_(cfg), weights_(w), encoder_(cfg, w) {
  size_t n = cfg.block_out_channels.size();
  PIG_CHECK(cfg.up_block_types.size() == n, w.source(), ": the UNet config needs ", n, " up_block_types");
  // The up path mirrors the down path: channels, heads, layer counts and context widths are read in reverse.
  std::vector<int64_t> ch(cfg.block_out_channels.rbegin(), cfg.block_out_channels.rend());
  int64_t out = ch[0];
  for (size_t i = 0; i < n; ++i) {
    size_t r = n - 1 - i;  // the matching down block
    int64_t prev = out;
    BlockParams p;
    p.out_channels = out = ch[i];
    p.in_channels = ch[std::min(i + 1, n - 1)];
    p.temb_channels = cfg.time_embed_dim;
    p.num_layers = cfg.layers_per_block[r] + 1;
    p.groups = cfg.norm_num_groups;
    p.eps = cfg.norm_eps;
    p.cross_attention = cfg.up_block_types[i] == "CrossAttnUpBlock2D";
    p.heads = cfg.num_attention_heads[r];
    p.context_dim = cfg.cross_attention_dim[r];
    p.transformer_layers = cfg.up_transformer_layers[i];
    p.linear_projection = cfg.use_linear_projection;
    up_blocks_.emplace_back(w.sub("up_blocks." + std::to_string(i)), p, prev, i + 1 < n);
  }
  conv_norm_out_ = GroupNorm(w, "conv_norm_out", ch.back(), cfg.norm_num_groups, cfg.norm_eps);
  conv_out_ = Conv2d::same(w, "conv_out", ch.back(), cfg.out_channels, cfg.conv_out_kernel);
}

UNet UNet::load(const std::string& model_dir) {
  UNetConfig cfg = UNetConfig::load((std::filesystem::path(model_dir) / "config.json").string());
  return UNet(cfg, load_diffusers_weights(model_dir));
}

Tensor UNet::forward(const Tensor& sample, const std::vector<float>& timesteps, const Tensor& encoder_hidden_states,
                     const UNetExtras& extras) const {
  const UNetHooks& hooks = extras.hooks;
  PIG_CHECK(sample.ndim() == 4, "UNet: sample has shape ", shape_str(sample.shape()), ", expected [B, C, H, W]");
  int64_t batch = sample.dim(0);
  const Tensor& ctx = encoder_hidden_states;
  PIG_CHECK(ctx.defined() && ctx.ndim() == 3 && ctx.dim(0) == batch, "UNet: encoder_hidden_states has shape ",
            ctx.defined() ? shape_str(ctx.shape()) : "(none)", ", expected [", batch, ", tokens, ",
            cfg_.cross_attention_dim.back(), "]");
  const auto& down_res = extras.down_block_additional_residuals;
  const Tensor& mid_res = extras.mid_block_additional_residual;
  PIG_CHECK(down_res.empty() == !mid_res.defined(),
            "UNet: ControlNet residuals need both down_block_additional_residuals and mid_block_additional_residual");

  Tensor emb = encoder_.time_embedding(timesteps, batch, extras);
  Tensor x = encoder_.conv_in(sample, hooks);
  std::vector<Tensor> skips{x};
  x = encoder_.down(x, emb, ctx, skips, hooks);

  if (!down_res.empty()) {
    PIG_CHECK(down_res.size() == skips.size(), "UNet: ", down_res.size(), " ControlNet down residuals, expected ",
              skips.size());
    for (size_t i = 0; i < skips.size(); ++i) {
      PIG_CHECK(residual_fits(down_res[i], skips[i]), "UNet: ControlNet down residual ", i, " has shape ",
                shape_str(down_res[i].shape()), ", expected ", shape_str(skips[i].shape()));
      skips[i] = ops::add(skips[i], down_res[i]);
    }
  }
  x = encoder_.mid(x, emb, ctx, hooks);
  if (mid_res.defined()) {
    PIG_CHECK(residual_fits(mid_res, x), "UNet: ControlNet mid residual has shape ", shape_str(mid_res.shape()),
              ", expected ", shape_str(x.shape()));
    x = ops::add(x, mid_res);
  }

  for (size_t i = 0; i < up_blocks_.size(); ++i) {
    const UpBlock& block = up_blocks_[i];
    // An upsampler restores the size of the skip connection the next block starts with (odd sizes round up when
    // downsampling, so plain doubling could overshoot by one).
    std::optional<std::pair<int64_t, int64_t>> upsample_to;
    if (i + 1 < up_blocks_.size() && skips.size() > size_t(block.num_layers())) {
      const Tensor& next = skips[skips.size() - block.num_layers() - 1];
      upsample_to = std::make_pair(next.dim(2), next.dim(3));
    }
    // In: x, emb, context and the skip connections the block consumes (from the back). Out: the block's output.
    const size_t n = size_t(block.num_layers());
    PIG_CHECK(skips.size() >= n, "UNet up block ", i, ": ", skips.size(), " skip connections left, ", n, " needed");
    std::vector<Tensor> in{x, emb, ctx};
    in.insert(in.end(), skips.end() - n, skips.end());
    skips.resize(skips.size() - n);
    x = run_block(
        hooks,
        [this, i, upsample_to, hooks](const std::vector<Tensor>& v) {
          std::vector<Tensor> own(v.begin() + 3, v.end());
          return std::vector<Tensor>{up_blocks_[i].forward(v[0], v[1], v[2], own, upsample_to, hooks)};
        },
        in)[0];
    hooks.emit("up_blocks." + std::to_string(i), x);
  }
  x = conv_norm_out_(x);
  hooks.emit("conv_norm_out", x);
  return conv_out_(ops::silu(x), hooks);
}

}  // namespace pigment
