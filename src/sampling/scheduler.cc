#include "sampling/scheduler.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <nlohmann/json.hpp>

namespace pigment {

namespace {
std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::map<std::string, std::pair<std::string, SchedulerFactory>>& registry() {
  static std::map<std::string, std::pair<std::string, SchedulerFactory>> r;  // lower-case name → (name, factory)
  return r;
}
}  // namespace

RegisterScheduler::RegisterScheduler(std::vector<std::string> names, SchedulerFactory make) {
  for (auto& n : names) registry()[lower(n)] = {n, make};
}

std::unique_ptr<Scheduler> make_scheduler(const std::string& name, const SchedulerConfig& config) {
  auto it = registry().find(lower(name));
  if (it == registry().end()) {
    std::string valid;
    for (const auto& n : scheduler_names()) valid += (valid.empty() ? "" : ", ") + n;
    fail("unknown sampler '", name, "'; valid names: ", valid);
  }
  return it->second.second(config);
}

std::vector<std::string> scheduler_names() {
  std::vector<std::string> v;
  for (const auto& [k, e] : registry()) v.push_back(e.first);
  std::sort(v.begin(), v.end());
  return v;
}

SchedulerConfig SchedulerConfig::from_json(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    fail("scheduler config is not valid JSON: ", e.what());
  }
  PIG_CHECK(j.is_object(), "scheduler config must be a JSON object");
  SchedulerConfig c;
  nlohmann::json extra = nlohmann::json::object();
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const auto& v = it.value();
    try {
      if (k == "num_train_timesteps") c.num_train_timesteps = v.get<int>();
      else if (k == "beta_start") c.beta_start = v.get<double>();
      else if (k == "beta_end") c.beta_end = v.get<double>();
      else if (k == "beta_schedule") c.beta_schedule = v.get<std::string>();
      else if (k == "prediction_type") c.prediction_type = v.get<std::string>();
      else if (k == "timestep_spacing") c.timestep_spacing = v.get<std::string>();
      else if (k == "steps_offset") c.steps_offset = v.get<int>();
      else if (k == "clip_sample") c.clip_sample = v.get<bool>();
      else if (k == "clip_sample_range") c.clip_sample_range = v.get<double>();
      else if (k == "set_alpha_to_one") c.set_alpha_to_one = v.get<bool>();
      else if (k == "rescale_betas_zero_snr") c.rescale_betas_zero_snr = v.get<bool>();
      else if (k == "use_karras_sigmas") c.use_karras_sigmas = v.is_boolean() && v.get<bool>();
      else if (k == "use_exponential_sigmas") c.use_exponential_sigmas = v.is_boolean() && v.get<bool>();
      else if (k == "eta") c.eta = v.get<double>();
      else extra[k] = v;
    } catch (const nlohmann::json::exception&) {
      fail("scheduler config: field '", k, "' has the wrong type (", v.dump(), ")");
    }
  }
  c.json_extra = extra.dump();
  return c;
}

}  // namespace pigment
