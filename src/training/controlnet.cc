// ControlNet training (--method controlnet), as diffusers' examples/controlnet/train_controlnet.py: a ControlNet is
// made from the base UNet as ControlNetModel.from_unet makes it — conv_in, the time embedding, the down blocks and
// the mid block copied from the UNet; the conditioning embedding's convolutions at PyTorch's default Conv2d
// initialisation except its last, which is zero; every "zero convolution" (controlnet_down_blocks.*,
// controlnet_mid_block) zero — or read from an existing ControlNet (--controlnet-model-name-or-path). Only the
// ControlNet trains; the UNet, VAE and text encoder stay frozen. Each micro-batch's forward is the inference code's
// (models/controlnet.h): the ControlNet reads the noisy latents, timesteps, text conditioning and the batch's
// control maps, and its residuals, scaled by --controlnet-conditioning-scale, enter the frozen UNet.
//
// The ControlNet's tensors are float32 copies the optimizer changes in place (the model reads them through the
// default WeightCache, which the trainer tells to forget each changed tensor). The result is the original layout
// (one .safetensors of control_model.* keys) or the diffusers layout (a folder: config.json +
// diffusion_pytorch_model.safetensors), in --save-precision; `pigment generate --control-net` loads either.
#include <cmath>
#include <memory>

#include "core/error.h"
#include "imaging/control_preprocess.h"
#include "io/image.h"
#include "models/controlnet.h"
#include "models/controlnet_loader.h"
#include "pipelines/stable_diffusion.h"
#include "sampling/rng.h"
#include "training/trainer.h"

namespace pigment::training {

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

class ControlNetMethod : public Method {
 public:
  ControlNetMethod(const StableDiffusion& model, const TrainOptions& o)
      : scale_(o.controlnet_conditioning_scale), save_dtype_(o.save_precision) {
    PIG_CHECK(std::isfinite(scale_), "--controlnet-conditioning-scale must be a number, got ", scale_);
    PIG_CHECK(o.controlnet_save_format == "original" || o.controlnet_save_format == "diffusers",
              "--save-format: original or diffusers, got '", o.controlnet_save_format, "'");
    format_ = o.controlnet_save_format == "diffusers" ? ControlNetFormat::Diffusers : ControlNetFormat::Original;
    PIG_CHECK(save_dtype_ == DType::F32 || save_dtype_ == DType::F16 || save_dtype_ == DType::BF16,
              "--save-precision: f32, f16 or bf16");
    const ModelComponent& unet = model.base_component("unet");
    base_config_ = unet.config;
    // Every tensor a ControlNet over this UNet has, in a fixed order: the parameter list and the saved keys.
    const Layout layout = controlnet_layout(base_config_);
    auto tensors = std::make_shared<TensorMap>();
    if (o.controlnet_init.empty()) {
      auto gen = make_generator("cpu", o.seed ^ 0xC0D7E01ull);
      for (const LayoutEntry& e : layout) (*tensors)[e.name] = from_unet(e, layout, *unet.tensors, *gen);
    } else {
      ControlNetFile file = read_controlnet(o.controlnet_init, base_config_);
      for (const LayoutEntry& e : layout) {
        auto it = file.tensors->find(e.name);
        PIG_CHECK(it != file.tensors->end(), o.controlnet_init, ": the ControlNet has no tensor '", e.name,
                  "' (is it made for this base model?)");
        PIG_CHECK(it->second.shape() == e.shape, o.controlnet_init, ": tensor '", e.name, "' has shape ",
                  shape_str(it->second.shape()), ", a ControlNet for this base model has ", shape_str(e.shape),
                  " (pigment trains the conditioning embedding widths 16, 32, 96, 256)");
        (*tensors)[e.name] = it->second.to(DType::F32);
      }
    }
    for (const LayoutEntry& e : layout) params_.push_back({"controlnet." + e.name, tensors->at(e.name), Tensor()});
    tensors_ = tensors;
    net_ = std::make_shared<const ControlNet>(
        ControlNetConfig::from_json(controlnet_config_from_unet(base_config_).dump(), "controlnet (training)"),
        Weights(tensors_, "controlnet (training)"));

    // Sample images: their control maps, read now (a bad file fails before step 1).
    if (o.sample_every > 0) {
      PIG_CHECK(!o.sample_control_images.empty(), "--method controlnet: sample images need --sample-control-image");
      PIG_CHECK(o.sample_control_images.size() == 1 || o.sample_control_images.size() == o.sample_prompts.size(),
                "--sample-control-image: give one, or one per --sample-prompt (got ", o.sample_control_images.size(),
                " for ", o.sample_prompts.size(), " prompts)");
      for (const auto& path : o.sample_control_images) sample_maps_.push_back(to_rgb(read_image(path)));
      pre_.name = o.data.control_preprocess;
      pre_.low = o.data.canny_low;
      pre_.high = o.data.canny_high;
    }
  }

