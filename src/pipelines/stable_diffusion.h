// Stable Diffusion as users run it: txt2img, img2img and inpainting over one loaded model (SD1, SD2, SDXL; single
// file or diffusers folder). Composition only: the math lives in models/ and sampling/. The loop follows diffusers'
// StableDiffusion(XL)(Img2Img|Inpaint)Pipeline step for step, so that a recorded diffusers run is reproduced:
//   latents = noise · init_noise_sigma            (img2img: add_noise(vae.encode(image), noise, first kept t))
//   for t: ε̂ = unet(scale_model_input([x, x]), t, [uncond, cond]);  ε = ε̂_u + cfg·(ε̂_c − ε̂_u);  x = step(ε, t, x)
//   image = vae.decode(x / scaling_factor) / 2 + 0.5, clamped to [0, 1]
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "imaging/a1111_geometry.h"
#include "io/image.h"
#include "models/clip_text.h"
#include "models/controlnet.h"
#include "models/hypernetwork.h"
#include "models/lora.h"
#include "models/model_loader.h"
#include "models/unet.h"
#include "models/vae.h"
#include "ops/precision.h"
#include "pipelines/embedding_set.h"
#include "sampling/scheduler.h"
#include "text/clip_tokenizer.h"

namespace pigment {

// Text conditioning of one prompt: context [1, T, D] (T = 77 per 75-token chunk) and, for SDXL, pooled [1, P].
struct PromptEmbeds {
  Tensor context, pooled;
};

// How a family's text encoder(s) give the UNet its context at A1111's clip skip (1 = last layer): SD1/SD2 the chosen
// hidden state after the final layer norm; SDXL the hidden state one layer earlier, without it, of both encoders,
// whose contexts are then concatenated along the last dimension (the pooled vector is encoder 2's text_embeds).
ClipOptions conditioning_clip_options(Family family, int clip_skip);

// Sees intermediate values by name: "prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds",
// "negative_pooled_prompt_embeds", "init_latents", "noise", "image_latents" (inpainting, after the masked-content
// rule), "masked_image_latents", "latents.stepNN", "final_latents"; the hires fix adds "hires.upscaled_latents" and
// the second pass's values as "hires.<name>".
using PipelineProbe = std::function<void(const std::string& name, const Tensor& value)>;

struct StepProgress {
  int step = 0, total = 0;  // step counts from 1
  double timestep = 0;
  int pass = 1, passes = 1;  // the hires fix runs two passes, each counting its own steps
};
using ProgressCallback = std::function<void(const StepProgress&)>;

// One ControlNet in a generation. Its residuals are scaled by `strength` (diffusers' controlnet_conditioning_scale,
// default 1.0) on the steps whose fraction of the run lies in [start, end], as diffusers' control_guidance_start/end;
// several units add their residuals. Guess mode feeds the ControlNet the conditional half only and scales the
// residuals from 0.1 (first) to 1.0 (mid).
struct ControlUnit {
  std::shared_ptr<const ControlNet> net;
  Image image;  // the prepared control map (canny edges, depth, pose ...), resized to the output size if needed
  double strength = 1.0;
  double start = 0.0, end = 1.0;
  bool guess_mode = false;
};

struct GenerateRequest {
  std::string prompt, negative_prompt;
  // A1111 prompt syntax ((emphasis:1.2), [de-emphasis], BREAK, 75-token chunks). Off: the prompt is tokenized
  // literally and truncated to 77 tokens, as diffusers does.
  bool a1111_syntax = true;
  // When the negative prompt is empty and this is set, SDXL's unconditional embeddings are zeros (diffusers'
  // force_zeros_for_empty_prompt with negative_prompt=None); otherwise "" is encoded, as A1111 does.
  bool zero_uncond_if_empty = false;
  int width = 512, height = 512;
  int steps = 20;
  double cfg_scale = 7.0;
  double guidance_rescale = 0.0;
  std::string sampler = "Euler a";       // an A1111 label ("DPM++ 2M Karras") or a registered scheduler name
  std::string schedule;                  // A1111 schedule type ("Karras", ...); "" = the sampler's own
  std::string scheduler_config_json;     // overrides the model's scheduler config ("" = none)
  uint64_t seed = 0;
  std::string rng = "cpu";               // cpu | cuda
  int clip_skip = 1;                     // A1111 counting: 1 = last layer
  // Initial latents [1, C, h, w] (unscaled noise); drawn from the generator when undefined.
  Tensor latents;
  // img2img / inpainting
  std::optional<Image> init_image;
  // How the init image (and the mask) reach width × height: A1111's resize modes, Pillow's Lanczos
  // (imaging/a1111_geometry.h). LatentUpscale encodes the init image at its own size and resizes the latent
  // (torch bilinear), img2img without a mask only; the image's sides must then be multiples of 8.
  ResizeMode resize_mode = ResizeMode::JustResize;
  double strength = 0.75;
  std::optional<Image> mask;  // white = repaint (A1111's create_binary_mask: an RGBA mask's alpha, else its gray)
  int mask_blur = 0;          // pixels (A1111's mask_blur: cv::GaussianBlur with σ = mask_blur, at the mask's size)
  // A1111 "Inpaint area: Only masked" (inpaint_full_res): the mask's bounding box grown by `inpaint_padding`
  // pixels and then to the aspect ratio of width × height is cut out, resized to width × height, inpainted, resized
  // back and pasted into the init image with the blurred mask as alpha. The output has the init image's size.
  bool inpaint_only_masked = false;
  int inpaint_padding = 32;
  // A1111 "Masked content": what the masked area starts from (Original = the init image).
  enum class MaskedContent { Fill, Original, LatentNoise, LatentNothing };
  MaskedContent masked_content = MaskedContent::Original;
  // A1111's hires fix (txt2img only): the first pass at width × height, its latent (or decoded image) upscaled, then
  // an img2img pass at the larger size. See imaging/a1111_geometry.h for the size rules.
  struct HiresFix {
    double scale = 2.0;               // used when resize_x = resize_y = 0
    int resize_x = 0, resize_y = 0;   // target size (0 = from the other one / from scale)
    std::string upscaler = "Latent";  // A1111 name: Latent, Latent (antialiased), ..., None, Lanczos, Nearest
    int steps = 0;                    // second-pass steps actually run (0 = steps); A1111 counting
    double denoising_strength = 0.7;  // in (0, 1]
    std::string prompt, negative_prompt;  // "" = the first pass's
    std::string sampler, schedule;        // "" = the first pass's
  };
  std::optional<HiresFix> hires;
  // SDXL micro-conditioning; 0 = the output size / (0, 0).
  int original_width = 0, original_height = 0, crop_top = 0, crop_left = 0, target_width = 0, target_height = 0;
  std::vector<ControlUnit> control;
  // A1111 hypernetworks, chained over every attention layer's k/v context.
  std::vector<HypernetworkUse> hypernetworks;
};

struct GenerateResult {
  Tensor latents;  // final latents [1, C, h, w]
  Tensor pixels;   // decoded image [1, 3, H, W] in [0, 1]
  Image image;     // 8-bit RGB
};

// How LoRAs reach the UNet: merged into copies of the patched weights (fast per step), or added at run time through
// the layer hooks. Text encoders always get merged copies (cheap: a few small matrices). Either way the loaded base
// weights are never modified, so switching LoRAs needs no reload.
enum class LoraApply { Merge, Runtime };

struct PipelineOptions {
  std::string model;      // single .safetensors / .ckpt file or diffusers folder
  std::string tokenizer;  // optional: folder or vocab.json / merges.txt (see text/tokenizer_files.h)
  std::string vae;        // optional: an external VAE file
  LoadOptions load;
  // Arithmetic of the products, set process-wide by load() (see ops/precision.h). Default: the current setting
  // (Fp32 unless $PIGMENT_PRECISION says fast).
  ops::Precision precision = ops::precision();
  // Memory (see pipelines/memory_mode.h). Default: prepared weights kept within a budget, the rest converted per
  // call. Low-memory (process-wide, set by load()): nothing kept, the checkpoint's pages handed back after every
  // use, direct convolutions, the VAE decoded in tiles.
  bool low_memory = false;
};

class Generator;

// One sampling pass's timesteps, and the timestep its starting latents are noised to.
struct PassSchedule {
  std::vector<double> timesteps;
  double start_t = 0;
};
// A pass's starting latents per mode, and what inpainting keeps for the loop.
struct PassLatents {
  Tensor latents, noise, image_latents, mask_latents, masked_image_latents;
};

class StableDiffusion {
 public:
  static StableDiffusion load(const PipelineOptions& options);
  // From a loaded model and its tokenizer(s) (SDXL needs two: the second pads with "!").
  static StableDiffusion create(const LoadedModel& model, ClipTokenizer tokenizer,
                                std::optional<ClipTokenizer> tokenizer_2 = std::nullopt);

