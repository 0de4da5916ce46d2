// pigment samplers: the sampler and schedule names this build accepts (A1111 labels, schedule types, and pigment /
// diffusers scheduler names).
#include <cstdio>

#include "command.h"
#include "sampling/sampler_names.h"
#include "sampling/scheduler.h"

namespace pigment::cli {
namespace {

int run_samplers() {
  std::printf("A1111 samplers (label: scheduler, schedule):\n");
  for (const auto& l : a1111_sampler_labels()) {
    std::printf("  %-26s %s", l.label.c_str(), l.choice.scheduler.c_str());
    if (!l.choice.schedule.empty()) std::printf(", %s", l.choice.schedule.c_str());
    if (l.choice.config_json != "{}") std::printf(" %s", l.choice.config_json.c_str());
    std::printf("\n");
  }
  std::printf("schedule types:\n");
  for (const auto& s : schedule_labels()) std::printf("  %s\n", s.c_str());
  std::printf("schedulers (pigment and diffusers names):\n");
  for (const auto& n : scheduler_names()) std::printf("  %s\n", n.c_str());
  return 0;
}

RegisterCommand reg("samplers", "list the sampler and schedule names pigment accepts", [](CLI::App&) {}, run_samplers);

}  // namespace
}  // namespace pigment::cli
