// Full fine-tuning (--method full): every UNet weight trains, and with --train-text-encoder every weight of the
// text encoder too; the VAE stays frozen. Also training from scratch: start from a `pigment init` checkpoint.
//
// The loaded weights are read-only views of the file in its dtype, so the method keeps float32 master copies of
// every trained parameter (model_copy.h) and builds its own UNet (and text encoder) on them; the trainer runs
// those, and the optimizer changes the copies in place (the models read their weights through the default
// WeightCache, which the trainer tells to forget each changed tensor). The result is one single-file checkpoint in
// the family's original layout, in --save-precision (f16 by default), which `pigment generate -m` and other tools
// load.
#include "training/full.h"

#include "core/error.h"
#include "models/clip_text.h"
#include "models/unet.h"
#include "pipelines/stable_diffusion.h"
#include "training/model_copy.h"
#include "training/trainer.h"

namespace pigment::training {

FullMethod::FullMethod(const StableDiffusion& model, const TrainOptions& o)
    : WholeModelMethod(model, o), tokenizer_(model.tokenizer()) {
  const ModelComponent& unet = train_component("unet");
  unet_ = std::make_unique<UNet>(UNetConfig::from_json(unet.config.dump(), unet.source), unet.weights());
  if (o.train_text_encoder) {
    PIG_CHECK(family_ != Family::SDXL, "--train-text-encoder: SDXL's two text encoders are not implemented yet");
    PIG_CHECK(family_ != Family::SD2, "--train-text-encoder: the OpenCLIP text tower of SD2 is not implemented yet");
    const ModelComponent& te = train_component("text_encoder");
    te_ = ClipTextModel::load(te.model_config(), te.weights());
    train_te_ = true;
  }
}

Tensor FullMethod::encode_captions(const std::vector<std::string>& captions) const {
  if (!train_te_) return Tensor();
  std::vector<std::vector<int64_t>> ids;
  for (const auto& caption : captions) {
    std::vector<int> t = tokenizer_.encode_padded(caption);
    ids.emplace_back(t.begin(), t.end());
  }
  return te_.forward(ids, ClipOptions{}).context;
}

std::unique_ptr<Method> make_full_method(const StableDiffusion& model, const TrainOptions& o) {
  return std::make_unique<FullMethod>(model, o);
}

}  // namespace pigment::training
