// lora/*: a kohya or diffusers LoRA on the tiny SD1 model: UNet output and prompt embeddings without it, at run time
// at the scales the case's tensor names carry, fused (diffusers' fuse_lora, plus some fused weights), and the
// txt2img run of the case's pipeline_call (size, steps, guidance, LoRA scale, scheduler read by case_inputs.h).
#include <cstring>
#include <map>

#include "adapters_models.h"
#include "case_inputs.h"
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
  // The scales are those the case's tensor names carry: unet_out.scale<S> / te_embeds.scale<S> at run time,
  // unet_out.fused<S> / te_embeds.fused<S> after fuse_lora(lora_scale=S) (whose fused_weight.* tensors then hold).
  const auto runtime_scales = scales_in_names(c, "unet_out.scale");
  const auto fused_scales = scales_in_names(c, "unet_out.fused");
  PIG_CHECK(!runtime_scales.empty(), c.name(), ": no unet_out.scale<S> tensors");
  PIG_CHECK(fused_scales.size() == 1, c.name(), ": expected one unet_out.fused<S> tensor, found ", fused_scales.size());
  for (const auto& [key, scale] : runtime_scales) {
    LoraRuntime rt("unet", {{shared, float(scale)}});
    UNetExtras e;
    e.hooks.layer_delta = [&](const std::string& n, const Tensor& x, Tensor& y) { rt.apply(n, x, y); };
    c.compare("unet_out.scale" + key, base.forward(sample, t, ctx, e));
    c.compare("te_embeds.scale" + key, embeds(float(scale)));
  }
  const auto& [fused_key, fused_scale] = *fused_scales.begin();
  std::vector<LoraUse> fuse{{shared, float(fused_scale)}};
  auto merged_unet = merge_loras(*un.tensors, "unet", fuse);
  auto merged_te = merge_loras(*te.tensors, "text_encoder", fuse);
  c.compare("unet_out.fused" + fused_key, UNet(cfg, Weights(merged_unet, un.source)).forward(sample, t, ctx));
  c.compare("te_embeds.fused" + fused_key, embeds(float(fused_scale)));
  for (const auto& name : c.tensor_names()) {
    const std::string prefix = "fused_weight.";
    if (name.rfind(prefix, 0) != 0) continue;
    std::string rest = name.substr(prefix.size());
    bool is_unet = rest.rfind("unet.", 0) == 0;
    std::string module = rest.substr(rest.find('.') + 1) + ".weight";
    const TensorMap& m = is_unet ? *merged_unet : *merged_te;
    c.compare(name, m.at(module).as_f32());
  }

  // The pipeline run as the case's call made it, once with each way of applying the LoRA.
  const PipelineCall call = read_pipeline_call(c);
  PIG_CHECK(call.lora_scale, c.name(), ": the pipeline call gives no cross_attention_kwargs={'scale': S}");
  const float pipe_scale = float(*call.lora_scale);
  StableDiffusion sd = StableDiffusion::create(model, tok);
  GenerateRequest r = request_of(call);
  r.latents = c.tensor("pipe.latents");
  for (LoraApply mode : {LoraApply::Runtime, LoraApply::Merge}) {
    sd.set_loras({{lora, pipe_scale}}, mode);
    GenerateResult out = sd.generate(r);
    c.compare("pipe.final_latents", out.latents);
    c.compare("pipe.image", ops::permute(out.pixels, {0, 2, 3, 1}));
  }
  std::string probe;
  for (const auto& m : resolved.modules)
    if (m.component == "unet") probe = m.module + ".weight";
  // A1111's <lora:NAME:TE:UNET>: the text-encoder weight reaches only text-encoder layers, the UNet weight only
  // UNet layers (embeddings as diffusers' at scale S or without the LoRA; UNet weights the base views or patched
  // copies). S: each run-time scale of the case.
  for (const auto& [key, s] : runtime_scales) {
    for (auto [te_w, unet_w] : {std::pair{float(s), 0.f}, std::pair{0.f, float(s)}}) {
      sd.set_loras({LoraChoice(lora, te_w, unet_w)});
      const std::string label = te_w != 0 ? "te=" + key + ":unet=0 " : "te=0:unet=" + key + " ";
      c.compare(te_w != 0 ? "te_embeds.scale" + key : std::string("te_embeds.base"),
                sd.encode_prompt(call.prompt, r).context);
      bool unet_is_base = sd.unet().weights().all().at(probe).raw() == un.tensors->at(probe).raw();
      if (unet_is_base != (unet_w == 0))
        c.failure(label + "unet", unet_is_base ? "the UNet was not patched" : "the UNet was patched");
    }
  }
  // Switching back to no LoRA reuses the loaded base weights: no reload, and they were never written to.
  sd.set_loras({});
  if (sd.unet().weights().all().at(probe).raw() != un.tensors->at(probe).raw())
    c.failure("switch", "the UNet does not use the base weights after set_loras({})");
  Tensor reread = SafeTensors::open((golden_folder(c, "sd1", "unet") / "diffusion_pytorch_model.safetensors").string())
                      .get(probe);
  const Tensor& held = un.tensors->at(probe);
  if (reread.nbytes() != held.nbytes() || std::memcmp(reread.raw(), held.raw(), held.nbytes()) != 0)
    c.failure("base weights", "'" + probe + "' differs from the file after merging");
}

Register reg("lora/", run_lora);

}  // namespace
}  // namespace pigment::golden
