// pigment train --method lora|textual-inversion|hypernetwork|full|dreambooth|vae|controlnet -m MODEL --data DIR
// --output FILE [...]: fine-tunes a model on a
// folder of captioned images (kohya's layout). Flags follow kohya's sd-scripts names where one exists.
#include <algorithm>
#include <atomic>
#include <csignal>
#include <fstream>
#include <cstdio>

#include "command.h"
#include "core/error.h"
#include "core/number_list.h"
#include "core/threading.h"
#include "models/model_family.h"
#include "training/distributed.h"
#include "training/hypernetwork.h"
#include "training/method.h"
#include "training/recipe_emoji.h"
#include "training/trainer.h"

namespace pigment::cli {
namespace {

// --config FILE.toml: the same keys as the flags, in kohya's spelling too (learning_rate or learning-rate), in any
// [section] (kohya's config files group keys in sections such as [training_arguments]); an unknown key is an error.
class TrainConfig : public CLI::ConfigBase {
 public:
  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    std::vector<CLI::ConfigItem> out;
    for (CLI::ConfigItem item : CLI::ConfigBase::from_config(input)) {
      if (item.name == "++" || item.name == "--") continue;  // section markers: sections are only grouping here
      item.parents.clear();
      std::replace(item.name.begin(), item.name.end(), '_', '-');
      out.push_back(std::move(item));
    }
    return out;
  }
};

struct Args {
  training::TrainOptions t;
  std::vector<std::string> model_configs;
  std::string output_dir, output_name, prediction, save_precision = "f16";
  int threads = 0;
  bool no_buckets = false;
  std::string caption_line_weights;
  std::string recipe_caption_line_weights = "5,5,1";
  bool with_prior = false;
  bool distributed = false;
  bool unet_only = false, te_only = false;  // kohya's --network_train_unet_only / --network_train_text_encoder_only
  std::string recipe;
  training::EmojiRecipeOptions r;
  std::string config_file;
  CLI::App* app = nullptr;
} g;

// --config: each key sets the option of that long name unless the command line gave it; an unknown key, a key of
// the wrong kind or a file that cannot be read is an error (CLI11 reads a subcommand's own config file only for
// the top-level app, so pigment applies it here).
void apply_config_file(CLI::App& app, const std::string& path) {
  std::ifstream in(path);
  PIG_CHECK(in, "--config: cannot open ", path);
  std::vector<CLI::ConfigItem> items;
  try {
    items = TrainConfig().from_config(in);
  } catch (const std::exception& e) {
    fail("--config ", path, ": ", e.what());
  }
  for (const auto& item : items) {
    CLI::Option* op = app.get_option_no_throw("--" + item.name);
    PIG_CHECK(op != nullptr && item.name != "config", "--config ", path, ": unknown key '", item.name, "'");
    if (op->count() > 0) continue;  // the command line wins
    try {
      op->add_result(item.inputs);
      op->run_callback();
    } catch (const std::exception& e) {
      fail("--config ", path, ": key '", item.name, "': ", e.what());
    }
  }
}

// SIGINT / SIGTERM: finish the current step, write a checkpoint, exit 0 (a second signal kills as usual).
std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int sig) {
  g_stop = true;
  std::signal(sig, SIG_DFL);
}

std::string format_eta(double s) {
  char b[32];
  if (s >= 3600)
    std::snprintf(b, sizeof b, "%dh%02dm", int(s / 3600), int(s / 60) % 60);
  else
    std::snprintf(b, sizeof b, "%dm%02ds", int(s / 60), int(s) % 60);
  return b;
}

void print_step(const training::StepReport& r, const std::string& stage = "") {
  const double rate = r.seconds > 0 ? 1.0 / r.seconds : 0;
  std::fprintf(stderr, "%s%sstep %lld/%lld  loss %.5f  (smoothed %.5f)  lr %.3g  %.2f it/s  ETA %s\n", stage.c_str(),
               stage.empty() ? "" : ": ", (long long)r.step, (long long)r.max_steps, r.loss, r.smoothed_loss, r.lr,
               rate, format_eta(r.seconds * double(r.max_steps - r.step)).c_str());
}

