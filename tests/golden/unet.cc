// unet/*: UNet2DConditionModel forward for several timesteps, plus forward-hook intermediates at the first one.
#include <map>
#include <regex>

#include "golden.h"
#include "models/unet.h"

namespace pigment::golden {
namespace {

// Applies a case.json note such as "slice [0:1, 0:16] (batch element 0, first 16 channels)" to `t`.
Tensor apply_slice_note(const Tensor& t, const std::string& note) {
  std::smatch m;
  if (!std::regex_search(note, m, std::regex(R"(slice \[([^\]]*)\])"))) return t;
  Tensor out = t;
  std::string spec = m[1];
  std::regex range(R"((\d+):(\d+))");
  int dim = 0;
  for (auto it = std::sregex_iterator(spec.begin(), spec.end(), range); it != std::sregex_iterator(); ++it, ++dim)
    out = ops::slice(out, dim, std::stoll((*it)[1]), std::stoll((*it)[2]));
  return out;
}

// Timesteps of one run: a number, or a list (a per-sample tensor).
std::vector<float> run_timesteps(const nlohmann::json& ts) {
  std::vector<float> t;
  if (ts.is_array())
    for (const auto& v : ts) t.push_back(v.get<float>());
  else
    t.push_back(ts.get<float>());
  return t;
}

void run_unet(Case& c) {
  const auto& spec = c.spec();
  UNet unet = UNet::load((c.golden_root() / spec["producer"]["model_dir"].get<std::string>()).string());
  Tensor sample = c.tensor("sample"), ctx = c.tensor("encoder_hidden_states");
  UNetExtras extras;
  if (c.has("text_embeds")) extras.text_embeds = c.tensor("text_embeds");
  if (c.has("time_ids")) extras.time_ids = c.tensor("time_ids");

  bool first = true;
  for (const auto& run : spec["runs"]) {
    std::map<std::string, Tensor> seen;
    UNetExtras e = extras;
    if (first) e.hooks.capture = [&](const std::string& name, const Tensor& v) { seen[name] = v; };
    Tensor out = unet.forward(sample, run_timesteps(run["timestep"]), ctx, e);
    std::string key = run["key"];
    if (first) {
      std::string prefix = key.substr(0, key.find('.')) + ".intermediate.";
      for (const auto& name : c.tensor_names()) {
        if (name.rfind(prefix, 0) != 0) continue;
        std::string what = name.substr(prefix.size());
        auto it = seen.find(what);
        if (it == seen.end()) {
          c.failure(name, "the UNet produced no intermediate '" + what + "'");
          continue;
        }
        c.compare(name, apply_slice_note(it->second, spec["tensors"][name].value("note", "")));
      }
    }
    c.compare(key, out);
    first = false;
  }
}

Register reg("unet/", run_unet);

}  // namespace
}  // namespace pigment::golden
