// `pigment generate` flags for A1111's hires fix, "inpaint only masked" / masked content, and SDXL
// micro-conditioning: declared, validated, turned into GenerateRequest fields, written to and read from infotext.
#pragma once
#include <CLI/CLI.hpp>

#include "pipelines/infotext.h"
#include "pipelines/stable_diffusion.h"

namespace pigment::cli {

void add_a1111_options(CLI::App& app);
// Takes the recipe's hires / inpaint (with Mask blur) / SDXL keys, except for flags given on the command line.
void apply_a1111_infotext(const Infotext& info, const CLI::App& app, const std::string& path, int& mask_blur);
// Validates the flags (one-line errors) and fills the request. `img2img_strength` is the --strength value;
// --denoising-strength, when given alone, sets it for img2img and the hires pass alike, as A1111's one field does.
void fill_a1111_request(GenerateRequest& r, const CLI::App& app, double& img2img_strength);
// After loading: refuses SDXL micro-conditioning flags for other families.
void check_a1111_family(Family family);
// Whether SDXL crop coordinates were given (flag or recipe): the infotext then records them, 0x0 included.
bool a1111_crop_coords_set();

}  // namespace pigment::cli
