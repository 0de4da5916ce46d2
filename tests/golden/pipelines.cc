// Golden pipeline cases: a diffusers pipeline call (txt2img, img2img, inpainting, SD2 v-prediction, SDXL) rebuilt
// from case.json and run through pigment::StableDiffusion; every recorded intermediate and the image compared.
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include "case_inputs.h"
#include "golden.h"
#include "io/safetensors.h"
#include "ops/ops.h"
#include "pipelines/stable_diffusion.h"
#include "text/tokenizer_files.h"

namespace pigment::golden {
namespace {

nlohmann::json read_json(const fs::path& p) {
  std::ifstream f(p);
  PIG_CHECK(f, p.string(), ": cannot open");
  return nlohmann::json::parse(f);
}

// One component folder of the golden models (config.json + weights), as the model loader would give it.
ModelComponent component(const fs::path& dir, const std::string& name) {
  // A folder with one config.json is a single-component diffusers folder to the model loader.
  LoadedModel m = load_model(dir.string());
  ModelComponent c = m.components.begin()->second;
  c.name = name;
  return c;
}

// "folder (note)" → folder
std::string folder_of(const nlohmann::json& v) {
  std::string s = v.get<std::string>();
  return s.substr(0, s.find(' '));
}

Image image_from(const Tensor& t) {  // [H, W, 3] or [H, W] of 0..255 values
  Image img{int(t.dim(1)), int(t.dim(0)), t.ndim() == 3 ? int(t.dim(2)) : 1, {}};
  img.pixels.resize(size_t(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) img.pixels[i] = uint8_t(std::lround(t.f32()[i]));
  return img;
}

// Which entry of models/pipelines.json a case ran, from what the case says (never from its name): the entry whose
// UNet folder the case's text names ("models/unet_sd2"), without a ControlNet; else, from the producer's pipeline
// class, the SDXL entry (two text encoders), the inpainting entry (a 9-channel UNet) or the plain text-to-image one
// (a 4-channel UNet, one text encoder, the case's prediction type). Anything else, or two candidates, is an error.
std::string pipeline_kind(const nlohmann::json& spec, const nlohmann::json& pipelines, const fs::path& models,
                          const std::string& name) {
  nlohmann::json text = spec;
  text.erase("tensors");
  const std::string said = text.dump();
  std::vector<std::string> named, by_class;
  const std::string cls = spec["producer"].is_object() ? spec["producer"].value("class", "") : "";
  const bool xl = cls.find("XL") != std::string::npos, inpaint = cls.find("Inpaint") != std::string::npos;
  const bool vpred = said.find("v_prediction") != std::string::npos;
  for (const auto& [k, v] : pipelines.items()) {
    if (!v.is_object() || !v.contains("unet") || v.contains("controlnet")) continue;
    const std::string unet = folder_of(v["unet"]);
    if (std::regex_search(said, std::regex("\\b" + unet + "\\b"))) named.push_back(k);
    const bool two = v.contains("text_encoder_2");
    const bool nine = read_json(models / unet / "config.json").value("in_channels", 4) == 9;
    const bool v_entry = v.contains("scheduler") && v["scheduler"].dump().find("v_prediction") != std::string::npos;
    if (two == xl && nine == inpaint && (xl || inpaint || v_entry == vpred)) by_class.push_back(k);
  }
  const auto& pick = named.size() == 1 ? named : by_class;
  PIG_CHECK(pick.size() == 1, name, ": cannot tell which models/pipelines.json entry the case ran (named: ",
            named.size(), ", by class ", cls, ": ", by_class.size(), ")");
  return pick[0];
}

void run_pipeline(Case& c) {
  const auto& spec = c.spec();
  nlohmann::json pipelines = read_json(c.models_dir() / "pipelines.json");
  const std::string kind = pipeline_kind(spec, pipelines, c.models_dir(), c.name());
  const auto& p = pipelines[kind];

  LoadedModel model;
  model.path = c.models_dir().string();
  model.format = "diffusers";
  model.detection.family = kind == "sdxl" ? Family::SDXL : kind == "sd2_v" ? Family::SD2 : Family::SD1;
  for (const char* name : {"unet", "vae", "text_encoder", "text_encoder_2"})
    if (p.contains(name)) model.components[name] = component(c.models_dir() / folder_of(p[name]), name);
  nlohmann::json sched = spec["producer"].contains("scheduler_config") ? spec["producer"]["scheduler_config"]
                         : p.contains("scheduler")                      ? p["scheduler"]
                                                                        : pipelines["sd1"]["scheduler"];
  model.scheduler_config = sched;
  model.prediction_type = sched.value("prediction_type", "epsilon");

  TokenizerLocation where;
  where.path = c.tokenizer_dir().string();
  where.search_hf_cache = false;
  ClipTokenizer tok = ClipTokenizer::load(where);
  if (p["tokenizer"].value("pad", "") == "!") tok.set_pad_token("!");
  std::optional<ClipTokenizer> tok2;
  if (p.contains("tokenizer_2")) {
    tok2 = ClipTokenizer::load(where);
    if (p["tokenizer_2"].value("pad", "") == "!") tok2->set_pad_token("!");
  }
  StableDiffusion sd = StableDiffusion::create(model, std::move(tok), std::move(tok2));

  const PipelineCall call = read_pipeline_call(c);
  GenerateRequest r = request_of(call);
  r.strength = call.strength;
  if (call.seed) r.seed = *call.seed;
  if (c.has("latents")) r.latents = c.tensor("latents");
  if (c.has("init_image_uint8")) r.init_image = image_from(c.tensor("init_image_uint8"));
  if (c.has("mask_uint8")) r.mask = image_from(c.tensor("mask_uint8"));

  std::map<std::string, Tensor> seen;
  GenerateResult out = sd.generate(r, {}, [&](const std::string& name, const Tensor& t) { seen[name] = t.clone(); });
  for (const auto& [name, t] : spec["tensors"].items()) {
    if (t.value("role", "") != "output") continue;
    if (name == "image") {
      c.compare(name, ops::permute(out.pixels, {0, 2, 3, 1}));
    } else if (seen.count(name)) {
      c.compare(name, seen[name]);
    } else {
      c.failure(name, "the pipeline produced no such value");
    }
  }
}

Register reg("pipelines/", run_pipeline);

}  // namespace
}  // namespace pigment::golden
