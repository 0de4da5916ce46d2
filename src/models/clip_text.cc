#include "models/clip_text.h"

#include <cmath>
#include <cstring>

#include "ops/ops.h"
#include "ops/precision.h"

namespace pigment {

ClipTextConfig ClipTextConfig::from_config(const ModelConfig& config) {
  // A full CLIPModel config keeps the text encoder's fields in "text_config".
  if (config.has("text_config") && config.json()["text_config"].is_object())
    return from_config(ModelConfig(config.json()["text_config"], config.source() + " (text_config)"));
  ClipTextConfig c;
  c.vocab_size = config.get_int("vocab_size", c.vocab_size);
  c.hidden_size = config.get_int("hidden_size", c.hidden_size);
  c.intermediate_size = config.get_int("intermediate_size", c.intermediate_size);
  c.num_attention_heads = config.get_int("num_attention_heads", c.num_attention_heads);
  c.num_hidden_layers = config.get_int("num_hidden_layers", c.num_hidden_layers);
  c.max_position_embeddings = config.get_int("max_position_embeddings", c.max_position_embeddings);
  c.projection_dim = config.get_int("projection_dim", c.projection_dim);
  c.hidden_act = config.get_string("hidden_act", c.hidden_act);
  c.layer_norm_eps = config.get_double("layer_norm_eps", c.layer_norm_eps);
  c.bos_token_id = config.get_int("bos_token_id", c.bos_token_id);
  c.eos_token_id = config.get_int("eos_token_id", c.eos_token_id);
  c.with_projection = false;
  if (config.has("architectures"))
    for (const auto& a : config.get_strings("architectures"))
      if (a == "CLIPTextModelWithProjection") c.with_projection = true;

  const std::string& src = config.source();
  PIG_CHECK(c.vocab_size > 0 && c.hidden_size > 0 && c.intermediate_size > 0 && c.num_hidden_layers > 0 &&
                c.max_position_embeddings > 0 && c.projection_dim > 0,
            src, ": CLIP sizes must be positive");
  PIG_CHECK(c.num_attention_heads > 0 && c.hidden_size % c.num_attention_heads == 0, src, ": hidden_size ",
            c.hidden_size, " does not split into num_attention_heads ", c.num_attention_heads);
  PIG_CHECK(c.hidden_act == "quick_gelu" || c.hidden_act == "gelu" || c.hidden_act == "gelu_new" ||
                c.hidden_act == "gelu_pytorch_tanh",
            src, ": hidden_act '", c.hidden_act, "' is not supported (quick_gelu, gelu, gelu_new, gelu_pytorch_tanh)");
  return c;
}

ClipTextModel ClipTextModel::load(const ClipTextConfig& config, const Weights& weights) {
  ClipTextModel m;
  m.config_ = config;
  const int64_t H = config.hidden_size, I = config.intermediate_size;
  Weights tm = weights.sub("text_model");
  m.token_embedding_ = tm.get("embeddings.token_embedding.weight", {config.vocab_size, H});
  m.position_embedding_ = tm.get("embeddings.position_embedding.weight", {config.max_position_embeddings, H});
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    Weights lw = tm.sub("encoder.layers." + std::to_string(i));
    Layer l;
    l.ln1_w = lw.get("layer_norm1.weight", {H});
    l.ln1_b = lw.get("layer_norm1.bias", {H});
    l.ln2_w = lw.get("layer_norm2.weight", {H});
    l.ln2_b = lw.get("layer_norm2.bias", {H});
    l.q = Linear(lw, "self_attn.q_proj", H, H);
    l.k = Linear(lw, "self_attn.k_proj", H, H);
    l.v = Linear(lw, "self_attn.v_proj", H, H);
    l.out = Linear(lw, "self_attn.out_proj", H, H);
    l.fc1 = Linear(lw, "mlp.fc1", H, I);
    l.fc2 = Linear(lw, "mlp.fc2", I, H);
    m.layers_.push_back(std::move(l));
  }
  // A layer beyond the configured count means the config does not describe this checkpoint.
  PIG_CHECK(!tm.has("encoder.layers." + std::to_string(config.num_hidden_layers) + ".layer_norm1.weight"),
            weights.source(), ": has more than num_hidden_layers = ", config.num_hidden_layers, " encoder layers");
  m.final_ln_w_ = tm.get("final_layer_norm.weight", {H});
  m.final_ln_b_ = tm.get("final_layer_norm.bias", {H});
  if (config.with_projection) m.text_projection_ = weights.get("text_projection.weight", {config.projection_dim, H});
  return m;
}

