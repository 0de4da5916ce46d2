// The training loop that every method shares (pigment train):
//   batch of images → VAE latents (frozen) ; captions (caption dropout) → text conditioning (frozen)
//   t ~ U{0..T-1}, ε ~ N(0, 1) → noisy latents → UNet (recorded on the tape, with the method's hooks)
//   → the diffusion objective's loss → backward → clip-by-norm → the optimizer (AdamW, SGD) at the scheduled learning rate.
// A method (one file each: lora.cc, ...) says what trains and how the result is saved.
//
// Every random choice of step k comes from generators seeded by (seed, k) — one per sample, seeded by its position in
// the batch as well, for the sample's latent, caption dropout, timestep and noise — and the data order from (seed,
// epoch), so a run resumed from a checkpoint continues with exactly the losses of an uninterrupted one, and the
// processes of a --distributed run (training/distributed.h) together draw what one process draws. Checkpoints hold
// the trained tensors, the optimizer state and the loader position, and are replaced atomically.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/unet_layers.h"
#include "pipelines/stable_diffusion.h"
#include "training/dataset.h"
#include "training/hypernetwork.h"
#include "training/lora.h"
#include "training/method.h"
#include "training/optimizer.h"

namespace pigment::training {

struct TrainOptions {
  std::string method = "lora";
  PipelineOptions model;
  std::string data_dir;
  DatasetOptions data;
  std::string output;   // the result file
  std::string run_dir;  // checkpoints and the CSV log ("" = beside the output: <output>.run)
  bool resume = false;  // continue from run_dir's checkpoint
  // Set from elsewhere (a signal handler) to stop after the current step with a checkpoint.
  const std::atomic<bool>* stop = nullptr;