// --recipe emoji: every stage of pigment's own model (training/recipe_emoji.h).
int run_recipe() {
  PIG_CHECK(g.recipe == "emoji", "--recipe: unknown recipe '", g.recipe, "' (known: emoji)");
  PIG_CHECK(g.t.model.model.empty() && g.t.data_dir.empty(),
            "--recipe emoji makes its own data and model: leave out -m and --data");
  training::EmojiRecipeOptions r = g.r;
  if (!g.t.output.empty()) r.output = g.t.output;
  r.unet_caption_line_weights =
      parse_number_list(g.recipe_caption_line_weights, "--recipe-caption-line-weights");
  r.seed = g.t.seed;
  r.stop = &g_stop;
  training::EmojiRecipeReport rep = training::run_emoji_recipe(
      r, [](const std::string& m) { std::fprintf(stderr, "recipe %s\n", m.c_str()); },
      [](const std::string& stage, const training::StepReport& s) { print_step(s, stage); });
  if (rep.stopped) {
    std::printf("stopped: run the same command again to continue\n");
    return 0;
  }
  std::printf("recipe emoji: wrote %s\n", rep.output.c_str());
  return 0;
}

int train_one();

// --distributed: one process of `mpirun -np N pigment train ...` (training/distributed.h). Rank 0 reports; an error
// on any rank ends every rank (MPI_Abort), since the others would wait for it forever.
int run_distributed() {
  PIG_CHECK(g.recipe.empty(), "--distributed: not with --recipe (train the stages one by one with --method)");
  training::distributed::init(nullptr, nullptr);
  int rc = 0;
  try {
    rc = train_one();
  } catch (const std::exception& e) {
    if (training::distributed::is_root())
      std::fprintf(stderr, "error: %s\n", e.what());
    else
      std::fprintf(stderr, "error (rank %d): %s\n", training::distributed::rank(), e.what());
    std::fflush(stderr);
    training::distributed::abort_others(1);
    rc = 1;
  }
  training::distributed::finalize();
  return rc;
}

int run_train() {
  if (!g.config_file.empty()) apply_config_file(*g.app, g.config_file);
  if (g.threads > 0) set_num_threads(g.threads);
  if (g.distributed) return run_distributed();
  return train_one();
}

int train_one() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  if (!g.recipe.empty()) return run_recipe();
  PIG_CHECK(!g.t.model.model.empty(), "train: give the base model with -m MODEL (or --recipe emoji)");
  PIG_CHECK(!g.t.data_dir.empty(), "train: give the training images with --data DIR (or --recipe emoji)");
  training::TrainOptions o = g.t;
  for (const auto& mc : g.model_configs) {
    const auto eq = mc.find('=');
    PIG_CHECK(eq != std::string::npos && eq > 0, "--model-config expects COMPONENT=PATH, got '", mc, "'");
    o.model.load.config_paths[mc.substr(0, eq)] = mc.substr(eq + 1);
  }
  if (o.output.empty() && !g.output_dir.empty()) {
    PIG_CHECK(!g.output_name.empty(), "--output-dir needs --output-name");
    o.output = g.output_dir + "/" + g.output_name + ".safetensors";
  }
  o.data.buckets = !g.no_buckets;
  if (!g.caption_line_weights.empty())
    o.data.caption_line_weights = parse_number_list(g.caption_line_weights, "--caption-line-weights");
  if (g.save_precision == "f32" || g.save_precision == "fp32" || g.save_precision == "float")
    o.save_precision = DType::F32;
  else if (g.save_precision == "f16" || g.save_precision == "fp16" || g.save_precision == "float16")
    o.save_precision = DType::F16;
  else if (g.save_precision == "bf16" || g.save_precision == "bfloat16")
    o.save_precision = DType::BF16;
  else
    fail("--save-precision: expected f32, f16 or bf16, got '", g.save_precision, "'");
  o.model.load.prediction = g.prediction;
  o.prediction_type = g.prediction.empty() ? "" : normalize_prediction_type(g.prediction);
  PIG_CHECK(!g.with_prior || !o.dreambooth.class_prompt.empty(), "--with-prior-preservation needs --class-prompt");
  PIG_CHECK(!(g.unet_only && (g.te_only || o.train_text_encoder)),
            "--network-train-unet-only excludes --network-train-text-encoder-only and --train-text-encoder");
  PIG_CHECK(o.method == "lora" || (!g.unet_only && !g.te_only),
            "--network-train-unet-only and --network-train-text-encoder-only are for --method lora");
  PIG_CHECK(g.app->get_option("--text-encoder-lr")->count() == 0 || o.train_text_encoder || g.te_only ||
                o.method == "text-encoder",
            "--text-encoder-lr needs --train-text-encoder (or --method text-encoder)");
  if (g.te_only) {
    o.lora.train_unet = false;
    o.train_text_encoder = true;
  }
  PIG_CHECK(g.app->get_option("--adam-weight-decay")->count() == 0 ||
                training::optimizer_type_name(o.optimizer_type) == "AdamW",
            "--adam-weight-decay is for --optimizer-type AdamW (SGD: --optimizer-args weight_decay=...)");
  o.stop = &g_stop;
  const bool report = training::distributed::is_root();  // --distributed: rank 0 speaks for all
  training::TrainSummary s = training::train(o, [&](const training::StepReport& r) {
    if (report) print_step(r);
  });
  if (!report) return 0;
  if (s.stopped) {
    std::printf("stopped at step %lld: checkpoint in %s (continue with --resume)\n", (long long)s.last_step,
                s.run_dir.c_str());
    return 0;
  }
  std::printf("trained %lld steps: loss %.5f -> %.5f (smoothed); wrote %s\n", (long long)s.steps, s.first_loss,
              s.last_smoothed_loss, s.output.c_str());
  return 0;
}