Tensor ClipTextModel::embed(const std::vector<std::vector<int64_t>>& ids, const Tensor* extra_rows) const {
  PIG_CHECK(!ids.empty() && !ids[0].empty(), "CLIP text encoder: no token ids");
  const int64_t B = int64_t(ids.size()), T = int64_t(ids[0].size()), H = config_.hidden_size;
  const int64_t V = config_.vocab_size;
  PIG_CHECK(T <= config_.max_position_embeddings, "CLIP text encoder: ", T, " tokens, at most ",
            config_.max_position_embeddings, " fit its position embeddings");
  int64_t E = 0;
  if (extra_rows) {
    PIG_CHECK(extra_rows->ndim() == 2 && extra_rows->dim(1) == H, "CLIP text encoder: extra embedding rows ",
              shape_str(extra_rows->shape()), " are not [E, ", H, "]");
    E = extra_rows->dim(0);
  }
  std::vector<int64_t> base(B * T), extra_at, extra_ids;
  for (int64_t b = 0; b < B; ++b) {
    PIG_CHECK(int64_t(ids[b].size()) == T, "CLIP text encoder: sequence ", b, " has ", ids[b].size(),
              " tokens, sequence 0 has ", T, " (a batch needs equal lengths)");
    for (int64_t t = 0; t < T; ++t) {
      int64_t id = ids[b][t];
      PIG_CHECK(id >= 0 && id < V + E, "CLIP text encoder: token id ", id, " at [", b, ", ", t, "] outside the ", V,
                "-token vocabulary", E ? " and its added embeddings" : "");
      if (id < V) {
        base[b * T + t] = id;
      } else {
        base[b * T + t] = 0;
        extra_at.push_back(b * T + t);
        extra_ids.push_back(id - V);
      }
    }
  }
  Tensor tok = ops::embedding(token_embedding_, base);
  if (!extra_at.empty()) {
    // Added tokens overwrite their rows of the lookup.
    tok = ops::replace_rows(tok, extra_at, ops::embedding(*extra_rows, extra_ids));
  }
  std::vector<int64_t> positions(T);
  for (int64_t t = 0; t < T; ++t) positions[t] = t;
  Tensor pos = ops::embedding(position_embedding_, positions);
  return ops::add(tok.reshape({B, T, H}), pos);
}

ops::Activation ClipTextModel::activation() const {
  const std::string& a = config_.hidden_act;
  if (a == "quick_gelu") return ops::Activation::QuickGelu;
  if (a == "gelu") return ops::Activation::Gelu;
  return ops::Activation::GeluTanh;  // gelu_new, gelu_pytorch_tanh (validated in from_config)
}

Tensor ClipTextModel::run_layer(const Layer& l, const Tensor& x, const UNetHooks& hooks) const {
  const int heads = int(config_.num_attention_heads);
  const float scale = float(1.0 / std::sqrt(double(config_.hidden_size / heads)));
  Tensor h = ops::layer_norm(x, l.ln1_w, l.ln1_b, float(config_.layer_norm_eps));
  Tensor q = l.q(h, hooks);
  Tensor k = l.k(h, hooks);
  Tensor v = l.v(h, hooks);
  h = ops::attention_causal(q, k, v, heads, scale);
  Tensor y = l.out(h, hooks, ops::Activation::None, &x);  // x + out_proj(attention)
  h = ops::layer_norm(y, l.ln2_w, l.ln2_b, float(config_.layer_norm_eps));
  h = l.fc1(h, hooks, activation(), nullptr);
  return l.fc2(h, hooks, ops::Activation::None, &y);  // y + fc2(act(fc1(...)))
}

Tensor ClipTextModel::final_norm(const Tensor& hidden) const {
  return ops::layer_norm(hidden, final_ln_w_, final_ln_b_, float(config_.layer_norm_eps));
}

int64_t ClipTextModel::pooled_position(const std::vector<int64_t>& ids) const {
  PIG_CHECK(!ids.empty(), "CLIP text encoder: empty sequence");
  int64_t best = 0;
  if (config_.eos_token_id == 2) {
    // Legacy configs: the highest id (the first end-of-text token, 49407, unless added tokens are present).
    for (size_t i = 1; i < ids.size(); ++i)
      if (ids[i] > ids[best]) best = int64_t(i);
    return best;
  }
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] == config_.eos_token_id) return int64_t(i);
  return 0;  // no end-of-text token: transformers' argmax over all-false picks position 0
}

ClipOutput ClipTextModel::forward(const std::vector<std::vector<int64_t>>& ids, const ClipOptions& options) const {
  const int L = int(layers_.size());
  PIG_CHECK(options.clip_skip >= 1 && options.clip_skip <= L, "CLIP text encoder: clip skip ", options.clip_skip,
            " outside 1..", L, " (the number of layers)");
  // hidden_states[L + 1 - clip_skip] conditions the image.
  const int chosen = L + 1 - options.clip_skip;
  ClipOutput out;
  static const UNetHooks kNoHooks;
  const UNetHooks& hooks = options.hooks ? *options.hooks : kNoHooks;
  // Never in int8: the text conditions every step, and the encoder runs once per prompt (ops/precision.h).
  const ops::ScopedPrecision no_int8(ops::without_int8());
  Tensor x = embed(ids, options.extra_rows);
  if (options.keep_hidden_states) out.hidden_states.push_back(x);
  for (int i = 0; i < L; ++i) {
    x = run_layer(layers_[i], x, hooks);
    if (options.keep_hidden_states) out.hidden_states.push_back(x);
    if (i + 1 == chosen && chosen != L) out.context = options.final_norm ? final_norm(x) : x;
  }
  out.last_hidden_state = final_norm(x);
  if (chosen == L) out.context = options.final_norm ? out.last_hidden_state : x;

  const int64_t B = int64_t(ids.size()), T = int64_t(ids[0].size()), H = config_.hidden_size;
  std::vector<int64_t> rows(B);
  for (int64_t b = 0; b < B; ++b) rows[b] = b * T + pooled_position(ids[b]);
  out.pooled = ops::embedding(out.last_hidden_state.reshape({B * T, H}), rows);
  if (config_.with_projection) out.text_embeds = ops::linear(out.pooled, text_projection_);
  return out;
}

}  // namespace pigment
