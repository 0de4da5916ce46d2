#include "models/checkpoint_layout.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "core/error.h"
#include "models/model_config.h"

namespace pigment {

namespace {

// Emits entries while walking a model: `d` is the diffusers path, `f` the file path (both without the
// trailing dot).
class Emitter {
 public:
  Emitter(Layout& out, std::string component, std::string prefix)
      : out_(out), component_(std::move(component)), prefix_(std::move(prefix)) {}

  void same(const std::string& d, const std::string& f, Shape shape) {
    out_.push_back({component_, d, shape, prefix_ + f, shape, KeyTransform::Same, 0, 1});
  }
  void reshaped(const std::string& d, const std::string& f, Shape shape, Shape file_shape) {
    out_.push_back({component_, d, shape, prefix_ + f, file_shape, KeyTransform::Reshape, 0, 1});
  }
  void part(const std::string& d, const std::string& f, Shape shape, Shape file_shape, int part, int parts) {
    out_.push_back({component_, d, shape, prefix_ + f, file_shape, KeyTransform::FusedPart, part, parts});
  }
  void transposed(const std::string& d, const std::string& f, Shape shape) {
    PIG_CHECK(shape.size() == 2, "transposed layout entry '", d, "' must be 2-D");
    out_.push_back({component_, d, shape, prefix_ + f, Shape{shape[1], shape[0]}, KeyTransform::Transpose, 0, 1});
  }

  // weight [out, in] (+ bias [out])
  void linear(const std::string& d, const std::string& f, int64_t out, int64_t in, bool bias = true) {
    same(d + ".weight", f + ".weight", {out, in});
    if (bias) same(d + ".bias", f + ".bias", {out});
  }
  void conv(const std::string& d, const std::string& f, int64_t out, int64_t in, int64_t k) {
    same(d + ".weight", f + ".weight", {out, in, k, k});
    same(d + ".bias", f + ".bias", {out});
  }
  void norm(const std::string& d, const std::string& f, int64_t c) {
    same(d + ".weight", f + ".weight", {c});
    same(d + ".bias", f + ".bias", {c});
  }

