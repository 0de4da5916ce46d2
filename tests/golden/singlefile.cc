// singlefile/*: the tiny models in the original single-file layout (LDM for SD1, SGM fp16 for SDXL) must load, through
// pigment's one loader, into exactly the weights of the diffusers-layout models (bit for bit), and the models built
// from them must reproduce the clip/*, unet/* and vae/* golden outputs.
#include <cstring>
#include <map>

#include "golden.h"
#include "io/checkpoint.h"
#include "models/clip_text.h"
#include "models/model_loader.h"
#include "models/unet.h"
#include "models/vae.h"

namespace pigment::golden {
namespace {

struct Part {
  std::string component, model_dir, weights;
};

// Every diffusers-layout tensor must come out of the single file with the same dtype-converted bits: the SD1
// file is float32 like the models, the SDXL file float16 (every model value is float16-representable).
void compare_weights(Case& c, const ModelComponent& got, const fs::path& reference_file) {
  Checkpoint ref = load_checkpoint(reference_file.string());
  int64_t same = 0, total = 0;
  for (const auto& [name, t] : ref.tensors) {
    if (name.find("position_ids") != std::string::npos) continue;  // a buffer, absent from single files
    ++total;
    auto it = got.tensors->find(name);
    if (it == got.tensors->end()) {
      c.failure(got.name + "." + name, "not produced by the single-file loader");
      continue;
    }
    if (it->second.shape() != t.shape()) {
      c.failure(got.name + "." + name, "shape " + shape_str(it->second.shape()) + ", expected " + shape_str(t.shape()));
      continue;
    }
    Tensor a = it->second.as_f32(), b = t.as_f32();
    if (std::memcmp(a.raw(), b.raw(), a.nbytes()) != 0) {
      c.failure(got.name + "." + name, "values differ from " + reference_file.string());
      continue;
    }
    ++same;
  }
  std::string summary = std::to_string(same) + " of " + std::to_string(total) + " identical";
  c.compare_text(got.name + " weights (" + std::to_string(total) + " tensors) vs " + reference_file.filename().string(),
                 summary, std::to_string(total) + " of " + std::to_string(total) + " identical");
  c.compare_text(got.name + " tensor count", std::to_string(got.tensors->size()), std::to_string(total));
}

// Runs a golden case's outputs through a model built from the single file and records one line in `c`.
void record(Case& c, const Case& sub, const std::string& what) {
  std::string got = std::to_string(sub.compared() - sub.failed()) + " of " + std::to_string(sub.compared()) + " pass";
  c.compare_text(what + " (" + sub.name() + ")", got,
                 std::to_string(sub.compared()) + " of " + std::to_string(sub.compared()) + " pass");
}

void run_clip_case(Case& c, const ModelComponent& te, const std::string& case_name, bool with_projection) {
  Case sub(c.golden_root() / case_name);
  ClipTextConfig config = ClipTextConfig::from_config(te.model_config());
  config.with_projection = with_projection;
  ClipTextModel model = ClipTextModel::load(config, te.weights());
  auto ids = sub.spec()["input_ids"].get<std::vector<std::vector<int64_t>>>();
  ClipOptions all;
  all.keep_hidden_states = true;
  ClipOutput out = model.forward(ids, all);
  ClipOptions skip2;
  skip2.clip_skip = 2;
  std::map<std::string, Tensor> produced = {{"last_hidden_state", out.last_hidden_state},
                                            {"penultimate_normed", model.forward(ids, skip2).context},
                                            {"pooler_output", out.pooled},
                                            {"pooled_output", out.pooled}};
  if (out.text_embeds.defined()) produced["text_embeds"] = out.text_embeds;
  for (size_t i = 0; i < out.hidden_states.size(); ++i) produced["hidden_states." + std::to_string(i)] = out.hidden_states[i];
  for (const auto& [name, t] : sub.spec()["tensors"].items()) {
    if (t.value("role", "") != "output") continue;
    auto it = produced.find(name);
    if (it == produced.end())
      sub.failure(name, "no output of that name");
    else
      sub.compare(name, it->second);
  }
  record(c, sub, te.name + " from the single file");
}

void run_unet_case(Case& c, const ModelComponent& u, const std::string& case_name) {
  Case sub(c.golden_root() / case_name);
  UNet unet(UNetConfig::from_json(u.config.dump(), u.source), u.weights());
  Tensor sample = sub.tensor("sample"), ctx = sub.tensor("encoder_hidden_states");
  UNetExtras extras;
  if (sub.has("text_embeds")) extras.text_embeds = sub.tensor("text_embeds");
  if (sub.has("time_ids")) extras.time_ids = sub.tensor("time_ids");
  for (const auto& run : sub.spec()["runs"]) {
    std::vector<float> t;
    if (run["timestep"].is_array())
      for (const auto& v : run["timestep"]) t.push_back(v.get<float>());
    else
      t.push_back(run["timestep"].get<float>());
    sub.compare(run["key"].get<std::string>(), unet.forward(sample, t, ctx, extras));
  }
  record(c, sub, "unet from the single file");
}

void run_vae_case(Case& c, const ModelComponent& v, const std::string& case_name) {
  Case sub(c.golden_root() / case_name);
  Vae vae = Vae::load(v.model_config(), v.weights());
  LatentDistribution post = vae.encode(sub.tensor("image"));
  std::map<std::string, Tensor> produced = {{"latent_mean", post.mean()},
                                            {"latent_logvar", post.logvar()},
                                            {"latent_std", post.stddev()},
                                            {"decoded", vae.decode(sub.tensor("z"))},
                                            {"roundtrip", vae.decode(post.mean())}};
  for (const auto& [name, t] : produced)
    if (sub.spec()["tensors"].contains(name)) sub.compare(name, t);
  record(c, sub, "vae from the single file");
}

void run_singlefile(Case& c) {
  bool xl = c.name() == "singlefile/sdxl";
  std::vector<Part> parts = {{"unet", xl ? "models/unet_sdxl" : "models/unet_sd1", "diffusion_pytorch_model.safetensors"},
                             {"vae", "models/vae", "diffusion_pytorch_model.safetensors"},
                             {"text_encoder", "models/clip_sd1", "model.safetensors"}};
  if (xl) parts.push_back({"text_encoder_2", "models/clip_proj", "model.safetensors"});
  // A single file records no head counts or GroupNorm group counts: they come from the models' config.json.
  LoadOptions options;
  for (const auto& p : parts) options.config_paths[p.component] = (c.golden_root() / p.model_dir).string();
  fs::path file = c.golden_root() / c.spec()["file"].get<std::string>();
  LoadedModel m = load_model(file.string(), options);

  c.compare_text("family", detection_str(m.detection), xl ? "sdxl" : "sd1");
  c.compare_text("prediction type", m.prediction_type, "epsilon");
  c.compare_text("unused single-file keys", std::to_string(m.unused_keys.size()), "0");
  // Every diffusers key of the case's key_map is produced.
  int64_t missing = 0;
  for (const auto& [name, v] : c.spec()["key_map"].items()) {
    auto dot = name.find('.');
    std::string comp = name.substr(0, dot);
    if (!m.has(comp) || !m.component(comp).tensors->count(name.substr(dot + 1))) {
      c.failure(name, "in key_map, not produced by the loader");
      ++missing;
    }
  }
  c.compare_text("key_map keys produced", std::to_string(c.spec()["key_map"].size() - missing),
                 std::to_string(c.spec()["key_map"].size()));
  for (const auto& p : parts) compare_weights(c, m.component(p.component), c.golden_root() / p.model_dir / p.weights);

  run_clip_case(c, m.component("text_encoder"), "clip/clip_sd1", false);
  if (xl) run_clip_case(c, m.component("text_encoder_2"), "clip/clip_proj", true);
  run_unet_case(c, m.component("unet"), xl ? "unet/unet_sdxl" : "unet/unet_sd1");
  run_vae_case(c, m.component("vae"), "vae/autoencoder_kl");
}

Register reg("singlefile/", run_singlefile);

}  // namespace
}  // namespace pigment::golden