  // One prompt text (no AND, no prompt editing: see PromptSchedule) → embeddings. With r.a1111_syntax, emphasis is
  // applied and long prompts are encoded in 75-token chunks that are concatenated.
  PromptEmbeds encode_prompt(const std::string& prompt, const GenerateRequest& r) const;
  GenerateResult generate(const GenerateRequest& r, const ProgressCallback& progress = {},
                          const PipelineProbe& probe = {}) const;

  // Latents [1, C, h, w] as they stand during sampling → the picture (for live previews and interrupted runs).
  Image decode_latents(const Tensor& latents) const;

  // Replaces the active LoRAs (empty: none); resolves each against this model's components. Returns the LoRA
  // modules that matched no layer ("file: component:key"), for the caller to report.
  std::vector<std::string> set_loras(const std::vector<LoraChoice>& loras, LoraApply mode = LoraApply::Merge);
  bool has_loras() const { return has_loras_; }

  // Replaces the textual-inversion embeddings (empty: none). Their names then work in prompts and negative prompts.
  void set_embeddings(const std::vector<Embedding>& embeddings);
  bool has_embeddings() const { return embeddings_ != nullptr; }

  // The loaded (unpatched) unet / vae / text_encoder / text_encoder_2 component; throws for another name.
  const ModelComponent& base_component(const std::string& name) const;
  // The same pipeline (family, scheduler, tokenizers, memory mode) with some components replaced, e.g. by the
  // trained copies of a training run for its sample images. Adapters set on this one are not carried over.
  StableDiffusion with_components(const std::map<std::string, ModelComponent>& replaced) const;

