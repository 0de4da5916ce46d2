// What the methods that train whole components share (full fine-tuning, the VAE method): float32 master copies of a
// component's weights that a model built on them reads and the optimizer changes in place, and a single-file
// checkpoint written from the trained copies and the base model's other components.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/model_loader.h"
#include "pipelines/stable_diffusion.h"
#include "training/method.h"

namespace pigment::training {

struct TrainedCopy {
  ModelComponent component;  // the base component with its tensors replaced by the float32 copies
  std::vector<Param> params;  // every parameter its config implies, in module order (a stable list), prefixed
                              // with the component name ("unet.conv_in.weight")
};
// `base` is a loaded component: unet, vae, text_encoder or text_encoder_2 (any text-encoder file layout).
TrainedCopy trainable_copy(const ModelComponent& base);

// A method that trains whole components and saves a whole model: the base model's components, with the trained
// copies swapped in, as one single file in the family's original layout (a self-describing base keeps its
// configs and tokenizer, with the trained components' configs).
class WholeModelMethod : public Method {
 public:
  WholeModelMethod(const StableDiffusion& model, const struct TrainOptions& o);
  std::vector<Param> params() override { return params_; }
  void save(const std::string& path, const std::map<std::string, std::string>& metadata) const override;
  // Sample images: the model with the trained copies swapped in, then back.
  bool apply_to(StableDiffusion& model) const override;
  void remove_from(StableDiffusion& model) const override;

 protected:
  // Trains `name` from now on: returns its copy (kept in components_, its params appended to params_).
  const ModelComponent& train_component(const std::string& name);

  Family family_;
  std::string prediction_type_;
  std::string base_path_;
  LoadOptions load_options_;
  DType save_dtype_;
  std::map<std::string, ModelComponent> components_;
  std::vector<Param> params_;
  std::vector<std::string> trained_;  // the components train_component() copied
  mutable std::unique_ptr<StableDiffusion> saved_;  // the model as training uses it, while samples are drawn

 private:
  std::map<std::string, Tensor> carried_over_text_tensors() const;
};

}  // namespace pigment::training
