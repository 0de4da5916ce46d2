#include "training/model_copy.h"

#include <filesystem>

#include "core/error.h"
#include "io/checkpoint.h"
#include "models/checkpoint_layout.h"
#include "models/checkpoint_writer.h"
#include "models/model_family.h"
#include "pipelines/stable_diffusion.h"
#include "training/trainer.h"

namespace pigment::training {

namespace {

namespace fs = std::filesystem;

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

Layout layout_of(const ModelComponent& c) {
  if (c.name == "unet") return unet_layout(c.config);
  if (c.name == "vae") return vae_layout(c.config);
  PIG_CHECK(c.name == "text_encoder" || c.name == "text_encoder_2", "train: cannot train the component ", c.name,
            " as a whole yet");
  // Only the parameter names and shapes are read, and they are the transformers names whatever the file's layout
  // (OpenAI CLIP, or OpenCLIP for SD2 and SDXL's second encoder: the writer re-fuses q/k/v).
  return openai_clip_layout(c.config, "", c.name);
}

}  // namespace

TrainedCopy trainable_copy(const ModelComponent& base) {
  TrainedCopy out;
  auto weights = std::make_shared<TensorMap>();
  for (const ParamSpec& p : layout_params(layout_of(base))) {
    auto it = base.tensors->find(p.name);
    PIG_CHECK(it != base.tensors->end(), base.source, ": no tensor ", p.name);
    Tensor t = it->second.to(DType::F32);  // always a copy: the file's memory is read-only
    (*weights)[p.name] = t;
    out.params.push_back({base.name + "." + p.name, t, Tensor()});
  }
  out.component = base;
  out.component.source = base.source + " (trained copy)";
  out.component.tensors = weights;
  return out;
}

WholeModelMethod::WholeModelMethod(const StableDiffusion& model, const TrainOptions& o)
    : family_(model.family()),
      prediction_type_(o.prediction_type.empty() ? model.prediction_type()
                                                 : normalize_prediction_type(o.prediction_type)),
      base_path_(o.model.model),
      load_options_(o.model.load),
      save_dtype_(o.save_precision) {
  PIG_CHECK(save_dtype_ == DType::F32 || save_dtype_ == DType::F16 || save_dtype_ == DType::BF16,
            "--save-precision: f32, f16 or bf16");
  std::vector<std::string> names{"unet", "vae", "text_encoder"};
  if (family_ == Family::SDXL) names.push_back("text_encoder_2");
  for (const auto& name : names) components_[name] = model.base_component(name);
}

const ModelComponent& WholeModelMethod::train_component(const std::string& name) {
  TrainedCopy copy = trainable_copy(components_.at(name));
  params_.insert(params_.end(), copy.params.begin(), copy.params.end());
  trained_.push_back(name);
  return components_[name] = std::move(copy.component);
}

bool WholeModelMethod::apply_to(StableDiffusion& model) const {
  std::map<std::string, ModelComponent> trained;
  for (const auto& name : trained_) trained[name] = components_.at(name);
  saved_ = std::make_unique<StableDiffusion>(model);
  model = model.with_components(trained);
  return true;
}

void WholeModelMethod::remove_from(StableDiffusion& model) const {
  if (!saved_) return;
  model = std::move(*saved_);
  saved_.reset();
}

void WholeModelMethod::save(const std::string& path, const std::map<std::string, std::string>& metadata) const {
  SingleFileWriteOptions wo;
  wo.dtype = save_dtype_;
  wo.metadata = metadata;
  wo.metadata.erase("ss_network_module");  // a whole model, not a network
  for (const auto& [k, v] : modelspec_metadata(family_, prediction_type_, fs::path(path).stem().string()))
    wo.metadata[k] = v;
  // A self-describing base (pigment's own families) passes on its family, tokenizer and architecture name, and the
  // configs of the components as they are now (the VAE method sets a new scaling factor).
  if (fs::is_regular_file(base_path_)) {
    Checkpoint file = load_checkpoint(base_path_);
    if (file.metadata.count(kMetaFamily)) {
      for (const auto& [k, v] : file.metadata)
        if (starts_with(k, "pigment.") && k != "pigment.init") wo.metadata[k] = v;
      if (auto it = file.metadata.find("modelspec.architecture"); it != file.metadata.end())
        wo.metadata[it->first] = it->second;
      for (const auto& [name, c] : components_) wo.metadata[kMetaConfigPrefix + name] = c.config.dump();
    }
  }
  // The trained components' configs go in any file: a single file cannot otherwise say what training set in them
  // (the VAE method's scaling factor); loaders that do not know the key ignore it.
  for (const auto& name : trained_) wo.metadata[kMetaConfigPrefix + name] = components_.at(name).config.dump();
  wo.extra = carried_over_text_tensors();
  write_single_file_checkpoint(path, family_, components_, wo);
}

// Tensors of a single-file base model that no component holds but that belong to its text tower (SD2's last
// OpenCLIP layer, which diffusers drops, and text_projection): written unchanged, so the result is as complete
// as the base. Other unused tensors (EMA copies, buffers) are not: they would no longer match the trained model.
std::map<std::string, Tensor> WholeModelMethod::carried_over_text_tensors() const {
  std::map<std::string, Tensor> extra;
  if (!fs::is_regular_file(base_path_)) return extra;
  LoadedModel base = load_model(base_path_, load_options_);
  Checkpoint file = load_checkpoint(base_path_);
  for (const auto& k : base.unused_keys) {
    if (!starts_with(k, "cond_stage_model.") && !starts_with(k, "conditioner.embedders.")) continue;
    if (k.find("position_ids") != std::string::npos) continue;  // a buffer, not a weight
    auto it = file.tensors.find(k);
    if (it != file.tensors.end() && (it->second.dtype() == DType::F32 || it->second.dtype() == DType::F16 ||
                                     it->second.dtype() == DType::BF16))
      extra[k] = it->second;
  }
  return extra;
}

}  // namespace pigment::training