  Family family() const { return family_; }
  const std::string& prediction_type() const { return prediction_type_; }
  const UNet& unet() const { return *unet_; }
  const Vae& vae() const { return vae_; }
  const ClipTokenizer& tokenizer() const { return *tokenizer_; }
  // SDXL's second tokenizer (pads with "!"); null for one text encoder.
  const ClipTokenizer* tokenizer_2() const { return tokenizer_2_.get(); }
  // Scheduler config of the model (diffusers JSON) with the request's overrides.
  SchedulerConfig scheduler_config(const GenerateRequest& r) const;
  int64_t latent_channels() const;
  int64_t downscale() const { return vae_.config().downscale(); }
  // Throws a one-line error for sizes the model cannot take (not multiples of the latent scale, absurd sizes).
  void check_request(const GenerateRequest& r) const;

 private:
  // One sampling pass (pipelines/sampling_pass.cc): the schedule, the starting latents of the mode, the text
  // conditioning, the denoising loop, then the decoding. With `hires_init` (clean latents of r's size), an img2img
  // pass in A1111's step counting: the schedule has int(steps / min(strength, 0.999)) steps and its last `steps` run,
  // from noise of a fresh generator.
  GenerateResult run_pass(const GenerateRequest& r, const Tensor* hires_init, int pass, int passes, bool decode,
                          const ProgressCallback& progress, const PipelineProbe& probe) const;
  using StageProbe = std::function<void(const std::string&, const Tensor&)>;
  // The schedule: txt2img, img2img / inpainting strength, the hires pass's A1111 counting.
  PassSchedule pass_schedule(const GenerateRequest& r, const Tensor* hires_init, Scheduler& sched) const;
  // The starting latents of each mode, drawing from `gen` in diffusers' order.
  PassLatents initial_latents(const GenerateRequest& r, const Tensor* hires_init, const PassSchedule& plan,
                              Scheduler& sched, Generator& gen, const StageProbe& see) const;
  PassLatents img2img_latents(const GenerateRequest& r, const PassSchedule& plan, Scheduler& sched, Generator& gen,
                              const StageProbe& see) const;
  PassLatents inpaint_latents(const GenerateRequest& r, const PassSchedule& plan, Scheduler& sched, Generator& gen,
                              const StageProbe& see) const;
  // The denoising loop over a pass's state (sampling_pass.cc), and its pieces: one noise prediction with guidance,
  // and the ControlNet residuals it adds.
  struct PassContext;
  Tensor denoise(PassContext& pc, Tensor latents, const ProgressCallback& progress) const;
  Tensor predict_noise(PassContext& pc, const Tensor& latents, size_t step) const;
  void add_control_residuals(const PassContext& pc, size_t step, const Tensor& scaled, const Tensor& context,
                             UNetExtras& extras) const;
  Tensor decode_pixels(const Tensor& latents) const;
  GenerateResult generate_hires(const GenerateRequest& r, const ProgressCallback& progress,
                                const PipelineProbe& probe) const;
  GenerateResult generate_only_masked(const GenerateRequest& r, const ProgressCallback& progress,
                                      const PipelineProbe& probe) const;

  Family family_ = Family::SD1;
  bool low_memory_ = false;
  std::string prediction_type_ = "epsilon";
  nlohmann::json scheduler_json_;
  std::shared_ptr<const ClipTokenizer> tokenizer_, tokenizer_2_;
  ClipTextModel text_encoder_, text_encoder_2_;
  bool has_text_encoder_2_ = false;
  std::shared_ptr<UNet> unet_;
  Vae vae_;
  // The loaded components, kept so that adapters can rebuild models from patched copies of their weights.
  std::shared_ptr<const std::map<std::string, ModelComponent>> base_;
  std::shared_ptr<const LoraRuntime> unet_lora_;
  bool has_loras_ = false;
  std::shared_ptr<const ClipTokenizer> base_tokenizer_, base_tokenizer_2_;
  std::shared_ptr<const EmbeddingSet> embeddings_;
};

// Image [H, W, 3] 8-bit → tensor [1, 3, H, W] in [-1, 1]; and back from [0, 1].
Tensor image_to_tensor(const Image& img);
Image tensor_to_image(const Tensor& pixels01, int index = 0);

}  // namespace pigment
