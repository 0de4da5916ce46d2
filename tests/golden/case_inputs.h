// Reading a case's inputs from its case.json, so that no runner holds a case's values as constants: the producer's
// pipeline call (size, step count, guidance, strength, ControlNet and LoRA scales, seed), the scheduler it used,
// prompts, and scales written into tensor names ("unet_out.scale0p6"). A value the case does not give is an error
// naming the case and the value, except where the note at the field says which default diffusers itself applied.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "golden.h"
#include "pipelines/stable_diffusion.h"

namespace pigment::golden {

// The number of a keyword argument in a Python call text: call_keyword("pipe(x, height=64, w=2)", "height") == 64.
// Also reads dict entries written as 'key': value. Absent: nullopt.
std::optional<double> call_keyword(const std::string& call, const std::string& key);

struct PipelineCall {
  std::string text;  // producer.call or pipeline_call, as case.json writes it
  std::string scheduler;  // diffusers class name (scheduler_of)
  std::string prompt, negative_prompt;
  int height = 0, width = 0, steps = 0;
  double guidance_scale = 0;
  // strength=; absent: diffusers' default of the pipeline the case ran (img2img 0.8, otherwise 1.0).
  double strength = 1;
  std::optional<double> controlnet_scale;  // controlnet_conditioning_scale=
  std::optional<double> lora_scale;        // cross_attention_kwargs={'scale': s}
  std::optional<uint64_t> seed;            // Generator('cpu').manual_seed(N)
};

// The pipeline call of a pipeline-running case (pipelines/*, lora/*, controlnet/pipeline):
// - height/width: the call's keywords, else the shape [B, H, W, 3] of the output tensor `image` / `pipe.image`;
// - steps: num_inference_steps=, else the length of case.json's `timesteps` (txt2img only);
// - guidance_scale, controlnet_conditioning_scale: the call, else the description ("guidance 7.5");
// - prompt: case.json's `prompt`; negative_prompt: case.json's `negative_prompt` (null or negative_prompt=None: "").
//   A case that records no negative prompt at all (lora/*) shares it with the pipelines/* cases of the same golden
//   set run on the same prompt; it is read from there, and it is an error when they disagree or none exists.
PipelineCall read_pipeline_call(const Case& c);
// The request every pipeline runner starts from: the call's prompts (literal text), scheduler, steps, guidance and
// size. Strength, seed and latents are the runner's to add.
GenerateRequest request_of(const PipelineCall& call);

// The diffusers scheduler class a case ran: producer.scheduler_config._class_name, else the first "...Scheduler"
// word, else the first of DDIM / Euler a / Euler / DPM++ 2M named in the description, the producer's fields or a
// tensor's meaning (in that order). None: an error.
std::string scheduler_of(const Case& c);

// Scales written into the names of a case's tensors as "<prefix><int>p<fraction>", keyed by that suffix:
// scales_in_names(c, "unet_out.scale") == {{"0p6", 0.6}, {"1p0", 1.0}} for the LoRA cases.
std::map<std::string, double> scales_in_names(const Case& c, const std::string& prefix);

}  // namespace pigment::golden