RegisterCommand reg(
    "train",
    "fine-tune a model on a folder of captioned images (LoRA, textual inversion, full UNet fine-tuning, DreamBooth "
    "with prior preservation, ControlNet, the VAE, or training from a `pigment init` checkpoint)",
    [](CLI::App& c) {
      auto& t = g.t;
      g.app = &c;
      c.add_option("--config", g.config_file,
                   "a TOML file holding any of these options by their long names (kohya's key names with _ work "
                   "too, in any [section]); flags on the command line win");
      std::string methods;
      for (const auto& n : training::method_names()) methods += (methods.empty() ? "" : ", ") + n;
      c.add_option("--method", t.method,
                   "training method: " + methods +
                       " (full: every UNet weight trains, in float32 with AdamW: about 16 bytes per UNet parameter, 14 GB for "
                       "SD1.5; the result is a whole single-file checkpoint; vae: the autoencoder alone, reconstruction "
                       "+ KL, saved as a whole checkpoint with the latents' scaling factor; dreambooth: full fine-tuning on a few "
                       "images of one subject with --instance-prompt, and with --class-prompt prior preservation: class "
                       "images drawn once by the base model, loss = instance + --prior-loss-weight * prior; controlnet: "
                       "a ControlNet made from the UNet's encoder (diffusers' from_unet, zero convolutions) trains on "
                       "images, captions and control maps, everything else frozen; text-encoder: the text encoder alone, CLIP's "
                       "contrastive loss against a linear map of the VAE latents, the caption pooled over every position)")
          ->capture_default_str();
      c.add_option("-m,--model,--pretrained-model-name-or-path", t.model.model,
                   "base model: a .safetensors/.ckpt file or a diffusers folder");
      c.add_option("--tokenizer", t.model.tokenizer,
                   "CLIP tokenizer: folder, vocab.json/merges.txt or bpe_simple_vocab_16e6.txt.gz (default: a "
                   "diffusers folder's tokenizer/, else the built-in table)");
      c.add_option("--model-config", g.model_configs,
                   "COMPONENT=PATH: a config.json (or its folder) for unet, vae or text_encoder of a single file");
      c.add_option("--data,--train-data-dir", t.data_dir, "folder of images with same-named caption files");
      c.add_option("--recipe", g.recipe,
                   "emoji: train pigment's own model from scratch (data set, tokenizer, VAE, UNet + text encoder) "
                   "into --output (default RECIPE_DIR/pigment-emoji.safetensors); run again to resume");
      c.add_option("--recipe-dir", g.r.work_dir, "--recipe: its work folder")->capture_default_str();
      c.add_option("--recipe-limit", g.r.dataset_limit, "--recipe: only the first N emoji (tests)");
      c.add_option("--recipe-merges", g.r.merges, "--recipe: BPE merges of the tokenizer")->capture_default_str();
      c.add_option("--recipe-vae-steps", g.r.vae_steps, "--recipe: VAE steps")->capture_default_str();
      c.add_option("--recipe-vae-batch", g.r.vae_batch, "--recipe: VAE batch")->capture_default_str();
      c.add_option("--recipe-text-steps", g.r.text_steps,
                   "--recipe: text encoder steps (contrastive, before the UNet; 0: it stays random)")
          ->capture_default_str();
      c.add_option("--recipe-text-batch", g.r.text_batch, "--recipe: text encoder batch")->capture_default_str();
      c.add_option("--recipe-text-lr", g.r.text_lr, "--recipe: text encoder learning rate")->capture_default_str();
      c.add_option("--recipe-unet-steps", g.r.unet_steps, "--recipe: UNet (+ text encoder) steps")->capture_default_str();
      c.add_option("--recipe-unet-batch", g.r.unet_batch, "--recipe: UNet batch")->capture_default_str();
      c.add_option("--recipe-te-lr", g.r.te_lr,
                   "--recipe: the text encoder's learning rate in the UNet stage (0: it stays as the text stage left it, or "
                   "random with --recipe-text-steps 0)")
          ->capture_default_str();
      c.add_option("--recipe-caption-line-weights", g.recipe_caption_line_weights,
                   "--recipe: the UNet stage's --caption-line-weights (the caption files start with the English and "
                   "the Chinese name)")
          ->capture_default_str();
      c.add_option("--recipe-sample-every", g.r.sample_every, "--recipe: sample pictures every N UNet steps (0: none)")
          ->capture_default_str();
      c.add_option("--recipe-save-every", g.r.save_every, "--recipe: checkpoint interval of both training stages")
          ->capture_default_str();
      c.add_option("--caption-extension", t.data.caption_extension, "caption file extension")->capture_default_str();
      c.add_flag("--caption-per-line", t.data.caption_per_line,
                 "each line of a caption file is one caption, one picked at random per step (default: the first line)");
      c.add_option("--caption-line-weights", g.caption_line_weights,
                   "with --caption-per-line: relative chances of line 1, 2, ..., the last for every later line (e.g. "
                   "\"4,4,1\": the first two lines each 4× as likely as any other; default: all alike)");
      c.add_option("--resolution", t.data.resolution, "training size in pixels (bucket area = resolution²)")
          ->capture_default_str();
      c.add_flag("--no-buckets", g.no_buckets, "resize and crop every image to resolution² (no aspect buckets)");
      c.add_flag("--flip-aug", t.random_flip, "random horizontal flips");
      c.add_flag("--random-crop", t.random_crop, "random instead of centre crops to the bucket (no disk latent cache)");
      c.add_flag("--gradient-checkpointing", t.gradient_checkpointing,
                 "recompute each UNet block in the backward instead of keeping its activations (less memory)");
      c.add_option("--mixed-precision", t.mixed_precision,
                   "no: float32 throughout; bf16: the products of the forward and backward (linear, convolution) "
                   "take bf16 inputs with float32 accumulation where the CPU has a fast bf16 path (AMX or AVX-512 "
                   "BF16; elsewhere it runs as fp32, with a notice); weights, gradients, optimizer state, norms, "
                   "softmax and the loss stay float32. fp16 is refused: CPUs have no fast fp16 training path here")
          ->capture_default_str();
      c.add_option("--output", t.output,
                   "the result file: a LoRA (.safetensors), an embedding (.safetensors, or A1111's .pt when the name "
                   "ends in .pt; SDXL: .safetensors with clip_l and clip_g), a hypernetwork (A1111's .pt, with its AdamW state in FILE.optim), with --method "
                   "full|dreambooth|vae a checkpoint in the model family's original single-file layout, with --method "
                   "controlnet a ControlNet");
      c.add_option("--save-precision", g.save_precision,
                   "--method full|vae|controlnet: dtype of the saved checkpoint: f32, f16 or bf16 (training itself is float32)")
          ->capture_default_str();
      c.add_option("--output-dir", g.output_dir, "folder of the result (with --output-name)");
      c.add_option("--output-name", g.output_name, "name of the result, without extension");
      c.add_option("--run-dir", t.run_dir, "checkpoints and log.csv (default: OUTPUT.run)");
      c.add_flag("--resume", t.resume, "continue from the checkpoint in the run folder");
      c.add_option("--train-batch-size", t.batch_size, "images per step (per process with --distributed)")->capture_default_str();
      c.add_option("--max-train-steps", t.max_steps, "optimizer steps")->capture_default_str();
      c.add_option("--gradient-accumulation-steps", t.gradient_accumulation_steps,
                   "micro-batches per optimizer step (an effective batch of N x --train-batch-size)")
          ->capture_default_str();
      c.add_flag("--use-ema", t.use_ema,
                 "keep an exponential moving average of the trained weights (in checkpoints); the output holds it");
      c.add_option("--ema-decay", t.ema_decay, "--use-ema: the decay's upper bound (warms up as diffusers' EMAModel)")
          ->capture_default_str();
      c.add_option("--sample-every-n-steps", t.sample_every,
                   "every N steps, one image per --sample-prompt into RUN_DIR/samples (20 steps Euler a, the "
                   "training seed and resolution)")
          ->capture_default_str();
      c.add_option("--sample-prompt,--sample-prompts", t.sample_prompts, "a prompt for the sample images (repeatable)");
      c.add_option("--save-every-n-steps", t.save_every, "checkpoint every N steps (0: at the end)")
          ->capture_default_str();
      c.add_option("--learning-rate", t.learning_rate, "the optimizer's learning rate")->capture_default_str();
      c.add_option("--optimizer-type", t.optimizer_type,
                   "AdamW, SGD or SGDNesterov (kohya's names, any case; SGDNesterov: momentum 0.9 unless given). "
                   "The state is in checkpoints; --resume needs the same type")
          ->capture_default_str();
      c.add_option("--optimizer-args", t.optimizer_args,
                   "key=value settings of the optimizer (kohya's --optimizer_args; several in one string or "
                   "separate): AdamW: betas=0.9,0.999 eps weight_decay; SGD, SGDNesterov: momentum dampening "
                   "weight_decay, SGD also nesterov=True");
      c.add_option("--lr-scheduler", t.lr_scheduler, "constant, constant_with_warmup, cosine, linear, ...")
          ->capture_default_str();
      c.add_option("--lr-warmup-steps", t.lr_warmup_steps, "warm-up steps")->capture_default_str();
      c.add_option("--max-grad-norm", t.max_grad_norm, "clip gradients to this global L2 norm (0: off)")
          ->capture_default_str();
      c.add_option("--adam-weight-decay", t.adamw.weight_decay,
                   "AdamW weight decay (--optimizer-args weight_decay=... wins)")
          ->capture_default_str();
      c.add_option("--seed", t.seed, "seed of every random choice")->capture_default_str();
      c.add_option("--caption-dropout-rate", t.caption_dropout, "probability of training on the empty caption")
          ->capture_default_str();
      c.add_flag("--cache-latents-to-disk,!--no-cache-latents-to-disk", t.cache_latents_to_disk,
                 "keep the training images' latents in DATA/.pigment-latents/vae-HASH/ for later runs (default on; "
                 "not with random crops)");
      c.add_option("--min-timestep", t.min_timestep, "train on timesteps >= this (kohya; default 0)");
      c.add_option("--max-timestep", t.max_timestep,
                   "train on timesteps < this (kohya; default: the schedule's length, 1000)");
      c.add_option("--noise-offset", t.noise_offset,
                   "add noise_offset × N(0,1) per sample and channel to the noise (kohya/diffusers; 0: off)")
          ->capture_default_str();
      c.add_option("--input-perturbation,--ip-noise-gamma", t.input_perturbation,
                   "noise the latents with noise + p × N(0,1), the target keeps the noise (diffusers; 0: off)")
          ->capture_default_str();
      c.add_option("--min-snr-gamma", t.min_snr_gamma, "min-SNR-γ loss weighting (0: off)")->capture_default_str();
      c.add_option("--prediction-type", g.prediction, "override the model's: epsilon, v_prediction or sample (x0)");
      c.add_option("--network-dim", t.lora.rank, "LoRA rank")->capture_default_str();
      c.add_option("--network-alpha", t.lora.alpha, "LoRA alpha (scale alpha/rank)")->capture_default_str();
      c.add_option("--network-dropout", t.lora.dropout,
                   "LoRA: probability of dropping each element of down(x) while training (kohya's network_dropout)")
          ->capture_default_str();
      c.add_option("--conv-dim,--conv-rank", t.lora.conv_rank,
                   "LoCon: LoRA rank of the resnets' and resamplers' 3x3 convolutions (0: none)")
          ->capture_default_str();
      c.add_option("--conv-alpha", t.lora.conv_alpha, "LoCon alpha")->capture_default_str();
      c.add_flag("--train-text-encoder", t.train_text_encoder,
                 "the text encoder(s) train too (SDXL: both): --method lora: a LoRA on their attention and MLP "
                 "layers (q/k/v/out_proj, fc1, fc2; saved as lora_te_* or, for SDXL, lora_te1_*/lora_te2_*); "
                 "--method full|dreambooth: every weight, float32 (SD1, SD2's OpenCLIP tower, SDXL)");
      c.add_flag("--network-train-unet-only", g.unet_only,
                 "--method lora: a LoRA on the UNet alone (pigment's default; kohya's default trains both)");
      c.add_flag("--network-train-text-encoder-only", g.te_only,
                 "--method lora: a LoRA on the text encoder(s) alone, none on the UNet");
      c.add_option("--text-encoder-lr", t.text_encoder_lr,
                   "--train-text-encoder: the learning rate of the text encoder(s), or of their LoRA networks "
                   "(default: --learning-rate), under the same schedule");
      c.add_option("--instance-prompt", t.dreambooth.instance_prompt,
                   "--method dreambooth: the prompt of every training image, with the subject's identifier (\"a photo "
                   "of sks dog\"; default: the images' captions)");
      c.add_option("--class-prompt", t.dreambooth.class_prompt,
                   "--method dreambooth: prior preservation with class images of this prompt (\"a photo of a dog\"), "
                   "drawn once by the base model and reused");
      c.add_flag("--with-prior-preservation", g.with_prior, "--method dreambooth: (needs --class-prompt, which implies it)");
      c.add_option("--class-data-dir", t.dreambooth.class_data_dir,
                   "--method dreambooth: folder of the class images (default: RUN_DIR/class_images); images already "
                   "there are used, the missing ones drawn");
      c.add_option("--num-class-images", t.dreambooth.num_class_images,
                   "--method dreambooth: class images to have in the folder")
          ->capture_default_str();
      c.add_option("--prior-loss-weight", t.dreambooth.prior_loss_weight,
                   "--method dreambooth: loss = instance + W * prior")
          ->capture_default_str();
      c.add_option("--class-image-steps", t.dreambooth.class_image_steps,
                   "--method dreambooth: sampling steps (Euler a) of each class image")
          ->capture_default_str();
      c.add_option("--class-image-cfg", t.dreambooth.class_image_cfg, "--method dreambooth: CFG scale of class images")
          ->capture_default_str();
      c.add_flag("--save-as-lora", t.dreambooth.save_as_lora,
                 "--method dreambooth: also write the difference to the base as a LoRA, OUTPUT-lora.safetensors "
                 "(rank --network-dim, 3x3 rank --conv-dim; pigment lora extract)");
      c.add_option("--vae-loss", t.vae_loss, "--method vae: reconstruction loss, l1 or mse")->capture_default_str();
      c.add_option("--kl-weight", t.kl_weight, "--method vae: weight of the KL term")->capture_default_str();
      c.add_option("--contrastive-scale", t.contrastive_scale,
                   "--method text-encoder: logit scale of the contrastive loss (1 / temperature)")
          ->capture_default_str();
      c.add_option("--conditioning-data-dir", t.data.conditioning_dir,
                   "--method controlnet: the folder of control maps (default DATA/conditioning, left out of the "
                   "image scan): the map of DATA/sub/a.png is CONDITIONING/sub/a.png (same relative path and name, "
                   "any of png, jpg, jpeg, webp); an image without its map is an error");
      c.add_option("--control-preprocess", t.data.control_preprocess,
                   "--method controlnet: none (maps from the conditioning folder) or canny (the Canny edges of each "
                   "training image after its crop and flip, made on the fly; no folder needed)")
          ->capture_default_str();
      c.add_option("--canny-low", t.data.canny_low, "--control-preprocess canny: low threshold")->capture_default_str();
      c.add_option("--canny-high", t.data.canny_high, "--control-preprocess canny: high threshold")
          ->capture_default_str();
      c.add_option("--controlnet-conditioning-scale", t.controlnet_conditioning_scale,
                   "--method controlnet: scale of the ControlNet's residuals in training and sample images")
          ->capture_default_str();
      c.add_option("--controlnet-model-name-or-path", t.controlnet_init,
                   "--method controlnet: start from this ControlNet (a file in the original or diffusers naming, or "
                   "a diffusers folder) instead of from the base UNet");
      c.add_option("--sample-control-image,--validation-image", t.sample_control_images,
                   "--method controlnet: control map of the sample images (one, or one per --sample-prompt; with "
                   "--control-preprocess canny a picture whose edges are taken); default: the first training image's");
      c.add_option("--save-format", t.controlnet_save_format,
                   "--method controlnet: original (one .safetensors with control_model.* keys, as lllyasviel's "
                   "ControlNets) or diffusers (--output is then a folder: config.json + "
                   "diffusion_pytorch_model.safetensors); --save-precision gives the dtype")
          ->capture_default_str();
      c.add_option("--token-string", t.token_string, "textual inversion: the new word")->capture_default_str();
      c.add_option("--num-vectors-per-token", t.num_vectors, "textual inversion: vectors of the word")
          ->capture_default_str();
      c.add_option("--init-word", t.init_word, "textual inversion: the word whose embedding the vectors start from")
          ->capture_default_str();
      auto& h = t.hypernetwork;
      c.add_option("--layer-structure", h.layer_structure,
                   "--method hypernetwork: A1111's layer structure, width multipliers starting and ending with 1")
          ->capture_default_str();
      c.add_option("--activation-func", h.activation,
                   "--method hypernetwork: linear, relu, leakyrelu, elu, swish (torch's Hardswish, as A1111), "
                   "hardswish, tanh, sigmoid, softsign, mish, silu, gelu")
          ->capture_default_str();
      c.add_option("--weight-init", h.weight_init,
                   "--method hypernetwork: Normal, XavierUniform, XavierNormal, KaimingUniform or KaimingNormal")
          ->capture_default_str();
      c.add_flag("--add-layer-norm", h.layer_norm, "--method hypernetwork: a LayerNorm after each linear layer");
      c.add_flag("--activate-output", h.activate_output,
                 "--method hypernetwork: the activation after the output layer too");
      c.add_flag("--use-dropout", h.use_dropout,
                 "--method hypernetwork: dropout 0.3 after the hidden layers (A1111's default structure)");
      c.add_flag("--last-layer-dropout", h.last_layer_dropout,
                 "--method hypernetwork, --use-dropout: dropout after the last hidden layer too");
      c.add_option("--dropout-structure", h.dropout_structure,
                   "--method hypernetwork: a probability per layer-structure entry, first and last 0 (e.g. "
                   "\"0, 0.1, 0\"); implies --use-dropout");
      c.add_option("--hypernetwork-sizes,--enable-sizes", h.sizes,
                   "--method hypernetwork: the context widths that get a module pair, e.g. \"768, 320, 640, 1280\" "
                   "(default: every width the UNet's attention layers see; on SD1 that is A1111's default)");
      c.add_option("--threads", g.threads, "worker threads (default: all cores)");
      c.add_flag("--distributed", g.distributed,
                 "data-parallel over MPI: run as `mpirun -np N pigment train ... --distributed`; each process takes "
                 "--train-batch-size images of every global batch of N x that size, gradients are averaged, rank 0 "
                 "writes the log, checkpoints, samples and the output (see README: several hosts)");
    },
    run_train);

}  // namespace
}  // namespace pigment::cli
