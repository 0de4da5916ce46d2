// A training method: what trains (the parameters, and hooks into the frozen model's forward) and how the result is
// written. One file per method (lora.cc, ...); the loop in trainer.cc is shared.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/unet_layers.h"
#include "training/optimizer.h"

namespace pigment {
class StableDiffusion;
struct GenerateRequest;
struct PromptEmbeds;
class UNet;
struct UNetExtras;
class Generator;
}
namespace pigment::ops::autograd {
class Tape;
}

namespace pigment::training {

struct TrainOptions;
struct Batch;

class Method {
 public:
  virtual ~Method() = default;
  // The trained tensors (float32, sharing memory with what the forward uses), by stable names.
  virtual std::vector<Param> params() = 0;
  // Hooks the UNet forward runs with (LoRA deltas).
  virtual UNetHooks unet_hooks() const { return {}; }
  // The UNet the trainer runs when the method trains one of its own (full fine-tuning: built on the method's
  // float32 copies of the weights); null: the loaded model's.
  virtual const UNet* unet() const { return nullptr; }
  // The text conditioning of a batch's captions when the method trains through the text encoder(s) (recorded: it
  // runs while the tape records): context [B, 77, D] and, for SDXL, pooled [B, P]. An undefined context: the
  // trainer encodes them with the frozen model.
  virtual PromptEmbeds encode_captions(const std::vector<std::string>& captions) const;
  // Makes `model` generate with the weights trained so far (sample images during training); false when the method
  // cannot yet. remove_from undoes it, leaving the model as the training loop uses it.
  virtual bool apply_to(StableDiffusion& model) const { return false; }
  virtual void remove_from(StableDiffusion& model) const {}
  // What the method feeds the UNet besides hooks, computed from the micro-batch while the tape records (ControlNet:
  // its residuals from the noisy latents, timesteps, text conditioning and the batch's control maps).
  virtual void add_unet_inputs(UNetExtras& extras, const Tensor& noisy, const std::vector<float>& timesteps,
                               const Tensor& context, const Batch& batch) const {}
  // Sample image `index`: what the request needs besides the prompt (ControlNet: its control map and unit;
  // hypernetworks act per request, not on the model).
  virtual void prepare_sample(GenerateRequest& request, size_t index) const {}
  // Called before each micro-batch's forward with a seed of that micro-batch (random choices inside the forward,
  // such as network dropout, come from it: the same on a recomputation and on a resumed run).
  virtual void begin_micro_batch(uint64_t seed) {}
  // A method with an objective of its own instead of the diffusion loss (the VAE's reconstruction + KL): runs one
  // micro-batch's forward under `tape` and its backward with d loss scaled by `scale`, and returns the loss. Every
  // random choice comes from `gen` (the micro-batch's generator). nullopt: the trainer's diffusion objective.
  virtual std::optional<float> own_objective(const Batch& batch, Generator& gen, ops::autograd::Tape& tape,
                                             float scale) {
    return std::nullopt;
  }
  // DreamBooth: the prompt every training image is trained with ("" keeps the images' captions) ...
  virtual std::string instance_prompt() const { return ""; }
  // ... and prior preservation: a folder of class images (the method made them before training), their prompt and
  // the weight of their loss. Each step's batch then holds the training images and as many class images, and the
  // loss is instance + weight · prior (diffusers' train_dreambooth.py).
  struct PriorData {
    std::string dir, prompt;
    float weight = 1;
  };
  virtual std::optional<PriorData> prior_data() const { return std::nullopt; }
  // Writes the result file (atomically); `metadata` is the run's training metadata.
  virtual void save(const std::string& path, const std::map<std::string, std::string>& metadata) const = 0;
  // Files that go beside the result, written after save() with the optimizer's final state (a hypernetwork's
  // A1111 <output>.optim).
  virtual void save_extras(const std::string& path, const Optimizer& optimizer) const {}
};

// The methods `pigment train --method` accepts.
const std::vector<std::string>& method_names();
// The method named `name` over a loaded model; an unknown name is an error listing the accepted ones.
std::unique_ptr<Method> make_method(const std::string& name, const StableDiffusion& model, const TrainOptions& o);

// One per method file.
std::unique_ptr<Method> make_lora_method(const StableDiffusion& model, const TrainOptions& o);
std::unique_ptr<Method> make_textual_inversion_method(const StableDiffusion& model, const TrainOptions& o);
std::unique_ptr<Method> make_full_method(const StableDiffusion& model, const TrainOptions& o);
std::unique_ptr<Method> make_vae_method(const StableDiffusion& model, const TrainOptions& o);
std::unique_ptr<Method> make_dreambooth_method(const StableDiffusion& model, const TrainOptions& o);
std::unique_ptr<Method> make_controlnet_method(const StableDiffusion& model, const TrainOptions& o);
std::unique_ptr<Method> make_hypernetwork_method(const StableDiffusion& model, const TrainOptions& o);
std::unique_ptr<Method> make_text_encoder_method(const StableDiffusion& model, const TrainOptions& o);

}  // namespace pigment::training
