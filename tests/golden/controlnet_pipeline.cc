// controlnet/pipeline: StableDiffusionControlNetPipeline on the tiny SD1 model with the tiny ControlNet: per-step
// latents and the image. Size, steps, guidance, conditioning scale, prompts and scheduler come from the case
// (case_inputs.h), the model folders from models/pipelines.json.
#include <cmath>
#include <map>

#include "adapters_models.h"
#include "case_inputs.h"
#include "ops/ops.h"

namespace pigment::golden {
namespace {

void run_controlnet_pipeline(Case& c) {
  const PipelineCall call = read_pipeline_call(c);
  PIG_CHECK(call.controlnet_scale, c.name(), ": no controlnet_conditioning_scale in the call or the description");
  StableDiffusion sd = StableDiffusion::create(golden_sd1(c), golden_tokenizer(c));
  GenerateRequest r = request_of(call);
  r.latents = c.tensor("latents");
  Tensor img = c.tensor("control_image_uint8");
  Image control{int(img.dim(1)), int(img.dim(0)), 3, std::vector<uint8_t>(size_t(img.numel()))};
  for (int64_t i = 0; i < img.numel(); ++i) control.pixels[size_t(i)] = uint8_t(std::lround(img.f32()[i]));
  ControlUnit unit;
  unit.net = std::make_shared<const ControlNet>(ControlNet::load(golden_folder(c, "sd1_controlnet", "controlnet").string()));
  unit.image = control;
  unit.strength = *call.controlnet_scale;
  r.control.push_back(unit);

  std::map<std::string, Tensor> seen;
  GenerateResult out = sd.generate(r, {}, [&](const std::string& name, const Tensor& t) { seen[name] = t.clone(); });
  for (const auto& [name, t] : c.spec()["tensors"].items()) {
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
