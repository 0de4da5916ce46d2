// Full fine-tuning (--method full): every UNet weight trains; the VAE and the text encoder(s) stay frozen. Also
// training from scratch: start from a `pigment init` checkpoint.
//
// The loaded weights are read-only views of the file in its dtype, so the method keeps float32 master copies of
// every UNet parameter and builds its own UNet on them; the trainer runs that UNet, and the optimizer changes the
// copies in place (the UNet reads its weights through the default WeightCache, which the trainer tells to forget
// each changed tensor). The result is one single-file checkpoint in the family's original layout: the trained UNet
// and the base model's VAE and text encoder(s), in --save-precision (f16 by default), which `pigment generate -m`
// and other tools load.
#include <filesystem>

#include "core/error.h"
#include "io/checkpoint.h"
#include "models/checkpoint_layout.h"
#include "models/checkpoint_writer.h"
#include "models/unet.h"
#include "pipelines/stable_diffusion.h"
#include "training/trainer.h"

namespace pigment::training {

namespace {

namespace fs = std::filesystem;

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

class FullMethod : public Method {
 public:
  FullMethod(const StableDiffusion& model, const TrainOptions& o)
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
    const ModelComponent& base = components_.at("unet");
    // The master copies: every parameter the config implies (in module order, so the param list is stable).
    auto weights = std::make_shared<TensorMap>();
    for (const ParamSpec& p : layout_params(unet_layout(base.config))) {
      Tensor t = base.tensors->at(p.name).to(DType::F32);  // always a copy: the file's memory is read-only
      (*weights)[p.name] = t;
      params_.push_back({p.name, t, Tensor()});
    }
    ModelComponent trained = base;
    trained.source = base.source + " (trained copy)";
    trained.tensors = weights;
    components_["unet"] = trained;
    unet_ = std::make_unique<UNet>(UNetConfig::from_json(base.config.dump(), trained.source), trained.weights());
  }

  std::vector<Param> params() override { return params_; }
  const UNet* unet() const override { return unet_.get(); }

  void save(const std::string& path, const std::map<std::string, std::string>& metadata) const override {
    SingleFileWriteOptions wo;
    wo.dtype = save_dtype_;
    wo.metadata = metadata;
    wo.metadata.erase("ss_network_module");  // a whole model, not a network
    for (const auto& [k, v] : modelspec_metadata(family_, prediction_type_, fs::path(path).stem().string()))
      wo.metadata[k] = v;
    wo.extra = carried_over_text_tensors();
    write_single_file_checkpoint(path, family_, components_, wo);
  }

 private:
  // Tensors of a single-file base model that no component holds but that belong to its text tower (SD2's last
  // OpenCLIP layer, which diffusers drops, and text_projection): written unchanged, so the result is as complete
  // as the base. Other unused tensors (EMA copies, buffers) are not: they would no longer match the trained UNet.
  std::map<std::string, Tensor> carried_over_text_tensors() const {
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

  Family family_;
  std::string prediction_type_;
  std::string base_path_;
  LoadOptions load_options_;
  DType save_dtype_;
  std::map<std::string, ModelComponent> components_;
  std::vector<Param> params_;
  std::unique_ptr<UNet> unet_;
};

}  // namespace

std::unique_ptr<Method> make_full_method(const StableDiffusion& model, const TrainOptions& o) {
  return std::make_unique<FullMethod>(model, o);
}

}  // namespace pigment::training
