// The ControlNet flags shared by pigment generate and pigment qr. Each --control-net is one unit with its own
// control image, preprocessor, resize mode, strength and start/end; every per-unit flag takes one value (for all
// units) or one value per --control-net, in order.
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/image.h"
#include "pipelines/infotext.h"
#include "pipelines/stable_diffusion.h"

namespace pigment::cli {

struct ControlOptions {
  std::vector<std::string> nets, images, preprocess, resize;
  std::vector<double> strengths, starts, ends;
  double canny_low = 100, canny_high = 200;
  bool canny = false, guess_mode = false;
  // Control images of the first units, ahead of the --control-image files (pigment qr puts its code here).
  std::vector<Image> leading_images;
};

// The one set of parsed ControlNet flags (only one subcommand runs).
ControlOptions& control_options();
void add_control_options(CLI::App& c);
// Validates counts and values and reads the control images; before any model is loaded.
void check_control_options();
// Loads every ControlNet against the base model's UNet config and prepares its map at width x height.
std::vector<ControlUnit> load_control_units(const nlohmann::json& unet_config, int width, int height);
// "ControlNet N" infotext entries in A1111's format (pipelines/generation_run.h's control_infotext), one per unit.
std::vector<std::pair<std::string, std::string>> control_infotext_entries();

}  // namespace pigment::cli
