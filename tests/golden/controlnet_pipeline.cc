// controlnet/pipeline: StableDiffusionControlNetPipeline on the tiny SD1 model with the tiny ControlNet: per-step
// latents and the image.
#include <cmath>
#include <map>

#include "adapters_models.h"
#include "ops/ops.h"

namespace pigment::golden {
namespace {

void run_controlnet_pipeline(Case& c) {
  const auto& spec = c.spec();
  StableDiffusion sd = StableDiffusion::create(golden_sd1(c), golden_tokenizer(c));
  GenerateRequest r;
  r.a1111_syntax = false;
  r.prompt = spec["prompt"];
  r.negative_prompt = spec["negative_prompt"];
  r.sampler = "DDIMScheduler";
  r.steps = 4;
  r.cfg_scale = 7.5;
  r.latents = c.tensor("latents");
  Tensor img = c.tensor("control_image_uint8");
  Image control{int(img.dim(1)), int(img.dim(0)), 3, std::vector<uint8_t>(size_t(img.numel()))};
  for (int64_t i = 0; i < img.numel(); ++i) control.pixels[size_t(i)] = uint8_t(std::lround(img.f32()[i]));
  r.height = control.height;
  r.width = control.width;
  ControlUnit unit;
  unit.net = std::make_shared<const ControlNet>(ControlNet::load((c.models_dir() / "controlnet").string()));
  unit.image = control;
  unit.strength = 0.8;
  r.control.push_back(unit);

  std::map<std::string, Tensor> seen;
  GenerateResult out = sd.generate(r, {}, [&](const std::string& name, const Tensor& t) { seen[name] = t.clone(); });
  for (const auto& [name, t] : spec["tensors"].items()) {
    if (t.value("role", "") != "output") continue;
    if (name == "image")
      c.compare(name, ops::permute(out.pixels, {0, 2, 3, 1}));
    else if (seen.count(name))
      c.compare(name, seen[name]);
    else
      c.failure(name, "the pipeline produced no such value");
  }
}

Register reg("controlnet/pipeline", run_controlnet_pipeline);

}  // namespace
}  // namespace pigment::golden
