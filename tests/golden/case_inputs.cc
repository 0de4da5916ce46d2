#include "case_inputs.h"

#include <fstream>
#include <regex>

#include "core/error.h"

namespace pigment::golden {

namespace {

const std::string kNumber = R"(([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?))";

std::string string_field(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

// The texts a case describes itself with, in the order they are searched: description, the producer's fields,
// each tensor's meaning.
std::vector<std::string> descriptive_texts(const Case& c) {
  const auto& spec = c.spec();
  std::vector<std::string> out{string_field(spec, "description")};
  if (spec.contains("producer")) {
    std::string producer;
    for (const auto& [key, value] : spec["producer"].items())
      if (value.is_string()) producer += value.get<std::string>() + "\n";
    out.push_back(producer);
  }
  if (spec.contains("tensors"))
    for (const auto& [name, t] : spec["tensors"].items()) out.push_back(string_field(t, "meaning"));
  return out;
}

// The call text: producer.call, else pipeline_call (the LoRA cases).
std::string call_text(const Case& c) {
  const auto& spec = c.spec();
  std::string call = spec.contains("producer") ? string_field(spec["producer"], "call") : "";
  if (call.find("pipe(") == std::string::npos && spec.contains("pipeline_call")) call = string_field(spec, "pipeline_call");
  return call;
}

std::optional<double> described_number(const Case& c, const std::string& words) {
  std::smatch m;
  for (const std::string& text : descriptive_texts(c))
    if (std::regex_search(text, m, std::regex("\\b" + words + "\\s+" + kNumber))) return std::stod(m[1].str());
  return std::nullopt;
}

// [B, H, W, 3] of the output image the case stores.
std::optional<std::pair<int, int>> image_size(const Case& c) {
  for (const char* name : {"image", "pipe.image"}) {
    if (!c.spec().contains("tensors") || !c.spec()["tensors"].contains(name)) continue;
    auto shape = c.spec()["tensors"][name].value("shape", std::vector<int64_t>{});
    if (shape.size() == 4) return std::pair{int(shape[1]), int(shape[2])};
  }
  return std::nullopt;
}

// The negative prompt of the pipelines/* cases of the same golden set that ran `prompt`.
std::string shared_negative_prompt(const Case& c, const std::string& prompt) {
  std::optional<std::string> found;
  std::string from;
  const fs::path dir = c.golden_root() / "pipelines";
  PIG_CHECK(fs::is_directory(dir), c.name(), ": case.json records no negative_prompt, and there is no ", dir.string(),
            " to share it with");
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::ifstream f(entry.path() / "case.json");
    if (!f) continue;
    nlohmann::json other = nlohmann::json::parse(f, nullptr, false);
    if (other.is_discarded() || string_field(other, "prompt") != prompt || !other.contains("negative_prompt") ||
        !other["negative_prompt"].is_string())
      continue;
    std::string negative = other["negative_prompt"];
    PIG_CHECK(!found || *found == negative, c.name(), ": case.json records no negative_prompt, and the pipelines cases ",
              from, " and ", entry.path().filename().string(), " disagree on it");
    found = negative;
    from = entry.path().filename().string();
  }
  PIG_CHECK(found, c.name(), ": case.json records no negative_prompt, and no pipelines case ran the same prompt");
  return *found;
}

}  // namespace

std::optional<double> call_keyword(const std::string& call, const std::string& key) {
  std::smatch m;
  if (std::regex_search(call, m, std::regex("\\b" + key + "\\s*=\\s*" + kNumber))) return std::stod(m[1].str());
  if (std::regex_search(call, m, std::regex("['\"]" + key + "['\"]\\s*:\\s*" + kNumber))) return std::stod(m[1].str());
  return std::nullopt;
}

std::string scheduler_of(const Case& c) {
  const auto& spec = c.spec();
  if (spec.contains("producer") && spec["producer"].contains("scheduler_config")) {
    std::string cls = string_field(spec["producer"]["scheduler_config"], "_class_name");
    if (!cls.empty()) return cls;
  }
  const std::vector<std::string> texts = descriptive_texts(c);
  std::smatch m;
  for (const std::string& text : texts)
    if (std::regex_search(text, m, std::regex(R"(\b(\w+Scheduler)\b)"))) return m[1].str();
  // A1111-style short names; in each text the one named first wins.
  const std::pair<const char*, const char*> kShort[] = {{R"(\bDDIM\b)", "DDIMScheduler"},
                                                        {R"(\bEuler a\b|\bEuler ancestral\b)",
                                                         "EulerAncestralDiscreteScheduler"},
                                                        {R"(\bEuler\b)", "EulerDiscreteScheduler"},
                                                        {R"(\bDPM\+\+ 2M\b)", "DPMSolverMultistepScheduler"}};
  for (const std::string& text : texts) {
    size_t best = std::string::npos;
    std::string cls;
    for (const auto& [pattern, name] : kShort)
      if (std::regex_search(text, m, std::regex(pattern)) && size_t(m.position(0)) < best) {
        best = size_t(m.position(0));
        cls = name;
      }
    if (!cls.empty()) return cls;
  }
  fail(c.name(), ": case.json names no scheduler (no _class_name, no \"...Scheduler\", no DDIM/Euler/DPM++ 2M)");
}

PipelineCall read_pipeline_call(const Case& c) {
  const auto& spec = c.spec();
  PipelineCall p;
  p.text = call_text(c);
  PIG_CHECK(!p.text.empty(), c.name(), ": case.json has no producer.call or pipeline_call");
  p.scheduler = scheduler_of(c);

  PIG_CHECK(spec.contains("prompt") && spec["prompt"].is_string(), c.name(), ": case.json has no prompt");
  p.prompt = spec["prompt"];
  if (spec.contains("negative_prompt"))
    p.negative_prompt = spec["negative_prompt"].is_string() ? spec["negative_prompt"].get<std::string>() : "";
  else if (p.text.find("negative_prompt=None") != std::string::npos)
    p.negative_prompt = "";
  else
    p.negative_prompt = shared_negative_prompt(c, p.prompt);

  auto h = call_keyword(p.text, "height"), w = call_keyword(p.text, "width");
  auto image = image_size(c);
  PIG_CHECK((h && w) || image, c.name(), ": no height/width in the call and no output image to take them from");
  p.height = h ? int(*h) : image->first;
  p.width = w ? int(*w) : image->second;

  auto listed = [&](const char* name) {
    return c.has(name) || (spec.contains("tensors") && spec["tensors"].contains(name));
  };
  const bool img2img = listed("init_image_uint8"), inpaint = listed("mask_uint8");
  if (auto steps = call_keyword(p.text, "num_inference_steps"))
    p.steps = int(*steps);
  else if (!img2img && spec.contains("timesteps") && spec["timesteps"].is_array())
    p.steps = int(spec["timesteps"].size());
  else
    fail(c.name(), ": no num_inference_steps in the call and no timesteps list to count");

  auto guidance = call_keyword(p.text, "guidance_scale");
  if (!guidance) guidance = described_number(c, "guidance");
  PIG_CHECK(guidance, c.name(), ": no guidance_scale in the call or the description");
  p.guidance_scale = *guidance;

  auto strength = call_keyword(p.text, "strength");
  p.strength = strength ? *strength : img2img && !inpaint ? 0.8 : 1.0;

  p.controlnet_scale = call_keyword(p.text, "controlnet_conditioning_scale");
  if (!p.controlnet_scale) p.controlnet_scale = described_number(c, "controlnet_conditioning_scale");
  // cross_attention_kwargs={'scale': s}: the LoRA scale of the run (the only 'scale' entry of these calls).
  std::smatch m;
  if (std::regex_search(p.text, m, std::regex(R"(cross_attention_kwargs\s*=\s*\{[^}]*'scale'\s*:\s*)" + kNumber)))
    p.lora_scale = std::stod(m[1].str());
  if (std::regex_search(p.text, m, std::regex(R"(manual_seed\((\d+)\))"))) p.seed = std::stoull(m[1].str());
  return p;
}

std::map<std::string, double> scales_in_names(const Case& c, const std::string& prefix) {
  std::vector<std::string> names = c.tensor_names();  // the tensor file's names and case.json's list
  if (c.spec().contains("tensors"))
    for (const auto& [name, t] : c.spec()["tensors"].items()) names.push_back(name);
  std::map<std::string, double> out;
  const std::regex tail(R"((\d+)p(\d+))");
  std::smatch m;
  for (const std::string& name : names) {
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string rest = name.substr(prefix.size());
    if (std::regex_match(rest, m, tail)) out[rest] = std::stod(m[1].str() + "." + m[2].str());
  }
  return out;
}

GenerateRequest request_of(const PipelineCall& call) {
  GenerateRequest r;
  r.a1111_syntax = false;
  r.prompt = call.prompt;
  r.negative_prompt = call.negative_prompt;
  r.sampler = call.scheduler;
  r.steps = call.steps;
  r.cfg_scale = call.guidance_scale;
  r.height = call.height;
  r.width = call.width;
  return r;
}

}  // namespace pigment::golden
