// LoRA training (--method lora): low-rank deltas on the frozen model's linear layers,
//   y = W x + b + (alpha / rank) · up(down(x)),
// added at run time through UNetHooks::layer_delta, so the model code is the inference code. down starts as
// kohya's (Kaiming-uniform, a = √5), up as zeros, so training starts from the base model exactly.
// Saved in kohya's format (lora_unet_<module path with _>.lora_down.weight / .lora_up.weight / .alpha), which
// pigment's own loader, A1111 and sd-scripts read.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "models/unet_layers.h"
#include "models/weights.h"

namespace pigment::training {

struct LoraOptions {
  int rank = 4;
  float alpha = 1.f;  // kohya's default network_alpha
  // Which linear (and 1x1 convolution) layers get a LoRA: module names ending in one of these (diffusers names);
  // kohya's default: every linear layer of the transformer blocks, and their proj_in/proj_out.
  std::vector<std::string> targets{"to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2",
                                   "proj_in", "proj_out"};
  // LoCon: 3x3 convolutions of the resnets and the down/upsamplers get a LoRA of this rank (0: none), with
  // down a 3x3 convolution of the layer's stride and padding and up a 1x1 convolution (kohya's conv_dim).
  int conv_rank = 0;
  float conv_alpha = 1.f;
  // kohya's network_dropout: while training (a tape records), each element of down(x) is zeroed with this
  // probability and the rest scaled by 1/(1 − p). Never at inference.
  float dropout = 0;
  // The UNet gets a network unless false (kohya's --network_train_text_encoder_only); the text encoder(s) (SDXL:
  // both) get one with TrainOptions::train_text_encoder, on the layers named by text_encoder_targets (kohya's: every
  // linear layer of CLIPAttention and CLIPMLP). kohya trains both by default, pigment the UNet alone.
  bool train_unet = true;
  std::vector<std::string> text_encoder_targets{"q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"};
};

class LoraNetwork {
 public:
  struct Module {
    std::string name;  // the diffusers module path, e.g. down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q
    Tensor down;       // [rank, in] (linear) or [rank, in, k, k] (convolution), float32, trained
    Tensor up;         // [out, rank] or [out, rank, 1, 1], float32, trained
    float scale = 1;   // alpha / rank
    float alpha = 1;
  };

  // One module per linear or 1x1 weight `<module>.weight` of `model` whose module name ends in a target, and per
  // 3x3 convolution of a resnet or resampler when conv_rank > 0.
  // `prefix` starts the kohya names of its tensors: "lora_unet_", "lora_te_" (SD1/SD2's text encoder), "lora_te1_" /
  // "lora_te2_" (SDXL's).
  static LoraNetwork create(const TensorMap& model, const LoraOptions& options, uint64_t seed,
                            const std::string& prefix = "lora_unet_");
  // The network of a text encoder: create() over options.text_encoder_targets.
  static LoraNetwork create_text_encoder(const TensorMap& model, const LoraOptions& options, uint64_t seed,
                                         const std::string& prefix);
  // A network from given modules (e.g. loaded for resuming, or a test's inputs).
  LoraNetwork(std::vector<Module> modules, const LoraOptions& options, std::string prefix = "lora_unet_");
  LoraNetwork() = default;

  // The hook that adds every module's delta to its layer's output (recorded when a tape records).
  UNetHooks hooks() const;
  // Trainable tensors: "<kohya name>.lora_down.weight" / ".lora_up.weight" → tensor (shares memory).
  std::vector<std::pair<std::string, Tensor>> parameters() const;
  // kohya-format tensors, with `.alpha` (float32), named with the network's prefix.
  TensorMap kohya_tensors() const;
  const std::string& prefix() const { return prefix_; }
  static std::string kohya_name(const std::string& module, const std::string& prefix = "lora_unet_");

  const std::vector<Module>& modules() const { return modules_; }
  const LoraOptions& options() const { return options_; }
  // The seed of the dropout masks of the next forward (each module's mask follows from it and the module's index,
  // so a checkpointed segment recomputed in the backward draws the same mask).
  void set_dropout_seed(uint64_t seed) { dropout_seed_ = seed; }

 private:
  std::vector<Module> modules_;
  std::map<std::string, size_t> by_name_;
  LoraOptions options_;
  std::string prefix_ = "lora_unet_";
  uint64_t dropout_seed_ = 0;
};

}  // namespace pigment::training
