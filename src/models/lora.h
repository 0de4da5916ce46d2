// LoRA adapters at inference. A file (kohya/A1111 `lora_unet_…`/`lora_te_…`, diffusers `unet.<path>.lora.down.weight`,
// `text_encoder.<path>.lora_linear_layer.down.weight`, PEFT `lora_A`/`lora_B`) is parsed into raw entries, then
// resolved against a model's own module names. Applying it either merges W' = W + w·(alpha/rank)·up@down into copies
// of the patched weights (the base map stays untouched), or adds w·(alpha/rank)·up(down(x)) at run time through
// UNetHooks::layer_delta.
//
// LyCORIS modules under the same kohya prefixes (or `lycoris_`) follow A1111's extensions-builtin/Lora rules:
//   LoHa  `hada_w1_a/b`, `hada_w2_a/b` (+ `hada_t1/t2` Tucker cores): ΔW = (w1a·w1b) ⊙ (w2a·w2b), scale alpha/rank(w1b)
//   LoKr  `lokr_w1` or `lokr_w1_a/b`, `lokr_w2` or `lokr_w2_a/b` (+ `lokr_t2`): ΔW = w1 ⊗ w2 reshaped to the weight,
//         scale alpha/rank of the factored half (w2b, else w1b), 1 when neither half is factored
//   full  `diff` (ΔW as is, scale 1) and `diff_b` (a bias delta, times the weight only)
//   LoCon `lora_mid.weight` (a Tucker core between lora_down and lora_up)
// plus `scale` (overrides alpha/rank) and `dora_scale` (DoRA: W' = m·(W + sΔW)/‖W + sΔW‖ per input channel, the
// delta being W' − W). These are computed once into a dense weight-shaped delta; the run-time path adds it as a side
// weight (x·ΔWᵀ or conv(x, ΔW)), so merged and run-time results agree. IA3, OFT, GLoRA, norm and PEFT DoRA keys are
// refused with a one-line error naming the key.
#pragma once
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/weights.h"

namespace pigment {

enum class LoraKind { LoRA, LoHa, LoKr, Full };
const char* lora_kind_name(LoraKind k);

// One module of the file (a low-rank pair, or a LyCORIS module), before it is matched to a layer.
struct LoraEntry {
  std::string component;  // unet | text_encoder | text_encoder_2
  std::string key;        // kohya: flattened name ("down_blocks_0_…_to_q"); otherwise the dotted module path
  bool flattened = false;
  LoraKind kind = LoraKind::LoRA;
  Tensor down, up;        // LoRA, float32; [r, in] / [out, r] or [r, in, k, k] / [out, r, 1, 1]
  // Every other tensor of the module by its key suffix ("lora_mid.weight", "hada_w1_a", "lokr_w2", "diff", "diff_b",
  // "dora_scale"), float32. Factor shapes are checked against each other on load and against the layer on resolve.
  std::map<std::string, Tensor> parts;
  std::optional<float> alpha, scale;
  // The ΔW scale before the user's weight: `scale` if given, else alpha/dim (dim: LoRA/LoHa rank, LoKr rank of the
  // factored half) when both exist, else 1 (A1111's NetworkModule.calc_scale).
  float factor() const;
  // A low-rank pair applied as such (no Tucker core, no DoRA); everything else becomes a dense delta.
  bool low_rank() const { return kind == LoraKind::LoRA && !parts.count("lora_mid.weight") && !parts.count("dora_scale"); }
};

struct LoraFile {
  std::string path;
  std::vector<LoraEntry> entries;
  // A .safetensors / .pt / .ckpt LoRA. Unknown key shapes, missing halves and LyCORIS formats throw, naming the key.
  static LoraFile load(const std::string& path);
  static LoraFile from_tensors(const std::map<std::string, Tensor>& tensors, const std::string& source);
};

// A LoRA entry bound to one layer of a model.
struct LoraModule {
  std::string component, module;  // module: diffusers / transformers name without ".weight"
  Tensor down, up;                // a plain low-rank pair, or
  Tensor delta;                   // a dense weight-shaped ΔW (LyCORIS, LoCon mid, DoRA)
  Tensor bias_delta;              // `diff_b`: added to the bias times the user's weight only
  float factor = 1;               // applied to up@down or delta: alpha / rank (1 without alpha; 1 for DoRA)
};

// The weight-shaped ΔW of an entry for a layer of shape `weight_shape`, before factor() (DoRA is applied later, in
// resolve_lora, as it needs the weight). Throws naming `where` when the factors do not fit the layer.
Tensor lycoris_delta(const LoraEntry& e, const Shape& weight_shape, const std::string& where);

struct ResolvedLora {
  std::string path;
  std::vector<LoraModule> modules;
  std::vector<std::string> unmatched;  // entries that match no layer of the model (report them as warnings)
};

// Binds every entry to a layer of `components` (component name → its tensor map). The kohya mapping is built from
// the model's own names ('.' → '_'). A shape that does not fit, or a file of which nothing fits, throws (a LoRA for
// another family).
// `aliases` (optional): per component, more module names (e.g. the original single-file ones) → the model's module
// name; kohya names SDXL's UNet modules by the SGM checkpoint's keys (`lora_unet_input_blocks_4_1_..._to_q`).
using ModuleAliases = std::map<std::string, std::map<std::string, std::string>>;
ResolvedLora resolve_lora(const LoraFile& file, const std::map<std::string, const TensorMap*>& components,
                          const ModuleAliases& aliases = {});

// The UNet's modules by their names in the original single-file layout (without "model.diffusion_model.",
// "input_blocks.4.1.transformer_blocks.0.attn1.to_q" → "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"),
// generated from the UNet's config: the aliases kohya's SDXL LoRAs need.
std::map<std::string, std::string> unet_original_module_names(const nlohmann::json& unet_config);

struct LoraUse {
  std::shared_ptr<const ResolvedLora> lora;
  float weight = 1;
};

// A LoRA file with A1111's separate text-encoder and UNet multipliers (`<lora:NAME:TE:UNET>`).
struct LoraChoice {
  LoraFile file;
  float te_weight = 1, unet_weight = 1;
  LoraChoice(LoraFile f, float weight) : file(std::move(f)), te_weight(weight), unet_weight(weight) {}
  LoraChoice(LoraFile f, float te, float unet) : file(std::move(f)), te_weight(te), unet_weight(unet) {}
};

// A copy of `base` (views shared) in which every weight a LoRA of `uses` patches for `component` is a new float32
// tensor W + Σ weight·factor·up@down.
std::shared_ptr<const TensorMap> merge_loras(const TensorMap& base, const std::string& component,
                                             const std::vector<LoraUse>& uses);

// The low-rank product up@down as a weight-shaped tensor ([out, in] or [out, in, k, k]).
Tensor lora_delta_weight(const Tensor& down, const Tensor& up);

// Run-time application for one component: a UNetHooks::layer_delta callable.
class LoraRuntime {
 public:
  LoraRuntime(const std::string& component, const std::vector<LoraUse>& uses);
  bool empty() const { return layers_.empty(); }
  // y += Σ weight·factor·up(down(x)) (or x·ΔWᵀ / conv(x, ΔW) for dense deltas, plus weight·diff_b); convolutions
  // take the base conv's stride (from the shapes) and "same" padding.
  void apply(const std::string& name, const Tensor& x, Tensor& y) const;

 private:
  struct Term {
    Tensor down, up, delta, bias_delta;
    float scale, bias_scale;
  };
  std::map<std::string, std::vector<Term>> layers_;
};

}  // namespace pigment
