#include "sampling/sampler_names.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

namespace pigment {

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_registered(const std::string& name) {
  const std::string l = lower(name);
  for (const auto& n : scheduler_names())
    if (lower(n) == l) return true;
  return false;
}

// A1111's labels (its samplers_k_diffusion and timestep samplers, plus the pre-1.9 "<sampler> Karras" forms).
const std::vector<SamplerLabel>& all_labels() {
  static const std::vector<SamplerLabel> labels = {
      {"DPM++ 2M", {"dpmpp_2m", ""}},
      {"DPM++ 2M Karras", {"dpmpp_2m", "karras"}},
      {"DPM++ SDE", {"dpmpp_sde", ""}},
      {"DPM++ SDE Karras", {"dpmpp_sde", "karras"}},
      {"DPM++ 2M SDE", {"dpmpp_2m_sde", ""}},
      {"DPM++ 2M SDE Karras", {"dpmpp_2m_sde", "karras"}},
      {"DPM++ 2M SDE Exponential", {"dpmpp_2m_sde", "exponential"}},
      {"DPM++ 2S a", {"dpmpp_2s_a", ""}},
      {"DPM++ 2S a Karras", {"dpmpp_2s_a", "karras"}},
      {"Euler a", {"euler_a", ""}},
      {"Euler", {"euler", ""}},
      {"LMS", {"lms", ""}},
      {"LMS Karras", {"lms", "karras"}},
      {"Heun", {"heun", ""}},
      {"DPM2", {"kdpm2", ""}},
      {"DPM2 Karras", {"kdpm2", "karras"}},
      {"DPM2 a", {"kdpm2_a", ""}},
      {"DPM2 a Karras", {"kdpm2_a", "karras"}},
      {"DDIM", {"ddim", ""}},
      {"PLMS", {"pndm", "", R"({"skip_prk_steps": true})"}},
      {"UniPC", {"unipc", ""}},
      {"LCM", {"lcm", ""}},
  };
  return labels;
}

struct ScheduleLabel {
  std::string label, name;
};
const std::vector<ScheduleLabel>& all_schedules() {
  static const std::vector<ScheduleLabel> s = {{"Automatic", ""},          {"Uniform", ""},
                                               {"Karras", "karras"},        {"Exponential", "exponential"},
                                               {"Polyexponential", "polyexponential"}, {"SGM Uniform", "sgm_uniform"}};
  return s;
}

// Samplers that build their σ table in pigment's σ-space base (the only ones that know polyexponential).
bool sigma_space(const std::string& scheduler) {
  static const std::vector<std::string> names = {"euler", "euler_a", "lms", "heun", "kdpm2", "kdpm2_a",
                                                 "eulerdiscretescheduler", "eulerancestraldiscretescheduler",
                                                 "lmsdiscretescheduler", "heundiscretescheduler",
                                                 "kdpm2discretescheduler", "kdpm2ancestraldiscretescheduler",
                                                 "euler_ancestral", "dpm2", "dpm2_a", "kdpm2_ancestral"};
  return std::find(names.begin(), names.end(), lower(scheduler)) != names.end();
}

// Samplers on the ᾱ grid: no σ schedule applies to them.
bool alpha_grid(const std::string& scheduler) {
  static const std::vector<std::string> names = {"ddim", "ddpm", "pndm", "ddimscheduler", "ddpmscheduler",
                                                 "pndmscheduler", "lcm", "lcmscheduler"};
  return std::find(names.begin(), names.end(), lower(scheduler)) != names.end();
}

std::string valid_sampler_names() {
  std::string v;
  for (const auto& l : a1111_sampler_labels()) v += (v.empty() ? "" : ", ") + l.label;
  for (const auto& n : scheduler_names()) v += ", " + n;
  return v;
}

}  // namespace

std::vector<SamplerLabel> a1111_sampler_labels() {
  std::vector<SamplerLabel> v;
  for (const auto& l : all_labels())
    if (is_registered(l.choice.scheduler)) v.push_back(l);
  return v;
}

std::vector<std::string> schedule_labels() {
  std::vector<std::string> v;
  for (const auto& s : all_schedules()) v.push_back(s.label);
  return v;
}

SamplerChoice resolve_sampler(const std::string& name) {
  const std::string l = lower(name);
  for (const auto& s : a1111_sampler_labels())
    if (lower(s.label) == l) return s.choice;
  if (is_registered(name)) return {name, ""};
  fail("unknown sampler '", name, "'; valid names: ", valid_sampler_names());
}

std::string resolve_schedule(const std::string& name) {
  const std::string l = lower(name);
  for (const auto& s : all_schedules())
    if (lower(s.label) == l || (!s.name.empty() && s.name == l)) return s.name;
  if (l.empty()) return "";
  std::string valid;
  for (const auto& s : all_schedules()) valid += (valid.empty() ? "" : ", ") + s.label;
  fail("unknown schedule type '", name, "'; valid names: ", valid);
}

SchedulerConfig apply_sampler_choice(const SchedulerConfig& base, const SamplerChoice& choice,
                                     const std::string& schedule) {
  SchedulerConfig c = base;
  nlohmann::json extra, implied;
  try {
    extra = nlohmann::json::parse(base.json_extra.empty() ? "{}" : base.json_extra);
    implied = nlohmann::json::parse(choice.config_json);
  } catch (const std::exception&) {
    fail("sampler '", choice.scheduler, "': the scheduler config extras are not valid JSON");
  }
  PIG_CHECK(extra.is_object() && implied.is_object(), "sampler '", choice.scheduler,
            "': the scheduler config extras must be a JSON object");
  for (auto it = implied.begin(); it != implied.end(); ++it) extra[it.key()] = it.value();
  const std::string sched = resolve_schedule(schedule).empty() ? choice.schedule : resolve_schedule(schedule);
  if (!sched.empty()) {
    PIG_CHECK(!alpha_grid(choice.scheduler), "sampler '", choice.scheduler, "' does not take the '", sched,
              "' schedule (it steps on the training ᾱ grid)");
    c.use_karras_sigmas = sched == "karras";
    c.use_exponential_sigmas = sched == "exponential";
    extra.erase("use_polyexponential_sigmas");
    if (sched == "polyexponential") {
      PIG_CHECK(sigma_space(choice.scheduler), "sampler '", choice.scheduler,
                "' does not take the polyexponential schedule (only Euler, Euler a, LMS, Heun, DPM2, DPM2 a do)");
      extra["use_polyexponential_sigmas"] = true;
    }
    if (sched == "sgm_uniform") c.timestep_spacing = "trailing";
  }
  c.json_extra = extra.dump();
  return c;
}

std::unique_ptr<Scheduler> make_sampler(const std::string& name, const SchedulerConfig& base,
                                        const std::string& schedule) {
  const SamplerChoice choice = resolve_sampler(name);
  return make_scheduler(choice.scheduler, apply_sampler_choice(base, choice, schedule));
}

}  // namespace pigment
