#include "training/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace pigment::training {

const std::vector<std::string>& lr_schedule_names() {
  static const std::vector<std::string> names = {"constant", "constant_with_warmup", "linear", "cosine",
                                                 "cosine_with_restarts", "polynomial"};
  return names;
}

LrSchedule::LrSchedule(LrScheduleOptions options) : options_(std::move(options)) {
  const auto& names = lr_schedule_names();
  if (std::find(names.begin(), names.end(), options_.name) == names.end()) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    fail("unknown learning-rate schedule '", options_.name, "' (accepted: ", list, ")");
  }
  PIG_CHECK(options_.warmup_steps >= 0, "learning-rate schedule: warm-up steps must be >= 0");
  const bool decays = options_.name != "constant" && options_.name != "constant_with_warmup";
  PIG_CHECK(!decays || options_.total_steps > 0, "learning-rate schedule '", options_.name,
            "' needs the total number of training steps");
  PIG_CHECK(options_.name != "polynomial" || options_.base_lr > options_.lr_end, "learning-rate schedule polynomial: lr_end (",
            options_.lr_end, ") must be smaller than the learning rate (", options_.base_lr, ")");
}

double LrSchedule::factor(int64_t step) const {
  const auto& o = options_;
  const std::string& n = o.name;
  if (n == "constant") return 1.0;
  if (step < o.warmup_steps) return double(step) / double(std::max<int64_t>(1, o.warmup_steps));
  if (n == "constant_with_warmup") return 1.0;
  const double decay_steps = double(std::max<int64_t>(1, o.total_steps - o.warmup_steps));
  const double progress = double(step - o.warmup_steps) / decay_steps;
  if (n == "linear") return std::max(0.0, double(o.total_steps - step) / decay_steps);
  if (n == "cosine") return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * 0.5 * 2.0 * progress)));
  if (n == "cosine_with_restarts") {
    if (progress >= 1.0) return 0.0;
    return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * std::fmod(o.num_cycles * progress, 1.0))));
  }
  // polynomial: from base_lr down to lr_end, then held at lr_end.
  if (step > o.total_steps) return o.lr_end / o.base_lr;
  const double remaining = 1.0 - double(step - o.warmup_steps) / decay_steps;
  return ((o.base_lr - o.lr_end) * std::pow(remaining, o.power) + o.lr_end) / o.base_lr;
}

double LrSchedule::lr(int64_t step) const { return options_.base_lr * factor(step); }

}  // namespace pigment::training
