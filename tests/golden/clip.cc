// Golden cases clip/*: transformers CLIPTextModel / CLIPTextModelWithProjection on padded token ids.
#include <map>
#include <memory>

#include "golden.h"
#include "models/clip_text.h"
#include "models/model_config.h"

namespace pigment::golden {
namespace {

Weights open_weights(const fs::path& file) {
  SafeTensors st = SafeTensors::open(file.string());
  auto map = std::make_shared<TensorMap>();
  for (const auto& e : st.entries()) (*map)[e.name] = st.get(e.name);
  return Weights(map, file.string());
}

void run_clip(Case& c) {
  const auto& spec = c.spec();
  fs::path model_dir = c.golden_root() / spec["producer"]["model_dir"].get<std::string>();
  ClipTextConfig config = ClipTextConfig::from_config(ModelConfig::load(model_dir.string()));
  // The class that produced the case decides, not the config: clip_sd2 loads clip_proj as a plain CLIPTextModel.
  config.with_projection = spec["producer"]["class"].get<std::string>() == "transformers.CLIPTextModelWithProjection";
  ClipTextModel model = ClipTextModel::load(config, open_weights(model_dir / "model.safetensors"));

  auto ids = spec["input_ids"].get<std::vector<std::vector<int64_t>>>();
  ClipOptions opt;
  opt.keep_hidden_states = true;
  ClipOutput out = model.forward(ids, opt);
  ClipOptions skip2;
  skip2.clip_skip = 2;
  ClipOutput penultimate = model.forward(ids, skip2);

  std::map<std::string, Tensor> produced = {
      {"last_hidden_state", out.last_hidden_state},
      {"penultimate_normed", penultimate.context},
      {"pooler_output", out.pooled},
      {"pooled_output", out.pooled},
  };
  if (out.text_embeds.defined()) produced["text_embeds"] = out.text_embeds;
  for (size_t i = 0; i < out.hidden_states.size(); ++i)
    produced["hidden_states." + std::to_string(i)] = out.hidden_states[i];

  for (const auto& [name, t] : spec["tensors"].items()) {
    if (t.value("role", "") != "output") continue;
    auto it = produced.find(name);
    if (it == produced.end())
      c.failure(name, "no output of that name");
    else
      c.compare(name, it->second);
  }
}

Register reg("clip/", run_clip);

}  // namespace
}  // namespace pigment::golden