 private:
  Layout& out_;
  std::string component_, prefix_;
};

std::string cat(const std::string& a, const std::string& b) { return a.empty() ? b : a + "." + b; }
std::string cat(const std::string& a, int i) { return cat(a, std::to_string(i)); }

// ---- UNet ----

struct UNetSpec {
  std::vector<int64_t> channels;
  std::vector<bool> attn;                  // per down level
  std::vector<bool> up_attn;               // per up block (in up order)
  std::vector<int64_t> layers;             // resnets per down block
  std::vector<int64_t> depth;              // transformer layers per down block
  std::vector<int64_t> up_depth;           // per up block
  std::vector<int64_t> heads;              // per down block
  int64_t in_channels = 4, out_channels = 4, cross = 768, temb = 0, conv_in_k = 3, conv_out_k = 3;
  bool linear_proj = false;
  bool text_time = false;
  int64_t add_in = 0;
};

UNetSpec parse_unet(const nlohmann::json& j) {
  ModelConfig c(j, "<unet config>");
  UNetSpec s;
  s.channels = c.get_ints("block_out_channels");
  size_t n = s.channels.size();
  PIG_CHECK(n >= 1, "unet config: block_out_channels is empty");
  auto down = c.get_strings("down_block_types");
  auto up = c.get_strings("up_block_types");
  PIG_CHECK(down.size() == n && up.size() == n, "unet config: down_block_types/up_block_types need ", n,
            " entries (one per block_out_channels)");
  for (const auto& t : down) {
    PIG_CHECK(t == "CrossAttnDownBlock2D" || t == "DownBlock2D", "unet config: down block type '", t,
              "' is not supported (CrossAttnDownBlock2D or DownBlock2D)");
    s.attn.push_back(t == "CrossAttnDownBlock2D");
  }
  for (const auto& t : up) {
    PIG_CHECK(t == "CrossAttnUpBlock2D" || t == "UpBlock2D", "unet config: up block type '", t,
              "' is not supported (CrossAttnUpBlock2D or UpBlock2D)");
    s.up_attn.push_back(t == "CrossAttnUpBlock2D");
  }
  PIG_CHECK(c.get_string("mid_block_type", "UNetMidBlock2DCrossAttn") == "UNetMidBlock2DCrossAttn",
            "unet config: mid_block_type '", c.get_string("mid_block_type"), "' is not supported");
  PIG_CHECK(!c.has("class_embed_type") && !c.has("num_class_embeds"),
            "unet config: class embeddings (class_embed_type / num_class_embeds) are not supported");
  PIG_CHECK(!c.has("encoder_hid_dim") && !c.has("time_cond_proj_dim"),
            "unet config: encoder_hid_dim / time_cond_proj_dim are not supported");
  PIG_CHECK(c.get_string("resnet_time_scale_shift", "default") == "default",
            "unet config: resnet_time_scale_shift '", c.get_string("resnet_time_scale_shift"), "' is not supported");
  auto oca = j.find("only_cross_attention");
  bool only_cross = oca != j.end() && !oca->is_null() && !(oca->is_boolean() && !oca->get<bool>());
  PIG_CHECK(!c.get_bool("dual_cross_attention", false) && !only_cross,
            "unet config: dual_cross_attention / only_cross_attention are not supported");
  PIG_CHECK(!c.has("cross_attention_dim") || c.json()["cross_attention_dim"].is_number_integer(),
            "unet config: cross_attention_dim must be one integer");
  s.layers = c.get_ints_per_block("layers_per_block", n, 2);
  s.depth = c.get_ints_per_block("transformer_layers_per_block", n, 1);
  if (c.has("reverse_transformer_layers_per_block")) {
    s.up_depth = c.get_ints_per_block("reverse_transformer_layers_per_block", n);
  } else {
    s.up_depth.assign(s.depth.rbegin(), s.depth.rend());
  }
  // diffusers: attention_head_dim is the head count unless num_attention_heads is given.
  s.heads = c.has("num_attention_heads") ? c.get_ints_per_block("num_attention_heads", n)
                                         : c.get_ints_per_block("attention_head_dim", n, 8);
  s.in_channels = c.get_int("in_channels", 4);
  s.out_channels = c.get_int("out_channels", 4);
  s.cross = c.get_int("cross_attention_dim", 1280);
  s.temb = c.get_int("time_embedding_dim", s.channels[0] * 4);
  s.conv_in_k = c.get_int("conv_in_kernel", 3);
  s.conv_out_k = c.get_int("conv_out_kernel", 3);
  s.linear_proj = c.get_bool("use_linear_projection", false);
  std::string add = c.get_string("addition_embed_type", "");
  PIG_CHECK(add.empty() || add == "text_time", "unet config: addition_embed_type '", add,
            "' is not supported (only SDXL's text_time)");
  s.text_time = add == "text_time";
  if (s.text_time) s.add_in = c.get_int("projection_class_embeddings_input_dim");
  for (auto h : s.heads) PIG_CHECK(h >= 1, "unet config: attention head counts must be positive");
  return s;
}

void unet_resnet(Emitter& e, const std::string& d, const std::string& f, int64_t cin, int64_t cout, int64_t temb) {
  e.norm(cat(d, "norm1"), cat(f, "in_layers.0"), cin);
  e.conv(cat(d, "conv1"), cat(f, "in_layers.2"), cout, cin, 3);
  e.linear(cat(d, "time_emb_proj"), cat(f, "emb_layers.1"), cout, temb);
  e.norm(cat(d, "norm2"), cat(f, "out_layers.0"), cout);
  e.conv(cat(d, "conv2"), cat(f, "out_layers.3"), cout, cout, 3);
  if (cin != cout) e.conv(cat(d, "conv_shortcut"), cat(f, "skip_connection"), cout, cin, 1);
}

// Transformer2DModel; the LDM SpatialTransformer uses the same inner names.
void unet_transformer(Emitter& e, const std::string& d, const std::string& f, int64_t c, int64_t heads, int64_t depth,
                      int64_t cross, bool linear_proj) {
  int64_t inner = heads * (c / heads);
  e.norm(cat(d, "norm"), cat(f, "norm"), c);
  if (linear_proj)
    e.linear(cat(d, "proj_in"), cat(f, "proj_in"), inner, c);
  else
    e.conv(cat(d, "proj_in"), cat(f, "proj_in"), inner, c, 1);
  for (int k = 0; k < depth; ++k) {
    std::string b = cat(cat(d, "transformer_blocks"), k), fb = cat(cat(f, "transformer_blocks"), k);
    e.norm(cat(b, "norm1"), cat(fb, "norm1"), inner);
    for (const char* q : {"to_q", "to_k", "to_v"})
      e.linear(cat(b, std::string("attn1.") + q), cat(fb, std::string("attn1.") + q), inner, inner, false);
    e.linear(cat(b, "attn1.to_out.0"), cat(fb, "attn1.to_out.0"), inner, inner);
    e.norm(cat(b, "norm2"), cat(fb, "norm2"), inner);
    e.linear(cat(b, "attn2.to_q"), cat(fb, "attn2.to_q"), inner, inner, false);
    e.linear(cat(b, "attn2.to_k"), cat(fb, "attn2.to_k"), inner, cross, false);
    e.linear(cat(b, "attn2.to_v"), cat(fb, "attn2.to_v"), inner, cross, false);
    e.linear(cat(b, "attn2.to_out.0"), cat(fb, "attn2.to_out.0"), inner, inner);
    e.norm(cat(b, "norm3"), cat(fb, "norm3"), inner);
    e.linear(cat(b, "ff.net.0.proj"), cat(fb, "ff.net.0.proj"), inner * 8, inner);  // GEGLU: 2 × 4·inner
    e.linear(cat(b, "ff.net.2"), cat(fb, "ff.net.2"), inner, inner * 4);
  }
  if (linear_proj)
    e.linear(cat(d, "proj_out"), cat(f, "proj_out"), c, inner);
  else
    e.conv(cat(d, "proj_out"), cat(f, "proj_out"), c, inner, 1);
}

// ---- VAE ----

void vae_resnet(Emitter& e, const std::string& d, const std::string& f, int64_t cin, int64_t cout) {
  e.norm(cat(d, "norm1"), cat(f, "norm1"), cin);
  e.conv(cat(d, "conv1"), cat(f, "conv1"), cout, cin, 3);
  e.norm(cat(d, "norm2"), cat(f, "norm2"), cout);
  e.conv(cat(d, "conv2"), cat(f, "conv2"), cout, cout, 3);
  if (cin != cout) e.conv(cat(d, "conv_shortcut"), cat(f, "nin_shortcut"), cout, cin, 1);
}

void vae_mid(Emitter& e, const std::string& d, const std::string& f, int64_t c) {
  // diffusers registers the attention list before the resnets.
  std::string a = cat(d, "attentions.0"), fa = cat(f, "attn_1");
  e.norm(cat(a, "group_norm"), cat(fa, "norm"), c);
  const std::pair<const char*, const char*> proj[] = {{"to_q", "q"}, {"to_k", "k"}, {"to_v", "v"}, {"to_out.0", "proj_out"}};
  for (const auto& [dn, fn] : proj) {
    e.reshaped(cat(a, std::string(dn) + ".weight"), cat(fa, std::string(fn) + ".weight"), {c, c}, {c, c, 1, 1});
    e.same(cat(a, std::string(dn) + ".bias"), cat(fa, std::string(fn) + ".bias"), {c});
  }
  vae_resnet(e, cat(d, "resnets.0"), cat(f, "block_1"), c, c);
  vae_resnet(e, cat(d, "resnets.1"), cat(f, "block_2"), c, c);
}

// ---- CLIP ----

struct ClipSpec {
  int64_t vocab, hidden, inter, layers, positions, proj;
  bool with_projection;
};

ClipSpec parse_clip(const nlohmann::json& j) {
  ModelConfig c(j, "<text encoder config>");
  ClipSpec s;
  s.vocab = c.get_int("vocab_size", 49408);
  s.hidden = c.get_int("hidden_size", 512);
  s.inter = c.get_int("intermediate_size", 2048);
  s.layers = c.get_int("num_hidden_layers", 12);
  s.positions = c.get_int("max_position_embeddings", 77);
  s.proj = c.get_int("projection_dim", 512);
  s.with_projection = false;
  if (c.has("architectures"))
    for (const auto& a : c.get_strings("architectures")) s.with_projection |= a == "CLIPTextModelWithProjection";
  return s;
}

}  // namespace

Layout unet_layout(const nlohmann::json& config, const std::string& prefix, const std::string& component) {
  UNetSpec s = parse_unet(config);
  Layout out;
  Emitter e(out, component, prefix);
  const auto& ch = s.channels;
  size_t n = ch.size();
  e.conv("conv_in", "input_blocks.0.0", ch[0], s.in_channels, s.conv_in_k);
  e.linear("time_embedding.linear_1", "time_embed.0", s.temb, ch[0]);
  e.linear("time_embedding.linear_2", "time_embed.2", s.temb, s.temb);
  if (s.text_time) {
    e.linear("add_embedding.linear_1", "label_emb.0.0", s.temb, s.add_in);
    e.linear("add_embedding.linear_2", "label_emb.0.2", s.temb, s.temb);
  }
  // Down path: input_blocks.0 is conv_in; then per level one block per resnet (+ its attention), then the
  // downsampler as a block of its own.
  int idx = 1;
  for (size_t i = 0; i < n; ++i) {
    std::string d = "down_blocks." + std::to_string(i);
    int64_t cin = i == 0 ? ch[0] : ch[i - 1];
    int first = idx;
    if (s.attn[i])
      for (int j = 0; j < s.layers[i]; ++j)
        unet_transformer(e, cat(d, "attentions." + std::to_string(j)), "input_blocks." + std::to_string(first + j) + ".1",
                         ch[i], s.heads[i], s.depth[i], s.cross, s.linear_proj);
    for (int j = 0; j < s.layers[i]; ++j)
      unet_resnet(e, cat(d, "resnets." + std::to_string(j)), "input_blocks." + std::to_string(first + j) + ".0",
                  j == 0 ? cin : ch[i], ch[i], s.temb);
    idx += int(s.layers[i]);
    if (i + 1 < n) {
      e.conv(cat(d, "downsamplers.0.conv"), "input_blocks." + std::to_string(idx) + ".0.op", ch[i], ch[i], 3);
      ++idx;
    }
  }
  // Up path: output_blocks are numbered straight through; each holds a resnet, its attention (if any) and,
  // for the last resnet of a level, the upsampler (at .1 without attention, .2 with).
  std::vector<int64_t> rch(ch.rbegin(), ch.rend());
  std::vector<int64_t> rlayers(s.layers.rbegin(), s.layers.rend());
  std::vector<int64_t> rheads(s.heads.rbegin(), s.heads.rend());
  int out_idx = 0;
  for (size_t i = 0; i < n; ++i) {
    std::string d = "up_blocks." + std::to_string(i);
    int64_t prev = i == 0 ? rch[0] : rch[i - 1];
    int64_t cout = rch[i];
    int64_t skip_in = rch[std::min(i + 1, n - 1)];
    int64_t count = rlayers[i] + 1;
    if (s.up_attn[i])
      for (int j = 0; j < count; ++j)
        unet_transformer(e, cat(d, "attentions." + std::to_string(j)),
                         "output_blocks." + std::to_string(out_idx + j) + ".1", cout, rheads[i], s.up_depth[i], s.cross,
                         s.linear_proj);
    for (int j = 0; j < count; ++j) {
      int64_t res_skip = j == count - 1 ? skip_in : cout;
      int64_t res_in = j == 0 ? prev : cout;
      unet_resnet(e, cat(d, "resnets." + std::to_string(j)), "output_blocks." + std::to_string(out_idx + j) + ".0",
                  res_in + res_skip, cout, s.temb);
    }
    if (i + 1 < n)
      e.conv(cat(d, "upsamplers.0.conv"),
             "output_blocks." + std::to_string(out_idx + count - 1) + (s.up_attn[i] ? ".2" : ".1") + ".conv", cout, cout,
             3);
    out_idx += int(count);
  }
  // diffusers registers mid_block after up_blocks.
  int64_t cm = ch[n - 1];
  unet_transformer(e, "mid_block.attentions.0", "middle_block.1", cm, s.heads[n - 1], s.depth[n - 1], s.cross,
                   s.linear_proj);
  unet_resnet(e, "mid_block.resnets.0", "middle_block.0", cm, cm, s.temb);
  unet_resnet(e, "mid_block.resnets.1", "middle_block.2", cm, cm, s.temb);
  e.norm("conv_norm_out", "out.0", ch[0]);
  e.conv("conv_out", "out.2", s.out_channels, ch[0], s.conv_out_k);
  return out;
}

Layout vae_layout(const nlohmann::json& config, const std::string& prefix, const std::string& component) {
  ModelConfig c(config, "<vae config>");
  auto ch = c.get_ints("block_out_channels");
  size_t n = ch.size();
  PIG_CHECK(n >= 1, "vae config: block_out_channels is empty");
  int64_t layers = c.get_int("layers_per_block", 1);
  int64_t in = c.get_int("in_channels", 3), outc = c.get_int("out_channels", 3), lat = c.get_int("latent_channels", 4);
  PIG_CHECK(c.get_bool("use_quant_conv", true) && c.get_bool("use_post_quant_conv", true),
            "vae config: models without quant_conv / post_quant_conv are not supported");
  Layout out;
  Emitter e(out, component, prefix);
  e.conv("encoder.conv_in", "encoder.conv_in", ch[0], in, 3);
  for (size_t i = 0; i < n; ++i) {
    std::string d = "encoder.down_blocks." + std::to_string(i), f = "encoder.down." + std::to_string(i);
    int64_t cin = i == 0 ? ch[0] : ch[i - 1];
    for (int j = 0; j < layers; ++j)
      vae_resnet(e, cat(d, "resnets." + std::to_string(j)), cat(f, "block." + std::to_string(j)), j == 0 ? cin : ch[i],
                 ch[i]);
    if (i + 1 < n) e.conv(cat(d, "downsamplers.0.conv"), cat(f, "downsample.conv"), ch[i], ch[i], 3);
  }
  vae_mid(e, "encoder.mid_block", "encoder.mid", ch[n - 1]);
  e.norm("encoder.conv_norm_out", "encoder.norm_out", ch[n - 1]);
  e.conv("encoder.conv_out", "encoder.conv_out", 2 * lat, ch[n - 1], 3);

  e.conv("decoder.conv_in", "decoder.conv_in", ch[n - 1], lat, 3);
  std::vector<int64_t> rch(ch.rbegin(), ch.rend());
  for (size_t i = 0; i < n; ++i) {
    // LDM numbers decoder levels from the highest resolution, diffusers from the lowest.
    std::string d = "decoder.up_blocks." + std::to_string(i), f = "decoder.up." + std::to_string(n - 1 - i);
    int64_t prev = i == 0 ? rch[0] : rch[i - 1];
    for (int j = 0; j < layers + 1; ++j)
      vae_resnet(e, cat(d, "resnets." + std::to_string(j)), cat(f, "block." + std::to_string(j)), j == 0 ? prev : rch[i],
                 rch[i]);
    if (i + 1 < n) e.conv(cat(d, "upsamplers.0.conv"), cat(f, "upsample.conv"), rch[i], rch[i], 3);
  }
  vae_mid(e, "decoder.mid_block", "decoder.mid", ch[n - 1]);
  e.norm("decoder.conv_norm_out", "decoder.norm_out", ch[0]);
  e.conv("decoder.conv_out", "decoder.conv_out", outc, ch[0], 3);
  e.conv("quant_conv", "quant_conv", 2 * lat, 2 * lat, 1);
  e.conv("post_quant_conv", "post_quant_conv", lat, lat, 1);
  return out;
}

Layout openai_clip_layout(const nlohmann::json& config, const std::string& prefix, const std::string& component) {
  ClipSpec s = parse_clip(config);
  Layout out;
  Emitter e(out, component, prefix);
  e.same("text_model.embeddings.token_embedding.weight", "text_model.embeddings.token_embedding.weight",
         {s.vocab, s.hidden});
  e.same("text_model.embeddings.position_embedding.weight", "text_model.embeddings.position_embedding.weight",
         {s.positions, s.hidden});
  for (int i = 0; i < s.layers; ++i) {
    std::string l = "text_model.encoder.layers." + std::to_string(i);
    for (const char* p : {"k_proj", "v_proj", "q_proj", "out_proj"})
      e.linear(cat(l, std::string("self_attn.") + p), cat(l, std::string("self_attn.") + p), s.hidden, s.hidden);
    e.norm(cat(l, "layer_norm1"), cat(l, "layer_norm1"), s.hidden);
    e.linear(cat(l, "mlp.fc1"), cat(l, "mlp.fc1"), s.inter, s.hidden);
    e.linear(cat(l, "mlp.fc2"), cat(l, "mlp.fc2"), s.hidden, s.inter);
    e.norm(cat(l, "layer_norm2"), cat(l, "layer_norm2"), s.hidden);
  }
  e.norm("text_model.final_layer_norm", "text_model.final_layer_norm", s.hidden);
  if (s.with_projection) e.same("text_projection.weight", "text_projection.weight", {s.proj, s.hidden});
  return out;
}

Layout open_clip_layout(const nlohmann::json& config, const std::string& prefix, const std::string& component) {
  ClipSpec s = parse_clip(config);
  Layout out;
  Emitter e(out, component, prefix);
  int64_t h = s.hidden;
  e.same("text_model.embeddings.token_embedding.weight", "token_embedding.weight", {s.vocab, h});
  e.same("text_model.embeddings.position_embedding.weight", "positional_embedding", {s.positions, h});
  for (int i = 0; i < s.layers; ++i) {
    std::string l = "text_model.encoder.layers." + std::to_string(i);
    std::string f = "transformer.resblocks." + std::to_string(i);
    // in_proj holds q, k, v stacked along the output dimension.
    const std::pair<const char*, int> qkv[] = {{"k_proj", 1}, {"v_proj", 2}, {"q_proj", 0}};
    for (const auto& [p, part] : qkv) {
      e.part(cat(l, std::string("self_attn.") + p + ".weight"), cat(f, "attn.in_proj_weight"), {h, h}, {3 * h, h},
             part, 3);
      e.part(cat(l, std::string("self_attn.") + p + ".bias"), cat(f, "attn.in_proj_bias"), {h}, {3 * h}, part, 3);
    }
    e.linear(cat(l, "self_attn.out_proj"), cat(f, "attn.out_proj"), h, h);
    e.norm(cat(l, "layer_norm1"), cat(f, "ln_1"), h);
    e.linear(cat(l, "mlp.fc1"), cat(f, "mlp.c_fc"), s.inter, h);
    e.linear(cat(l, "mlp.fc2"), cat(f, "mlp.c_proj"), h, s.inter);
    e.norm(cat(l, "layer_norm2"), cat(f, "ln_2"), h);
  }
  e.norm("text_model.final_layer_norm", "ln_final", h);
  if (s.with_projection) e.transposed("text_projection.weight", "text_projection", {s.proj, h});
  return out;
}

std::vector<ParamSpec> layout_params(const Layout& layout) {
  std::vector<ParamSpec> out;
  out.reserve(layout.size());
  for (const auto& e : layout) out.push_back({e.name, e.shape});
  return out;
}

int64_t param_count(const std::vector<ParamSpec>& params) {
  int64_t n = 0;
  for (const auto& p : params) n += shape_numel(p.shape);
  return n;
}

std::vector<std::pair<std::string, Shape>> layout_file_tensors(const Layout& layout) {
  std::vector<std::pair<std::string, Shape>> out;
  std::set<std::string> seen;
  for (const auto& e : layout)
    if (seen.insert(e.file_key).second) out.emplace_back(e.file_key, e.file_shape);
  return out;
}

Tensor transpose2d(const Tensor& t) {
  PIG_CHECK(t.ndim() == 2, "transpose2d: expected a 2-D tensor, got shape ", shape_str(t.shape()));
  int64_t r = t.dim(0), c = t.dim(1);
  size_t es = dtype_size(t.dtype());
  Tensor out = Tensor::empty({c, r}, t.dtype());
  const auto* src = static_cast<const uint8_t*>(t.raw());
  auto* dst = static_cast<uint8_t*>(out.raw());
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) std::memcpy(dst + (j * r + i) * es, src + (i * c + j) * es, es);
  return out;
}

TensorMap apply_layout(const Layout& layout, const std::map<std::string, Tensor>& file, const std::string& source) {
  TensorMap out;
  for (const auto& e : layout) {
    auto it = file.find(e.file_key);
    PIG_CHECK(it != file.end(), source, ": missing tensor '", e.file_key, "' (", e.full_name(), ")");
    const Tensor& t = it->second;
    PIG_CHECK(t.shape() == e.file_shape, source, ": tensor '", e.file_key, "' has shape ", shape_str(t.shape()),
              ", expected ", shape_str(e.file_shape), " (", e.full_name(), " ", shape_str(e.shape), ")");
    switch (e.transform) {
      case KeyTransform::Same:
        out[e.name] = t;
        break;
      case KeyTransform::Reshape:
        out[e.name] = t.reshape(e.shape);
        break;
      case KeyTransform::FusedPart: {
        int64_t rows = t.dim(0) / e.parts;
        out[e.name] = t.slice0(e.part * rows, (e.part + 1) * rows).reshape(e.shape);
        break;
      }
      case KeyTransform::Transpose:
        out[e.name] = transpose2d(t);
        break;
    }
  }
  return out;
}

}  // namespace pigment
