// Full fine-tuning (--method full): the method's class, which --method dreambooth extends (full.cc says how it works).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/unet.h"
#include "training/caption_encoder.h"
#include "training/model_copy.h"

namespace pigment::training {

class FullMethod : public WholeModelMethod {
 public:
  FullMethod(const StableDiffusion& model, const TrainOptions& o);
  const UNet* unet() const override { return unet_.get(); }
  PromptEmbeds encode_captions(const std::vector<std::string>& captions) const override;

 private:
  CaptionEncoder text_;
  std::unique_ptr<UNet> unet_;
  bool train_te_ = false;
};

}  // namespace pigment::training
