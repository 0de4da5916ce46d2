// lora/*: a kohya or diffusers LoRA on the tiny SD1 model: UNet output and prompt embeddings without it, at run time
// with scales 1.0 and 0.6, merged at 0.6 (diffusers' fuse_lora, plus some fused weights), and a txt2img run at 0.6.
#include <cstring>
#include <map>

#include "adapters_models.h"
#include "models/clip_text.h"
#include "models/lora.h"
#include "models/unet.h"
#include "pipelines/stable_diffusion.h"

namespace pigment::golden {
namespace {

void run_lora(Case& c) {
  const auto& spec = c.spec();
  LoadedModel model = golden_sd1(c);

  std::string file;
  for (const auto& [name, what] : spec["files"].items()) file = name;
  LoraFile lora = LoraFile::load((c.dir() / file).string());
  const ModelComponent& un = model.component("unet");
  const ModelComponent& te = model.component("text_encoder");
  ResolvedLora resolved = resolve_lora(lora, {{"unet", un.tensors.get()}, {"text_encoder", te.tensors.get()}});
  for (const auto& u : resolved.unmatched) c.failure("key " + u, "matches no layer");
  auto shared = std::make_shared<const ResolvedLora>(resolved);

  UNetConfig cfg = UNetConfig::from_json(un.config.dump(), un.source);
  UNet base(cfg, un.weights());
  Tensor sample = c.tensor("sample"), ctx = c.tensor("encoder_hidden_states");
  std::vector<float> t{spec["timestep"].get<float>()};

  ClipTokenizer tok = golden_tokenizer(c);
  std::vector<int> ids32 = tok.encode_padded(spec["prompt"].get<std::string>(), ClipTokenizer::kContextLength);
  std::vector<std::vector<int64_t>> ids{std::vector<int64_t>(ids32.begin(), ids32.end())};
  auto embeds = [&](float scale) {
    std::vector<LoraUse> uses{{shared, scale}};
    Weights w(scale == 0 ? te.tensors : merge_loras(*te.tensors, "text_encoder", uses), te.source);
    return ClipTextModel::load(te.model_config(), w).forward(ids).last_hidden_state;
  };

  c.compare("unet_out.base", base.forward(sample, t, ctx));
  c.compare("te_embeds.base", embeds(0));
  for (auto [scale, key] : {std::pair<float, const char*>{1.f, "scale1p0"}, {0.6f, "scale0p6"}}) {
    LoraRuntime rt("unet", {{shared, scale}});
    UNetExtras e;
    e.hooks.layer_delta = [&](const std::string& n, const Tensor& x, Tensor& y) { rt.apply(n, x, y); };
    c.compare(std::string("unet_out.") + key, base.forward(sample, t, ctx, e));
    c.compare(std::string("te_embeds.") + key, embeds(scale));
  }
  std::vector<LoraUse> fuse{{shared, 0.6f}};
  auto merged_unet = merge_loras(*un.tensors, "unet", fuse);
  auto merged_te = merge_loras(*te.tensors, "text_encoder", fuse);
  c.compare("unet_out.fused0p6", UNet(cfg, Weights(merged_unet, un.source)).forward(sample, t, ctx));
  c.compare("te_embeds.fused0p6", embeds(0.6f));
  for (const auto& name : c.tensor_names()) {
    const std::string prefix = "fused_weight.";
    if (name.rfind(prefix, 0) != 0) continue;
    std::string rest = name.substr(prefix.size());
    bool is_unet = rest.rfind("unet.", 0) == 0;
    std::string module = rest.substr(rest.find('.') + 1) + ".weight";
    const TensorMap& m = is_unet ? *merged_unet : *merged_te;
    c.compare(name, m.at(module).as_f32());
  }

  // The pipeline run at 0.6, once with each way of applying the LoRA.
  StableDiffusion sd = StableDiffusion::create(model, tok);
  GenerateRequest r;
  r.a1111_syntax = false;
  r.prompt = spec["prompt"];
  // The case records no negative prompt text; the producer's script used the one of the pipeline cases.
  r.negative_prompt = spec.value("negative_prompt", "blurry, low quality");
  r.sampler = "DDIMScheduler";
  r.steps = 4;
  r.cfg_scale = 7.5;
  r.height = 64;
  r.width = 128;
  r.latents = c.tensor("pipe.latents");
  for (LoraApply mode : {LoraApply::Runtime, LoraApply::Merge}) {
    sd.set_loras({{lora, 0.6f}}, mode);
    GenerateResult out = sd.generate(r);
    c.compare("pipe.final_latents", out.latents);
    c.compare("pipe.image", ops::permute(out.pixels, {0, 2, 3, 1}));
  }
  std::string probe;
  for (const auto& m : resolved.modules)
    if (m.component == "unet") probe = m.module + ".weight";
  // A1111's <lora:NAME:TE:UNET>: the text-encoder weight reaches only text-encoder layers, the UNet weight only
  // UNet layers (embeddings as diffusers' at 0.6 or without the LoRA; UNet weights the base views or patched copies).
  for (auto [te_w, unet_w] : {std::pair{0.6f, 0.f}, std::pair{0.f, 0.6f}}) {
    sd.set_loras({LoraChoice(lora, te_w, unet_w)});
    const std::string label = te_w != 0 ? "te=0.6:unet=0 " : "te=0:unet=0.6 ";
    c.compare(te_w != 0 ? "te_embeds.scale0p6" : "te_embeds.base", sd.encode_prompt(spec["prompt"], r).context);
    bool unet_is_base = sd.unet().weights().all().at(probe).raw() == un.tensors->at(probe).raw();
    if (unet_is_base != (unet_w == 0)) c.failure(label + "unet", unet_is_base ? "the UNet was not patched" : "the UNet was patched");
  }
  // Switching back to no LoRA reuses the loaded base weights: no reload, and they were never written to.
  sd.set_loras({});
  if (sd.unet().weights().all().at(probe).raw() != un.tensors->at(probe).raw())
    c.failure("switch", "the UNet does not use the base weights after set_loras({})");
  Tensor reread = SafeTensors::open((c.models_dir() / "unet_sd1" / "diffusion_pytorch_model.safetensors").string())
                      .get(probe);
  const Tensor& held = un.tensors->at(probe);
  if (reread.nbytes() != held.nbytes() || std::memcmp(reread.raw(), held.raw(), held.nbytes()) != 0)
    c.failure("base weights", "'" + probe + "' differs from the file after merging");
}

Register reg("lora/", run_lora);

}  // namespace
}  // namespace pigment::golden
