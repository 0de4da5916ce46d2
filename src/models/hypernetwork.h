// A1111 hypernetworks (modules/hypernetworks/hypernetwork.py): per context width, two small MLPs that transform the
// cross-attention context before to_k and to_v: context_k = context + mlp_k(context)·multiplier (same for v).
// The MLP is rebuilt from the file's fields exactly as A1111 lays out its nn.Sequential (linear, activation unless
// it is the output layer without activate_output, layer norm, dropout), so the state-dict indices line up; dropout
// is inactive at inference.
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
    enum Kind { Linear, Activation, LayerNorm } kind;
    Tensor weight, bias;
    int index = -1;  // position in A1111's nn.Sequential (the state-dict index "linear.<index>.weight")
  };
  HypernetworkModule() = default;
  HypernetworkModule(std::vector<Step> steps, std::string activation) : steps_(std::move(steps)),
                                                                          activation_(std::move(activation)) {}
  // x + mlp(x)·multiplier
  Tensor forward(const Tensor& x, float multiplier) const;
  // The trained tensors under their state-dict names ("linear.0.weight", ...): views of the module's own memory,
  // so a training tape that watches them sees every use.
  std::map<std::string, Tensor> parameters() const;

 private:
  std::vector<Step> steps_;
  std::string activation_;
};

// The width of a hidden layer as A1111 builds it: int(dim * multiplier), Python's truncation of the float product.
int64_t layer_width(int64_t dim, double multiplier);

class Hypernetwork {
 public:
  // An A1111 .pt file; the name defaults to the file stem. Malformed files throw, naming the file and the field.
  static Hypernetwork load(const std::string& path, const std::string& name = "");

  const std::string& name() const { return name_; }
  // Width multipliers, first and last 1; fractional ones allowed (A1111: "1, 1.5, 1"), see layer_width.
  const std::vector<double>& layer_structure() const { return layer_structure_; }
  std::vector<int64_t> sizes() const;
  bool applies_to(int64_t width) const { return layers_.count(width) != 0; }
  // Transforms (context_k, context_v) in place if a module pair for their width exists.
  void apply(Tensor& context_k, Tensor& context_v, float multiplier) const;
  // Every module's parameters as "<width>.k.linear.0.weight" / "<width>.v.…" (the naming of A1111's per-width
  // state dicts, key module first).
  std::map<std::string, Tensor> parameters() const;

 private:
  std::string name_, activation_;
  std::vector<double> layer_structure_;
  std::map<int64_t, std::pair<HypernetworkModule, HypernetworkModule>> layers_;
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
