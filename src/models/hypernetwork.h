// A1111 hypernetworks (modules/hypernetworks/hypernetwork.py): per context width, two small MLPs that transform the
// cross-attention context before to_k and to_v: context_k = context + mlp_k(context)·multiplier (same for v).
// The MLP is rebuilt from the file's fields exactly as A1111 lays out its nn.Sequential (linear, activation unless
// it is the output layer without activate_output, layer norm, dropout), so the state-dict indices line up; dropout
// is inactive at inference and active while a training tape records (masks from a seed, see set_dropout_seed).
// create() builds a new one (zero weights, for a trainer to initialise) and save() writes A1111's .pt.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/unet_layers.h"

namespace pigment {

class HypernetworkModule {
 public:
  struct Step {
    enum Kind { Linear, Activation, LayerNorm, Dropout } kind;
    Tensor weight, bias;
    int index = -1;  // position in A1111's nn.Sequential (the state-dict index "linear.<index>.weight")
    float p = 0;     // Dropout: the probability of zeroing an element
  };
  HypernetworkModule() = default;
  HypernetworkModule(std::vector<Step> steps, std::string activation) : steps_(std::move(steps)),
                                                                          activation_(std::move(activation)) {}
  // x + mlp(x)·multiplier. Dropout acts only when dropout_seed is non-zero and the hidden values need a gradient
  // (a training tape records): torch.nn.Dropout's keep-and-scale by 1/(1 - p), its masks drawn from the seed.
  Tensor forward(const Tensor& x, float multiplier, uint64_t dropout_seed = 0) const;
  // The trained tensors under their state-dict names ("linear.0.weight", ...): views of the module's own memory,
  // so a training tape that watches them sees every use.
  std::map<std::string, Tensor> parameters() const;
  // The same in nn.Sequential order (as state_dict() lists them).
  std::vector<std::pair<std::string, Tensor>> state_dict() const;
  const std::vector<Step>& steps() const { return steps_; }

 private:
  std::vector<Step> steps_;
  std::string activation_;
};

// What A1111 stores beside the weights and builds the modules from (its create_hypernetwork options).
struct HypernetworkStructure {
  std::vector<double> layer_structure{1, 2, 1};
  std::string activation = "linear";  // activation_func
  bool layer_norm = false;            // is_layer_norm
  bool activate_output = false;
  bool use_dropout = false;
  bool last_layer_dropout = false;
  // Per entry of layer_structure (the first is unused); empty: derived from use_dropout / last_layer_dropout as
  // A1111's parse_dropout_structure does.
  std::vector<double> dropout_structure;
  std::string weight_initialization = "Normal";  // recorded only: the weights are whatever they are
};

// The activation_func names pigment builds (A1111's names: "swish" is torch's Hardswish), "linear" included.
const std::vector<std::string>& hypernetwork_activations();
// A1111's parse_dropout_structure: [0, 0.3 × (n - 3), 0.3 if last_layer_dropout else 0, 0], or zeros without dropout.
std::vector<double> default_dropout_structure(const std::vector<double>& layer_structure, bool use_dropout,
                                              bool last_layer_dropout);

// The width of a hidden layer as A1111 builds it: int(dim * multiplier), Python's truncation of the float product.
int64_t layer_width(int64_t dim, double multiplier);

class Hypernetwork {
 public:
  // An A1111 .pt file; the name defaults to the file stem. Malformed files throw, naming the file and the field.
  static Hypernetwork load(const std::string& path, const std::string& name = "");
  // A new hypernetwork with a module pair per context width in `sizes`, every weight and bias zero (float32, owned).
  // Bad structures (not starting and ending with 1, unknown activation, dropout outside [0, 1)) are errors.
  static Hypernetwork create(const std::string& name, const std::vector<int64_t>& sizes,
                             const HypernetworkStructure& structure);

  // Writes A1111's .pt (torch.save of a dict: each width → (key state dict, value state dict), then step, name,
  // layer_structure, activation_func, is_layer_norm, weight_initialization, sd_checkpoint, sd_checkpoint_name,
  // activate_output, use_dropout, dropout_structure, last_layer_dropout, optional_info), atomically.
  struct SaveInfo {
    int64_t step = 0;
    std::string sd_checkpoint;       // the base model's short hash ("" → None)
    std::string sd_checkpoint_name;  // its name ("" → None)
  };
  void save(const std::string& path, const SaveInfo& info) const;

  const std::string& name() const { return name_; }
  // Width multipliers, first and last 1; fractional ones allowed (A1111: "1, 1.5, 1"), see layer_width.
  const std::vector<double>& layer_structure() const { return structure_.layer_structure; }
  std::vector<int64_t> sizes() const;
  const HypernetworkStructure& structure() const { return structure_; }
  bool applies_to(int64_t width) const { return layers_.count(width) != 0; }
  // Transforms (context_k, context_v) in place if a module pair for their width exists. `layer` (the attention
  // layer's name) keys the dropout masks while training, so a recomputed block draws the same ones.
  void apply(Tensor& context_k, Tensor& context_v, float multiplier, const std::string& layer = "") const;
  // Training: dropout masks come from this seed (0: dropout off, as at inference).
  void set_dropout_seed(uint64_t seed) const { dropout_seed_ = seed; }
  // Every module's parameters as "<width>.k.linear.0.weight" / "<width>.v.…" (the naming of A1111's per-width
  // state dicts, key module first).
  std::map<std::string, Tensor> parameters() const;

 private:
  std::string name_;
  HypernetworkStructure structure_;
  std::map<int64_t, std::pair<HypernetworkModule, HypernetworkModule>> layers_;
  mutable uint64_t dropout_seed_ = 0;
};

struct HypernetworkUse {
  std::shared_ptr<const Hypernetwork> net;
  float multiplier = 1;
};

// A UNetHooks::attention_context that chains the hypernetworks over every attention layer's context, as A1111's
// apply_hypernetworks does (self-attention included when a module for its width exists).
std::function<AttentionContext(const std::string&, const Tensor&)> hypernetwork_hook(
    std::vector<HypernetworkUse> uses);

}  // namespace pigment