  std::vector<Param> params() override { return params_; }

  void add_unet_inputs(UNetExtras& extras, const Tensor& noisy, const std::vector<float>& timesteps,
                       const Tensor& context, const Batch& batch) const override {
    PIG_CHECK(batch.conditioning.defined(), "--method controlnet: a batch came without control maps");
    ControlNetOutput r = net_->forward(noisy, timesteps, context, batch.conditioning, scale_, false, extras);
    extras.down_block_additional_residuals = std::move(r.down_block_residuals);
    extras.mid_block_additional_residual = r.mid_block_residual;
  }

  // Samples: the pipeline runs the ControlNet being trained (its tensors are the trained ones already).
  bool apply_to(StableDiffusion&) const override { return true; }
  void prepare_sample(GenerateRequest& r, size_t index) const override {
    ControlUnit u;
    u.net = net_;
    u.image = prepare_control_image(sample_maps_.at(std::min(index, sample_maps_.size() - 1)), r.width, r.height, pre_);
    u.strength = scale_;
    r.control.push_back(std::move(u));
  }

  void save(const std::string& path, const std::map<std::string, std::string>& metadata) const override {
    std::map<std::string, std::string> meta = metadata;
    meta.erase("ss_network_module");
    meta["ss_controlnet_conditioning_scale"] = std::to_string(scale_);
    write_controlnet(path, format_, base_config_, *tensors_, save_dtype_, meta);
  }

 private:
  // One tensor of ControlNetModel.from_unet: the UNet's own where the ControlNet has it; the zero convolutions and
  // the conditioning embedding's conv_out zero; its other convolutions as torch.nn.Conv2d initialises them
  // (kaiming_uniform_ with a = √5 for the weight, i.e. U(±1/√fan_in), and U(±1/√fan_in) for the bias).
  static Tensor from_unet(const LayoutEntry& e, const Layout& layout, const TensorMap& unet, Generator& gen) {
    const bool zero = starts_with(e.name, "controlnet_down_blocks.") || starts_with(e.name, "controlnet_mid_block.") ||
                      starts_with(e.name, "controlnet_cond_embedding.conv_out.");
    if (zero) return Tensor::zeros(e.shape);
    if (starts_with(e.name, "controlnet_cond_embedding.")) {
      // fan_in of the layer: its weight's in_channels · k · k (the bias shares it).
      const std::string weight = e.name.substr(0, e.name.rfind('.')) + ".weight";
      int64_t fan_in = 0;
      for (const LayoutEntry& w : layout)
        if (w.name == weight && w.shape.size() == 4) fan_in = w.shape[1] * w.shape[2] * w.shape[3];
      PIG_CHECK(fan_in > 0, "ControlNet init: no convolution weight ", weight, " for ", e.name);
      const float bound = 1.f / std::sqrt(float(fan_in));
      Tensor u = gen.rand(e.shape);
      float* p = u.f32();
      for (int64_t i = 0; i < u.numel(); ++i) p[i] = bound * (2.f * p[i] - 1.f);
      return u;
    }
    auto it = unet.find(e.name);
    PIG_CHECK(it != unet.end(), "ControlNet init: the base UNet has no tensor '", e.name, "'");
    return it->second.to(DType::F32);
  }

  float scale_;
  DType save_dtype_;
  ControlNetFormat format_ = ControlNetFormat::Original;
  nlohmann::json base_config_;
  std::shared_ptr<TensorMap> tensors_;
  std::vector<Param> params_;
  std::shared_ptr<const ControlNet> net_;
  std::vector<Image> sample_maps_;
  ControlPreprocess pre_;
};

}  // namespace

std::unique_ptr<Method> make_controlnet_method(const StableDiffusion& model, const TrainOptions& o) {
  return std::make_unique<ControlNetMethod>(model, o);
}

}  // namespace pigment::training
