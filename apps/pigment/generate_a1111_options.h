// `pigment generate` flags for A1111's hires fix, "inpaint only masked" / masked content, img2img resize modes and
// SDXL micro-conditioning: declared into GenerateFlags, then validated (one-line errors naming the flag) and applied
// to its GenerationRequest.
#pragma once
#include <CLI/CLI.hpp>

#include "generate_flags.h"
#include "models/model_family.h"

namespace pigment::cli {

void add_a1111_options(CLI::App& app, GenerateFlags& f);
// After --from-png and once the init image and mask are read: checks the flags and sets the request's fields from
// those given. The hires fix is on with --hires-fix or a recipe's hires keys; --denoising-strength, when given alone,
// sets img2img's strength and the hires pass's alike, as A1111's one field does.
void apply_a1111_flags(GenerateFlags& f, const CLI::App& app);
// After loading: refuses SDXL micro-conditioning (flags or recipe) for other families.
void check_a1111_family(const GenerationRequest& g, Family family);

}  // namespace pigment::cli
