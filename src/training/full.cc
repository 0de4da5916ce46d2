// Full fine-tuning (--method full): every UNet weight trains, and with --train-text-encoder every weight of the
// text encoder(s) too (SD1's OpenAI CLIP, SD2's OpenCLIP tower, both of SDXL's); the VAE stays frozen. Also training from scratch: start from a `pigment init` checkpoint.
//
// The loaded weights are read-only views of the file in its dtype, so the method keeps float32 master copies of
// every trained parameter (model_copy.h) and builds its own UNet (and text encoder) on them; the trainer runs
// those, and the optimizer changes the copies in place (the models read their weights through the default
// WeightCache, which the trainer tells to forget each changed tensor). The result is one single-file checkpoint in
// the family's original layout, in --save-precision (f16 by default), which `pigment generate -m` and other tools
// load.
#include "training/full.h"

#include "core/error.h"
#include "models/unet.h"
#include "pipelines/stable_diffusion.h"
#include "training/model_copy.h"
#include "training/trainer.h"

namespace pigment::training {

FullMethod::FullMethod(const StableDiffusion& model, const TrainOptions& o)
    : WholeModelMethod(model, o), text_(model) {
  const ModelComponent& unet = train_component("unet");
  unet_ = std::make_unique<UNet>(UNetConfig::from_json(unet.config.dump(), unet.source), unet.weights());
  if (o.train_text_encoder) {
    const auto names = CaptionEncoder::component_names(family_);
    for (size_t i = 0; i < names.size(); ++i) text_.set_encoder(i, train_component(names[i]));
    train_te_ = true;
  }
}

PromptEmbeds FullMethod::encode_captions(const std::vector<std::string>& captions) const {
  if (!train_te_) return {};
  return text_.encode(captions);
}

std::unique_ptr<Method> make_full_method(const StableDiffusion& model, const TrainOptions& o) {
  return std::make_unique<FullMethod>(model, o);
}

}  // namespace pigment::training
