// Where `pigment generate`'s flags land: the library's GenerationRequest (pipelines/generation_request.h) for every
// field it has, and beside it what only the command line has (files to read, the model to load, the output). Flags
// are parsed straight into these fields; the few that need a parse of their own (A1111's labels, WxH sizes) are kept
// as text and applied when given (generate_a1111_options.h).
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "pipelines/generation_request.h"

namespace pigment::cli {

struct GenerateFlags {
  GenerationRequest g;  // prompt, sizes, steps, sampler, seed, batch, LoRA files, ... with their CLI defaults
  AdapterFolders folders;
  std::string model, tokenizer, vae, prediction, precision = "auto";
  std::vector<std::string> model_configs;
  std::string init_img, mask, from_png, output = "output.png", upscale_filter = "lanczos";
  int threads = 0, upscale = 1;
  bool literal_prompt = false, overwrite = false, quiet = false, low_memory = false;
  // A1111 extras: the hires fix's fields (g.gen.hires once --hires-fix or the recipe turns it on), A1111's one
  // denoising strength, and the flags given as labels or WxH.
  bool hires = false;
  GenerateRequest::HiresFix hr;
  double denoising = 0.75;
  std::string resize_mode = "just-resize", inpaint_area = "whole", masked_content = "original";
  std::string original_size, crop_coords, target_size;
};

}  // namespace pigment::cli
