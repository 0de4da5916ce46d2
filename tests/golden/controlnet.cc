// controlnet/controlnet_model: ControlNetModel residuals for a control image, and the UNet with and without them.
#include <regex>

#include "golden.h"
#include "models/controlnet.h"

namespace pigment::golden {
namespace {

void run_controlnet_model(Case& c) {
  const auto& spec = c.spec();
  // "diffusers.ControlNetModel (models/controlnet, ...) and UNet2DConditionModel (models/unet_sd1) ..."
  fs::path controlnet_dir, unet_dir;
  const std::string description = spec.value("description", "");
  const std::regex folder_re(R"(models/(\w+))");
  for (auto it = std::sregex_iterator(description.begin(), description.end(), folder_re);
       it != std::sregex_iterator(); ++it) {
    const std::string folder = (*it)[1];
    fs::path& dir = folder.find("controlnet") != std::string::npos ? controlnet_dir : unet_dir;
    if (dir.empty() && (folder.find("controlnet") != std::string::npos || folder.find("unet") != std::string::npos))
      dir = c.models_dir() / folder;
  }
  PIG_CHECK(!controlnet_dir.empty() && !unet_dir.empty(), c.name(),
            ": the description names no models/<controlnet> and models/<unet> folders");
  ControlNet controlnet = ControlNet::load(controlnet_dir.string());
  UNet unet = UNet::load(unet_dir.string());
  Tensor sample = c.tensor("sample"), ctx = c.tensor("encoder_hidden_states"), cond = c.tensor("controlnet_cond");
  std::vector<float> t{spec["timestep"].get<float>()};
  // conditioning_scale as the producer's call passed it.
  std::smatch m;
  std::string call = spec["producer"]["call"];
  PIG_CHECK(std::regex_search(call, m, std::regex(R"(conditioning_scale=([0-9.]+))")), c.name(),
            ": no conditioning_scale in the producer call");
  float scale = std::stof(m[1]);

  UNetExtras extras;
  Tensor cond_emb;
  extras.hooks.capture = [&](const std::string& name, const Tensor& v) {
    if (name == "controlnet_cond_embedding") cond_emb = v;
  };
  ControlNetOutput res = controlnet.forward(sample, t, ctx, cond, scale, false, extras);
  if (cond_emb.defined())
    c.compare("controlnet_cond_embedding", cond_emb);
  else
    c.failure("controlnet_cond_embedding", "not captured");
  for (size_t i = 0; i < res.down_block_residuals.size(); ++i)
    c.compare("down_block_res_sample." + std::to_string(i), res.down_block_residuals[i]);
  c.compare("mid_block_res_sample", res.mid_block_residual);

  c.compare("unet_out.base", unet.forward(sample, t, ctx));
  UNetExtras controlled;
  controlled.down_block_additional_residuals = res.down_block_residuals;
  controlled.mid_block_additional_residual = res.mid_block_residual;
  c.compare("unet_out.controlled", unet.forward(sample, t, ctx, controlled));
}

Register reg("controlnet/controlnet_model", run_controlnet_model);

}  // namespace
}  // namespace pigment::golden
