// What a training run writes besides checkpoints and its result: sample images during the run and the loss curve.
#pragma once
#include <cstdint>
#include <string>

#include "io/image.h"

namespace pigment {
class StableDiffusion;
}

namespace pigment::training {

class Method;
struct TrainOptions;

// One image per --sample-prompt with the weights trained so far (the method applied to `model`, then removed):
// `size`² pixels, 20 steps of Euler a, seed = the training seed, written with A1111 infotext as
// dir/step-<step, 6 digits>-<prompt index>.png. Uses a generator of its own: the training's random choices are
// untouched. A method that cannot sample yet gets a one-line warning and no image.
void write_samples(StableDiffusion& model, const Method& method, const TrainOptions& o, int64_t step, int size,
                   const std::string& dir);

// The loss curve of a log.csv (step,loss,smoothed_loss,...): the loss in light grey, the smoothed loss in blue,
// over axes from step 0 and loss 0, labelled with the last step and the largest loss (a 3x5 pixel digit font).
// An empty log gives the bare axes.
Image plot_loss_curve(const std::string& log_csv, int width = 800, int height = 400);
void write_loss_plot(const std::string& log_csv, const std::string& png);

}  // namespace pigment::training
