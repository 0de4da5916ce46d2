// The CLIP text encoder, with the semantics of transformers' CLIPTextModel and CLIPTextModelWithProjection:
// token + position embeddings, pre-norm transformer layers with causal self-attention, a final layer norm, the
// pooled output at the end-of-text token and (with projection) text_embeds = pooled · text_projectionᵀ.
// Weights use transformers naming: text_model.embeddings.*, text_model.encoder.layers.N.*,
// text_model.final_layer_norm.*, text_projection.weight. They stay in their file dtype.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/model_config.h"
#include "models/unet_layers.h"
#include "models/weights.h"
#include "ops/ops.h"

namespace pigment {

// Defaults are transformers' CLIPTextConfig defaults (used for keys a config.json leaves out).
struct ClipTextConfig {
  int64_t vocab_size = 49408;
  int64_t hidden_size = 512;
  int64_t intermediate_size = 2048;
  int64_t num_attention_heads = 8;
  int64_t num_hidden_layers = 12;
  int64_t max_position_embeddings = 77;
  int64_t projection_dim = 512;
  std::string hidden_act = "quick_gelu";  // quick_gelu | gelu | gelu_new | gelu_pytorch_tanh
  double layer_norm_eps = 1e-5;
  int64_t bos_token_id = 49406;
  // The SD configs keep the legacy value 2, for which transformers pools at argmax(ids) (the first 49407);
  // any other value pools at the first occurrence of that id.
  int64_t eos_token_id = 49407;
  // CLIPTextModelWithProjection: load and apply text_projection.
  bool with_projection = false;

  // From a transformers config.json. with_projection follows "architectures"; a CLIPModel config (with a
  // "text_config" section) is read from that section.
  static ClipTextConfig from_config(const ModelConfig& config);
};

struct ClipOptions {
  // Which hidden state conditions the image, counted from the end as A1111 does: 1 = last layer,
  // 2 = penultimate ("CLIP skip 2"), up to num_hidden_layers.
  int clip_skip = 1;
  // Apply final_layer_norm to that hidden state (SD1/SD2). SDXL uses the penultimate layer without it.
  bool final_norm = true;
  // Keep every hidden state in ClipOutput::hidden_states.
  bool keep_hidden_states = false;
  // Extra token-embedding rows [E, hidden] (textual inversion): ids vocab_size .. vocab_size+E-1 select them.
  const Tensor* extra_rows = nullptr;
  // Run-time layer deltas (training a text-encoder LoRA): hooks->layer_delta sees every linear layer of the
  // encoder by its transformers name, "text_model.encoder.layers.N.self_attn.{q,k,v,out}_proj" and
  // "text_model.encoder.layers.N.mlp.fc{1,2}", with its input and output (the delta lands before fc1's
  // activation). The UNet's hooks type; only layer_delta applies here.
  const UNetHooks* hooks = nullptr;
};

struct ClipOutput {
  Tensor last_hidden_state;  // [B, T, H]: final_layer_norm(output of the last layer)
  Tensor context;            // [B, T, H]: the conditioning ClipOptions chose (clip_skip, final_norm)
  Tensor pooled;             // [B, H]: last_hidden_state at the end-of-text position
  Tensor text_embeds;        // [B, projection_dim]: pooled · text_projectionᵀ (with_projection only)
  // keep_hidden_states only: [0] = embeddings, [i] = output of layer i before the final layer norm.
  std::vector<Tensor> hidden_states;
};

class ClipTextModel {
 public:
  ClipTextModel() = default;
  // Checks every tensor's presence and shape now, so a wrong checkpoint fails at load, naming the tensor.
  static ClipTextModel load(const ClipTextConfig& config, const Weights& weights);
  static ClipTextModel load(const ModelConfig& config, const Weights& weights) {
    return load(ClipTextConfig::from_config(config), weights);
  }

  // ids: B sequences of equal length T <= max_position_embeddings.
  ClipOutput forward(const std::vector<std::vector<int64_t>>& ids, const ClipOptions& options = {}) const;

  // Token + position embeddings [B, T, H] (hidden_states[0]).
  Tensor embed(const std::vector<std::vector<int64_t>>& ids, const Tensor* extra_rows = nullptr) const;
  // final_layer_norm over the last dimension.
  Tensor final_norm(const Tensor& hidden) const;
  // Position of the pooled token in one sequence, as transformers chooses it.
  int64_t pooled_position(const std::vector<int64_t>& ids) const;

  const ClipTextConfig& config() const { return config_; }
  // The token embedding table [vocab_size, H] in its file dtype (textual inversion training starts from it).
  const Tensor& token_embedding() const { return token_embedding_; }

 private:
  struct Layer {
    Tensor ln1_w, ln1_b, ln2_w, ln2_b;
    Linear q, k, v, out, fc1, fc2;
  };
  Tensor run_layer(const Layer& l, const Tensor& x, const UNetHooks& hooks) const;
  ops::Activation activation() const;

  ClipTextConfig config_;
  Tensor token_embedding_, position_embedding_;
  std::vector<Layer> layers_;
  Tensor final_ln_w_, final_ln_b_;
  Tensor text_projection_;
};

}  // namespace pigment