  int batch_size = 1;
  int gradient_accumulation_steps = 1;  // micro-batches per optimizer step (their gradients add, the loss / N)
  int64_t max_steps = 100;              // optimizer steps (the LR schedule, checkpoints and the log count these)
  int64_t save_every = 0;  // checkpoint every N steps (0: only at the end)
  double learning_rate = 1e-4;
  std::string lr_scheduler = "constant";
  int64_t lr_warmup_steps = 0;
  double max_grad_norm = 1.0;  // 0: no clipping
  AdamWOptions adamw;          // lr is taken from learning_rate
  // kohya's --optimizer_type and --optimizer_args (training/optimizer.h: make_optimizer); AdamW takes its defaults
  // from `adamw`. The type is kept in checkpoints: a resume with another type is an error.
  std::string optimizer_type = "AdamW";
  std::vector<std::string> optimizer_args;
  uint64_t seed = 0;
  float caption_dropout = 0;   // probability of the empty caption
  float min_snr_gamma = 0;     // 0: plain MSE
  // kohya's --min_timestep / --max_timestep: timesteps drawn uniformly from [min, max) (max 0: the schedule's
  // length, 1000 for SD). A narrow high range trains what the model draws from the text alone.
  int min_timestep = 0;
  int max_timestep = 0;
  // Noise offset (kohya / diffusers): noise += noise_offset · N(0,1) per sample and channel, so the model learns to
  // change an image's mean brightness. Input perturbation (diffusers): the noisy latent gets noise + p · N(0,1) while
  // the target keeps the plain noise. 0: off (and no extra random draws).
  // Latents of the training images are also kept on disk beside the data (DATA/.pigment-latents/vae-HASH/), so a
  // later run with the same VAE and images skips the encoding. Not with random crops (each crop is new pixels).
  bool cache_latents_to_disk = true;
  float noise_offset = 0;
  float input_perturbation = 0;
  std::string prediction_type; // "" = the model's
  bool random_flip = false;
  bool random_crop = false;  // off: centre crop to the bucket
  bool gradient_checkpointing = false;  // recompute each UNet block in the backward instead of keeping it
  // kohya's --mixed_precision: "no" (float32 products) or "bf16": every product of the forward and the backward
  // (linear, convolution) takes bf16 inputs with float32 accumulation where the CPU has a fast bf16 path
  // (ops::Precision::Fast); master weights, gradients, optimizer state, norms, softmax and losses stay float32. The
  // frozen VAE's latents stay float32 (they are cached on disk for every run). Without a fast path: the float32
  // bits, with a notice. "fp16" is refused (no fast fp16 training path on CPUs here).
  std::string mixed_precision = "no";
  // An exponential moving average of the trained tensors (diffusers' EMAModel), updated after each optimizer step,
  // kept in checkpoints; the output file holds the averaged weights.
  bool use_ema = false;
  double ema_decay = 0.9999;
  // Sample images every N optimizer steps (0: none), one per prompt, into RUN_DIR/samples/step-NNNNNN-I.png.
  int64_t sample_every = 0;
  std::vector<std::string> sample_prompts;
  LoraOptions lora;
  HypernetworkOptions hypernetwork;
  // textual inversion: the new word, its vector count and the word its vectors start from
  std::string token_string = "<concept>";
  int num_vectors = 1;
  std::string init_word = "*";
  // full fine-tuning and the VAE method: the dtype of the saved checkpoint (F32, F16 or BF16)
  DType save_precision = DType::F16;
  // The text encoder(s) train too, at text_encoder_lr (< 0: learning_rate) under the same schedule: LoRA networks on
  // them (lora.train_unet = false: on them alone), or every weight (full fine-tuning, DreamBooth)
  bool train_text_encoder = false;
  double text_encoder_lr = -1;
  // DreamBooth (--method dreambooth; diffusers' train_dreambooth.py names)
  struct DreamBooth {
    std::string instance_prompt;  // every training image's prompt ("" : their captions)
    std::string class_prompt;     // prior preservation on when given
    std::string class_data_dir;   // the class images, made once and reused ("" : RUN_DIR/class_images)
    int num_class_images = 100;   // made with the base model until the folder holds this many
    float prior_loss_weight = 1;
    int class_image_steps = 20;   // sampling steps (Euler a) of each class image
    float class_image_cfg = 7.5f;
    bool save_as_lora = false;    // also write the difference as a LoRA (rank --network-dim, --conv-dim)
  } dreambooth;
  // the VAE method: reconstruction loss (l1 | mse) and the weight of the KL term
  std::string vae_loss = "l1";
  double kl_weight = 1e-6;
  // the text-encoder method: the logit scale of its contrastive loss (CLIP starts at 1 / 0.07)
  double contrastive_scale = 1 / 0.07;
  // ControlNet (--method controlnet). The control maps: data.conditioning_dir ("" = DATA/conditioning) or
  // data.control_preprocess = "canny" (edges of each training image). The ControlNet's residuals are scaled by
  // controlnet_conditioning_scale in training and in sample images. Sample images use sample_control_images (one
  // for every prompt, or one per prompt; prepared as the training maps: Canny applied with --control-preprocess
  // canny), by default the control map of the first training image.
  float controlnet_conditioning_scale = 1.0f;
  std::vector<std::string> sample_control_images;
  std::string controlnet_save_format = "original";  // original: one .safetensors (control_model.*); diffusers: a folder
  std::string controlnet_init;  // "" = from the base UNet (diffusers' from_unet); else an existing ControlNet
};

struct StepReport {
  int64_t step = 0, max_steps = 0;  // step counts from 1
  float loss = 0, smoothed_loss = 0;
  double lr = 0, seconds = 0;       // seconds: this step's wall time
};

struct TrainSummary {
  int64_t steps = 0;          // steps run in this process
  float first_loss = 0, last_smoothed_loss = 0;
  std::string output;    // written when the run completed
  bool stopped = false;  // stopped early by TrainOptions::stop: a checkpoint holds the state, no output was written
  int64_t last_step = 0;
  std::string run_dir;
};

// The run folder: o.run_dir, or OUTPUT.run.
std::string run_dir_of(const TrainOptions& o);

// Runs the training; `on_step` sees every step. Throws pigment::Error on bad options or data, before step 1
// where it can (an unwritable output folder, no images, an unknown method or schedule).
// What --mixed-precision bf16 lets the bf16 copies of the frozen weights hold (ops::fast::set_bf16_weight_budget;
// $PIGMENT_BF16_CACHE_MB overrides): a training step uses the forward and the backward-data layouts of every frozen
// weight, twice the model in bf16; beyond this they are converted per call. Sized so that a LoRA at 512x512 on SD1.5
// with gradient checkpointing peaks under 4 GB (docs/performance.md).
constexpr size_t kMixedPrecisionBf16Budget = size_t(2048) << 20;

TrainSummary train(const TrainOptions& options, const std::function<void(const StepReport&)>& on_step = {});

}  // namespace pigment::training
