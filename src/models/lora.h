// LoRA adapters at inference. A file (kohya/A1111 `lora_unet_…`/`lora_te_…`, diffusers `unet.<path>.lora.down.weight`,
// `text_encoder.<path>.lora_linear_layer.down.weight`, PEFT `lora_A`/`lora_B`) is parsed into raw entries, then
// resolved against a model's own module names. Applying it either merges W' = W + w·(alpha/rank)·up@down into copies
// of the patched weights (the base map stays untouched), or adds w·(alpha/rank)·up(down(x)) at run time through
// UNetHooks::layer_delta. LyCORIS LoHa/LoKr and LoCon mid weights are rejected with a clear message.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/weights.h"

namespace pigment {

// One low-rank pair as the file holds it, before it is matched to a layer.
struct LoraEntry {
  std::string component;  // unet | text_encoder | text_encoder_2
  std::string key;        // kohya: flattened name ("down_blocks_0_…_to_q"); otherwise the dotted module path
  bool flattened = false;
  Tensor down, up;        // float32; [r, in] / [out, r] or [r, in, k, k] / [out, r, 1, 1]
  std::optional<float> alpha;
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
  Tensor down, up;
  float factor = 1;               // alpha / rank (1 without alpha)
};

struct ResolvedLora {
  std::string path;
  std::vector<LoraModule> modules;
  std::vector<std::string> unmatched;  // entries that match no layer of the model (report them as warnings)
};

// Binds every entry to a layer of `components` (component name → its tensor map). The kohya mapping is built from
// the model's own names ('.' → '_'). A shape that does not fit, or a file of which nothing fits, throws (a LoRA for
// another family).
ResolvedLora resolve_lora(const LoraFile& file, const std::map<std::string, const TensorMap*>& components);

struct LoraUse {
  std::shared_ptr<const ResolvedLora> lora;
  float weight = 1;
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
  // y += Σ weight·factor·up(down(x)); convolutions take the base conv's stride (from the shapes) and "same" padding.
  void apply(const std::string& name, const Tensor& x, Tensor& y) const;

 private:
  struct Term {
    Tensor down, up;
    float scale;
  };
  std::map<std::string, std::vector<Term>> layers_;
};

}  // namespace pigment
