// Learning-rate schedules as diffusers' get_scheduler (diffusers/optimization.py) and kohya's sd-scripts name them.
// Each is a LambdaLR: the lr of the optimizer step that follows `step` completed steps is base_lr * factor(step),
// so the first step (step 0) of a warm-up runs at lr 0, as in diffusers.
#pragma once
#include <string>
#include <vector>

namespace pigment::training {

struct LrScheduleOptions {
  std::string name = "constant";  // see lr_schedule_names()
  double base_lr = 1e-4;
  int64_t warmup_steps = 0;      // ignored by "constant", as diffusers ignores it
  int64_t total_steps = 0;       // needed by the decaying schedules
  double num_cycles = 1;         // "cosine_with_restarts": hard restarts (cosine itself is always half a cycle)
  double power = 1.0, lr_end = 1e-7;  // "polynomial"
};

class LrSchedule {
 public:
  // Throws a one-line error for an unknown name (listing the accepted ones) or missing total steps.
  explicit LrSchedule(LrScheduleOptions options);
  // The learning rate after `step` completed optimizer steps (step >= 0).
  double lr(int64_t step) const;
  // lr(step) / base_lr.
  double factor(int64_t step) const;
  const LrScheduleOptions& options() const { return options_; }

 private:
  LrScheduleOptions options_;
};

// "constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial".
const std::vector<std::string>& lr_schedule_names();

}  // namespace pigment::training
