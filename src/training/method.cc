#include "training/method.h"

#include "core/error.h"
#include "pipelines/stable_diffusion.h"

namespace pigment::training {

PromptEmbeds Method::encode_captions(const std::vector<std::string>& captions) const { return {}; }

const std::vector<std::string>& method_names() {
  static const std::vector<std::string> names{"lora", "textual-inversion", "hypernetwork", "full", "dreambooth", "vae",
                                               "controlnet", "text-encoder"};
  return names;
}

std::unique_ptr<Method> make_method(const std::string& name, const StableDiffusion& model, const TrainOptions& o) {
  if (name == "lora") return make_lora_method(model, o);
  if (name == "textual-inversion" || name == "ti") return make_textual_inversion_method(model, o);
  if (name == "full") return make_full_method(model, o);
  if (name == "vae") return make_vae_method(model, o);
  if (name == "dreambooth") return make_dreambooth_method(model, o);
  if (name == "controlnet") return make_controlnet_method(model, o);
  if (name == "hypernetwork") return make_hypernetwork_method(model, o);
  if (name == "text-encoder") return make_text_encoder_method(model, o);
  std::string known;
  for (const auto& n : method_names()) known += (known.empty() ? "" : ", ") + n;
  fail("--method: unknown training method '", name, "' (implemented: ", known, ")");
}

}  // namespace pigment::training
