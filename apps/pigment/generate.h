// pigment generate's flags and run, for subcommands that generate with extra steps around it (pigment qr): they
// declare the same flags and call the same run, never a copy of it.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "io/image.h"

namespace pigment::cli {

struct GenerateHooks {
  // Control images for the first --control-net units, made once the output size is known.
  std::function<std::vector<Image>(int width, int height)> leading_control_images;
  // Sees every PNG written.
  std::function<void(const std::string& path)> written;
};

// Declares every generate flag on `app` (-m is required unless model_required is false; run_generate then checks).
void add_generate_options(CLI::App& app, bool model_required = true);
// Runs a generation from the flags parsed into `app`. Returns the exit status; errors throw pigment::Error.
int run_generate(CLI::App& app, const GenerateHooks& hooks = {});

}  // namespace pigment::cli
