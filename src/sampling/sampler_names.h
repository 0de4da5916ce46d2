// Names people use for samplers: AUTOMATIC1111 labels ("Euler a", "DPM++ 2M Karras" = sampler + schedule),
// A1111 schedule types ("Karras", "SGM Uniform", ...) and pigment / diffusers scheduler names, resolved to one
// registered scheduler plus the config changes the label implies.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "sampling/scheduler.h"

namespace pigment {

// A sampler as a label means it: the registered scheduler, the sigma schedule and extra config fields.
struct SamplerChoice {
  std::string scheduler;          // registered name, e.g. "dpmpp_2m"
  std::string schedule;           // "" (the sampler's own) | karras | exponential | polyexponential | sgm_uniform
  std::string config_json = "{}";  // fields the label implies, e.g. {"skip_prk_steps": true} for PLMS
};

struct SamplerLabel {
  std::string label;  // "DPM++ 2M Karras"
  SamplerChoice choice;
};

// A1111 sampler labels whose scheduler is registered in this build, in A1111's order.
std::vector<SamplerLabel> a1111_sampler_labels();
// A1111 schedule type labels pigment accepts ("Automatic", "Uniform", "Karras", ...).
std::vector<std::string> schedule_labels();

// An A1111 label (case-insensitive) or any registered scheduler name → the choice. Unknown names throw one line
// listing the valid ones.
SamplerChoice resolve_sampler(const std::string& name);
// A schedule label or pigment name ("Karras", "karras", "SGM Uniform", "sgm_uniform", "Automatic", "") →
// pigment's schedule name ("" for the sampler's own). Unknown names throw listing the valid ones.
std::string resolve_schedule(const std::string& name);

// `base` with the choice applied (and `schedule` overriding the label's own when not empty / "Automatic"):
// karras / exponential set use_karras_sigmas / use_exponential_sigmas, polyexponential sets
// use_polyexponential_sigmas (σ-space samplers only), sgm_uniform sets timestep_spacing "trailing".
// A schedule the sampler cannot use (Karras for DDIM, ...) throws.
SchedulerConfig apply_sampler_choice(const SchedulerConfig& base, const SamplerChoice& choice,
                                     const std::string& schedule = "");
// resolve_sampler + apply_sampler_choice + make_scheduler.
std::unique_ptr<Scheduler> make_sampler(const std::string& name, const SchedulerConfig& base,
                                        const std::string& schedule = "");

}  // namespace pigment
