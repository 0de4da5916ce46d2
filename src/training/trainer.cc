#include "training/trainer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_map>

#include "core/hash.h"
#include "io/safetensors.h"
#include "ops/autograd.h"
#include "ops/fast_products.h"
#include "ops/ops.h"
#include "ops/precision.h"
#include "pipelines/memory_mode.h"
#include "pipelines/latent_sampling.h"
#include "sampling/rng.h"
#include "training/diffusion_objective.h"
#include "training/distributed.h"
#include "training/ema.h"
#include "training/lr_schedule.h"
#include "training/run_outputs.h"

namespace pigment::training {

namespace fs = std::filesystem;

namespace {

// The generator of step k: every random choice of a step (timesteps, noise, latent sample, caption dropout) comes
// from it, so a resumed run draws what an uninterrupted one would.
uint64_t step_seed(uint64_t seed, int64_t step) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * uint64_t(step + 1);  // splitmix64
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void fsync_path(const fs::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// Checks before step 1 that the folder of `path` exists (or can be made) and takes a file.
void check_writable(const fs::path& path, const std::string& what) {
  fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(dir, ec);
  PIG_CHECK(fs::is_directory(dir), what, ": cannot create the folder ", dir.string());
  fs::path probe = dir / (".pigment-write-test-" + std::to_string(::getpid()));
  {
    std::ofstream f(probe);
    f << "x";
    PIG_CHECK(f.good(), what, ": cannot write into ", dir.string());
  }
  fs::remove(probe, ec);
}

NamedTensors named(const std::vector<Param>& params) {
  NamedTensors t;
  for (const auto& p : params) t.emplace_back(p.name, p.value);
  return t;
}

// A checkpoint is a folder: trained.safetensors, optimizer.safetensors, state.json. It is written as
// checkpoint.tmp, synced, and renamed over the previous one, so a kill at any moment leaves a whole checkpoint.
struct RunState {
  std::string optimizer = "AdamW";  // the --optimizer-type whose state optimizer.safetensors holds
  std::string mixed_precision = "no";  // --mixed-precision of the run (a resume must use the same: bit-exact losses)
  int64_t step = 0;
  float smoothed_loss = 0;
  LoaderState loader;
  std::optional<LoaderState> prior_loader;  // the class images' loader (prior preservation)
};

NamedTensors named(const StateDict& state) {
  NamedTensors t;
  for (const auto& [k, v] : state) t.emplace_back(k, v);
  return t;
}

// Views of the mapped file (they keep it mapped): load_state copies what it keeps, so a resume holds the state once.
StateDict read_state(const fs::path& file) {
  SafeTensors f = SafeTensors::open(file.string());
  StateDict sd;
  for (const auto& e : f.entries()) sd[e.name] = f.get(e.name);
  return sd;
}

// ema: null when the run keeps no average (ema.safetensors is then not written).
void write_checkpoint(const fs::path& run_dir, const std::vector<Param>& params, const Optimizer& opt,
                      const Ema* ema, const RunState& s) {
  const fs::path tmp = run_dir / "checkpoint.tmp", dst = run_dir / "checkpoint", old = run_dir / "checkpoint.old";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp);
  // Every tensor is written from its own memory (state views, no copies): saving needs no memory beyond training's.
  write_safetensors((tmp / "trained.safetensors").string(), named(params));
  write_safetensors((tmp / "optimizer.safetensors").string(), named(opt.state_view()));
  if (ema) {
    write_safetensors((tmp / "ema.safetensors").string(), named(ema->state_view()));
    fsync_path(tmp / "ema.safetensors");
  }
  nlohmann::json j = {{"optimizer", s.optimizer}, {"mixed_precision", s.mixed_precision}, {"step", s.step},
                      {"smoothed_loss", s.smoothed_loss},
                      {"loader", nlohmann::json::parse(s.loader.to_json())}};
  if (s.prior_loader) j["prior_loader"] = nlohmann::json::parse(s.prior_loader->to_json());
  {
    std::ofstream f(tmp / "state.json");
    f << j.dump(1);
    PIG_CHECK(f.good(), "cannot write ", (tmp / "state.json").string());
  }
  for (const char* f : {"trained.safetensors", "optimizer.safetensors", "state.json"}) fsync_path(tmp / f);
  fsync_path(tmp);
  fs::remove_all(old, ec);
  if (fs::exists(dst)) fs::rename(dst, old);
  fs::rename(tmp, dst);
  fsync_path(run_dir);
  fs::remove_all(old, ec);
}

// Loads the last checkpoint into params (in place), the optimizer (of type `optimizer`: the checkpoint's must be the
// same; one without a type is AdamW's, the only optimizer before) and the run state. The checkpoint's
// --mixed-precision must be this run's (one without it was written in float32). A checkpoint interrupted while
// being replaced is found as checkpoint.old.
RunState read_checkpoint(const fs::path& run_dir, std::vector<Param>& params, const std::string& optimizer,
                         const std::string& mixed_precision, Optimizer& opt, Ema* ema) {
  fs::path dir = run_dir / "checkpoint";
  if (!fs::exists(dir / "state.json") && fs::exists(run_dir / "checkpoint.old" / "state.json"))
    dir = run_dir / "checkpoint.old";
  PIG_CHECK(fs::exists(dir / "state.json"), "--resume: no checkpoint in ", run_dir.string());
  std::ifstream f(dir / "state.json");
  nlohmann::json j = nlohmann::json::parse(f);
  RunState s;
  s.optimizer = j.value("optimizer", std::string("AdamW"));
  PIG_CHECK(s.optimizer == optimizer, "--resume: the checkpoint in ", dir.string(), " was written with --optimizer-type ",
            s.optimizer, ", this run uses ", optimizer);
  s.mixed_precision = j.value("mixed_precision", std::string("no"));
  PIG_CHECK(s.mixed_precision == mixed_precision, "--resume: the checkpoint in ", dir.string(),
            " was written with --mixed-precision ", s.mixed_precision, ", this run uses ", mixed_precision,
            " (resume with the same, so that the losses continue exactly)");
  SafeTensors trained = SafeTensors::open((dir / "trained.safetensors").string());
  for (auto& p : params) {
    PIG_CHECK(trained.contains(p.name), "--resume: the checkpoint in ", dir.string(), " has no tensor ", p.name,
              " (another method or network size?)");
    Tensor t = trained.get(p.name).as_f32();
    PIG_CHECK(t.shape() == p.value.shape(), "--resume: ", p.name, " has shape ", shape_str(t.shape()), " in the checkpoint, ",
              shape_str(p.value.shape()), " in this run");
    std::memcpy(p.value.raw(), t.raw(), t.nbytes());
  }
  opt.load_state(read_state(dir / "optimizer.safetensors"));
  if (ema) {
    PIG_CHECK(fs::exists(dir / "ema.safetensors"), "--resume --use-ema: the checkpoint in ", dir.string(),
              " was written without --use-ema");
    ema->load_state(read_state(dir / "ema.safetensors"));
  }
  s.step = j.at("step").get<int64_t>();
  s.smoothed_loss = j.at("smoothed_loss").get<float>();
  s.loader = LoaderState::from_json(j.at("loader").dump());
  if (j.contains("prior_loader")) s.prior_loader = LoaderState::from_json(j.at("prior_loader").dump());
  return s;
}

// Text conditioning of a batch's captions with the frozen text encoder(s): [B, 77, D] (+ pooled for SDXL).
PromptEmbeds encode_captions(const StableDiffusion& model, const std::vector<std::string>& captions) {
  GenerateRequest r;
  r.a1111_syntax = false;  // captions are plain text, truncated to 77 tokens as diffusers' scripts do
  std::vector<Tensor> ctx, pooled;
  for (const auto& c : captions) {
    PromptEmbeds e = model.encode_prompt(c, r);
    ctx.push_back(e.context);
    if (e.pooled.defined()) pooled.push_back(e.pooled);
  }
  PromptEmbeds out;
  out.context = ops::concat(ctx, 0);
  if (!pooled.empty()) out.pooled = ops::concat(pooled, 0);
  return out;
}

// The VAE posterior of each training image, encoded alone (so its bits do not depend on the batch it came in, and a
// resumed run, whose cache starts empty, sees the same values) and kept for the run: a later use of the image only
// draws new noise. Keyed by the path and a hash of the pixels after resizing, cropping and flipping (a flipped copy
// is another entry; a changed image file gives other pixels). Up to `max_bytes` of moments in memory; beyond that
// images are encoded (alone) every time.
//
// With a disk folder (`--cache-latents-to-disk`, on by default) each posterior is also written there as
// <hash of the path>-<hash of the pixels>.safetensors (float32 "moments", exactly the values an encode gives), in
// DATA/.pigment-latents/vae-<hash of the VAE's weights>/, and read back by later runs instead of encoding. A folder
// that cannot be written is reported once and the run goes on without it.
class LatentCache {
 public:
  // data_dir empty: memory only. The disk folder is made at the first encode (a method that never asks for latents,
  // such as the VAE's own, leaves no folder behind).
  LatentCache(size_t max_bytes, fs::path data_dir, const ModelComponent* vae_weights)
      : max_bytes_(max_bytes), data_dir_(std::move(data_dir)), vae_weights_(vae_weights) {}

  LatentDistribution encode(const Vae& vae, const Batch& batch) {
    if (!data_dir_.empty()) open_disk();
    const int64_t B = batch.images.dim(0);
    std::vector<Tensor> moments;
    for (int64_t b = 0; b < B; ++b) {
      Tensor image = batch.images.slice0(b, b + 1);
      const uint64_t pixels = hash_bytes(image.as_f32());  // (core/hash.h: the values name the disk files)
      const std::string key = batch.paths[size_t(b)] + "|" + std::to_string(pixels);
      auto it = cache_.find(key);
      if (it != cache_.end()) {
        moments.push_back(it->second);
        continue;
      }
      const fs::path file = disk_.empty() ? fs::path() : disk_ / (hex64(hash_bytes(batch.paths[size_t(b)])) + "-" +
                                                                    hex64(pixels) + ".safetensors");
      Tensor m = disk_.empty() ? Tensor() : read_disk(file, image);
      if (!m.defined()) {
        // The float32 VAE whatever --mixed-precision says: these latents go to the disk cache every run reads.
        std::optional<ops::ScopedPrecision> exact;
        if (ops::precision() == ops::Precision::Fast) exact.emplace(ops::Precision::Fp32);
        LatentDistribution d = vae.encode(image);
        m = ops::concat({d.mean(), d.logvar()}, 1);
        if (!disk_.empty()) write_disk(file, m);
      }
      if (bytes_ + m.nbytes() <= max_bytes_) {
        cache_.emplace(key, m);
        bytes_ += m.nbytes();
      }
      moments.push_back(m);
    }
    return LatentDistribution(B == 1 ? moments[0] : ops::concat(moments, 0));
  }

  // A hash of a model component's weights (names, dtypes, shapes and bytes): the latent cache's folder name.
 private:
  static uint64_t weights_hash(const ModelComponent& c) {
    uint64_t h = 0x9E3779B97F4A7C15ull;
    for (const auto& [name, t] : *c.tensors) {
      h = mix64(h ^ hash_bytes(name));
      h = mix64(h ^ uint64_t(t.dtype()));
      for (int64_t d : t.shape()) h = mix64(h ^ uint64_t(d));
      h = mix64(h ^ hash_bytes(t));
    }
    return h;
  }

  // The cached moments of `image`, or an undefined tensor when there is no usable file (a damaged one is ignored
  // and rewritten).
  static Tensor read_disk(const fs::path& file, const Tensor& image) {
    if (!fs::exists(file)) return Tensor();
    try {
      SafeTensors st = SafeTensors::open(file.string());
      Tensor m = st.get("moments").as_f32().clone();
      if (m.ndim() == 4 && m.dim(0) == 1 && m.dim(2) > 0 && image.dim(2) % m.dim(2) == 0) return m;
    } catch (const std::exception&) {
    }
    std::fprintf(stderr, "warning: ignoring the damaged latent cache file %s\n", file.string().c_str());
    return Tensor();
  }
  void open_disk() {
    disk_ = data_dir_ / ".pigment-latents" / ("vae-" + hex64(weights_hash(*vae_weights_)));
    data_dir_.clear();
    std::error_code ec;
    fs::create_directories(disk_, ec);
    if (ec || !fs::is_directory(disk_)) {
      std::fprintf(stderr, "warning: cannot create the latent cache %s (%s); latents are kept in memory only\n",
                   disk_.string().c_str(), ec.message().c_str());
      disk_.clear();
    }
  }
  void write_disk(const fs::path& file, const Tensor& m) {
    try {
      write_safetensors(file.string(), {{"moments", m}});
    } catch (const std::exception& e) {
      std::fprintf(stderr, "warning: cannot write the latent cache (%s); latents are kept in memory only\n", e.what());
      disk_.clear();
    }
  }

  size_t max_bytes_, bytes_ = 0;
  fs::path data_dir_, disk_;
  const ModelComponent* vae_weights_;
  std::unordered_map<std::string, Tensor> cache_;
};

}  // namespace

std::string run_dir_of(const TrainOptions& o) { return o.run_dir.empty() ? o.output + ".run" : o.run_dir; }

TrainSummary train(const TrainOptions& options, const std::function<void(const StepReport&)>& on_step) {
  TrainOptions o = options;
  if (o.method == "controlnet") {
    // The control maps: DATA/conditioning unless another folder is named, or Canny edges made on the fly.
    if (o.data.control_preprocess == "none" && o.data.conditioning_dir.empty())
      o.data.conditioning_dir = (fs::path(o.data_dir) / "conditioning").string();
  } else {
    PIG_CHECK(o.data.conditioning_dir.empty() && o.data.control_preprocess == "none" && o.sample_control_images.empty(),
              "--conditioning-data-dir, --control-preprocess and --sample-control-image are for --method controlnet");
  }
  // Only these methods train a text encoder (text-encoder: always; lora, full, dreambooth: with the flag); the others
  // would ignore the flag. (An unknown method is reported as such by make_method.)
  const bool known_method = o.method == "ti" || std::find(method_names().begin(), method_names().end(), o.method) !=
                                                    method_names().end();
  PIG_CHECK(!o.train_text_encoder || !known_method || o.method == "lora" || o.method == "full" ||
                o.method == "dreambooth" || o.method == "text-encoder",
            "--train-text-encoder: --method ", o.method,
            " trains no text encoder (it is for --method lora, full and dreambooth)");
  PIG_CHECK(o.max_steps > 0, "--max-train-steps must be positive, got ", o.max_steps);
  PIG_CHECK(o.batch_size > 0 && o.batch_size <= 1024, "--train-batch-size must be in [1, 1024], got ", o.batch_size);
  PIG_CHECK(o.learning_rate > 0 && std::isfinite(o.learning_rate), "--learning-rate must be positive, got ",
            o.learning_rate);
  PIG_CHECK(o.text_encoder_lr < 0 || std::isfinite(o.text_encoder_lr), "--text-encoder-lr must be finite, got ",
            o.text_encoder_lr);
  PIG_CHECK(o.min_timestep >= 0 && o.max_timestep >= 0 && (o.max_timestep == 0 || o.min_timestep < o.max_timestep),
            "--min-timestep/--max-timestep: need 0 <= min < max (got ", o.min_timestep, ", ", o.max_timestep, ")");
  PIG_CHECK(o.noise_offset >= 0 && o.noise_offset <= 1, "--noise-offset must be in [0, 1], got ", o.noise_offset);
  PIG_CHECK(o.input_perturbation >= 0 && o.input_perturbation <= 1, "--input-perturbation must be in [0, 1], got ",
            o.input_perturbation);
  PIG_CHECK(o.caption_dropout >= 0 && o.caption_dropout <= 1, "--caption-dropout-rate must be in [0, 1], got ",
            o.caption_dropout);
  PIG_CHECK(o.gradient_accumulation_steps >= 1 && o.gradient_accumulation_steps <= 4096,
            "--gradient-accumulation-steps must be in [1, 4096], got ", o.gradient_accumulation_steps);
  PIG_CHECK(!o.use_ema || (o.ema_decay >= 0 && o.ema_decay <= 1), "--ema-decay must be in [0, 1], got ", o.ema_decay);
  PIG_CHECK(o.sample_every >= 0, "--sample-every-n-steps must be >= 0, got ", o.sample_every);
  PIG_CHECK(o.sample_every == 0 || !o.sample_prompts.empty(), "--sample-every-n-steps needs --sample-prompt");
  PIG_CHECK(!o.output.empty(), "train: give --output FILE (or --output-dir and --output-name)");
  PIG_CHECK(o.mixed_precision != "fp16",
            "--mixed-precision fp16: CPUs have no fast fp16 training path here; use --mixed-precision bf16");
  PIG_CHECK(o.mixed_precision == "no" || o.mixed_precision == "bf16", "--mixed-precision: expected no or bf16, got '",
            o.mixed_precision, "'");
  // Mixed precision: the products (forward and backward) in bf16 with float32 accumulation where the CPU has a fast
  // bf16 path (ops/precision.h, Precision::Fast); master weights, gradients, optimizer state, norms, softmax and the
  // loss stay float32. Without a fast path Fast computes exactly as Fp32. "no": float32 products throughout.
  // (Loading a model sets the process-wide precision from PipelineOptions: it gets the run's too.)
  if (o.mixed_precision == "bf16") {
    if (!ops::fast_precision_available() && distributed::is_root())
      std::fprintf(stderr, "--mixed-precision bf16: this CPU has no fast bf16 path (AMX or AVX-512 BF16); training "
                           "runs in fp32\n");
    o.model.precision = ops::Precision::Fast;
    ops::fast::set_default_bf16_weight_budget(kMixedPrecisionBf16Budget);
  } else if (o.model.precision == ops::Precision::Fast) {
    o.model.precision = ops::Precision::Fp32;
  }
  const ops::ScopedPrecision precision(o.model.precision);
  const bool dreambooth = o.method == "dreambooth";
  PIG_CHECK(dreambooth || (o.dreambooth.instance_prompt.empty() && o.dreambooth.class_prompt.empty() &&
                           !o.dreambooth.save_as_lora),
            "--instance-prompt, --class-prompt and --save-as-lora belong to --method dreambooth");
  const fs::path run_dir = run_dir_of(o);
  // Everything that can fail without training fails now: the output, the run folder, the schedule, the data.
  if (distributed::is_root()) {  // (only rank 0 writes: --distributed)
    check_writable(o.output, "--output");
    check_writable(run_dir / "log.csv", "--run-dir");
  }
  LrScheduleOptions lo;
  lo.name = o.lr_scheduler;
  lo.base_lr = o.learning_rate;
  lo.warmup_steps = o.lr_warmup_steps;
  lo.total_steps = o.max_steps;
  LrSchedule lr_schedule(lo);
  const std::string optimizer_type = optimizer_type_name(o.optimizer_type);
  const std::unique_ptr<Optimizer> optimizer_owned =
      make_optimizer(o.optimizer_type, o.optimizer_args, o.learning_rate, o.adamw);
  Optimizer& optimizer = *optimizer_owned;
  // DreamBooth: training and class images share a batch, so every image is cropped to resolution² (as diffusers'
  // train_dreambooth.py does) instead of going into aspect buckets.
  DatasetOptions data_options = o.data;
  if (dreambooth) data_options.buckets = false;
  // Captions that the instance prompt replaces need not exist (other warnings, such as unreadable images, stay).
  auto warn_but_not_captions = [](const std::string& line) {
    if (line.find("no caption") == std::string::npos) warn_to_stderr(line);
  };
  if (dreambooth && !o.dreambooth.instance_prompt.empty()) data_options.warn = warn_but_not_captions;
  Dataset data = Dataset::scan(o.data_dir, data_options);
  if (o.method == "controlnet" && o.sample_every > 0 && o.sample_control_images.empty()) {
    // Sample images follow the first training image's control map (its picture, with Canny made on the fly).
    const DataItem& first = data.items().front();
    o.sample_control_images.push_back(first.conditioning_path.empty() ? first.path : first.conditioning_path);
  }

  StableDiffusion model = StableDiffusion::load(o.model);
  if (!o.model.low_memory) use_default_weight_budget();  // pipelines/memory_mode.h: not the exact path's generous one
  std::unique_ptr<Method> method;  // (--distributed: rank 0 first, so files it makes, class images, are there after)
  distributed::root_first([&] { method = make_method(o.method, model, o); });
  std::vector<Param> params = method->params();
  if (o.text_encoder_lr >= 0)
    for (Param& p : params)
      if (p.name.rfind("text_encoder", 0) == 0 || p.name.rfind("lora_te", 0) == 0)  // whole encoders, their LoRAs
        p.lr_scale = o.text_encoder_lr / o.learning_rate;
  const std::string instance_prompt = method->instance_prompt();
  // Prior preservation: the class images (the method has made them by now) and a loader of their own.
  const std::optional<Method::PriorData> prior = method->prior_data();
  std::optional<Dataset> class_data;
  std::unique_ptr<DataLoader> class_loader;

  ObjectiveOptions oo;
  oo.prediction = prediction_from_name(o.prediction_type.empty() ? model.prediction_type() : o.prediction_type);
  oo.min_snr_gamma = o.min_snr_gamma;
  DiffusionObjective objective(schedule::TrainSchedule::from_config(model.scheduler_config(GenerateRequest{})), oo);
  const int T = objective.schedule().size();
  const int t_min = o.min_timestep, t_end = o.max_timestep > 0 ? o.max_timestep : T;
  PIG_CHECK(t_end <= T && t_min < t_end, "--min-timestep/--max-timestep: the model's schedule has ", T,
            " timesteps, got [", t_min, ", ", t_end, ")");

  LoaderOptions lopt;
  lopt.batch_size = o.batch_size;
  lopt.seed = o.seed;
  lopt.random_flip = o.random_flip;
  lopt.random_crop = o.random_crop;
  distributed::shard(lopt);  // --distributed: the global batch, of which this rank loads its slice
  DataLoader loader(data, lopt);
  if (prior) {
    PIG_CHECK(std::isfinite(prior->weight) && prior->weight >= 0, "--prior-loss-weight must be >= 0, got ",
              prior->weight);
    DatasetOptions co = data_options;
    co.caption_per_line = false;
    co.warn = warn_but_not_captions;  // the class prompt replaces their captions
    class_data = Dataset::scan(prior->dir, co);
    PIG_CHECK(distributed::size() == 1 || (data.epoch_size() % lopt.batch_size == 0 &&
                                           class_data->epoch_size() % lopt.batch_size == 0),
              "--distributed with prior preservation: the training and class image counts (", data.epoch_size(), ", ",
              class_data->epoch_size(), ") must divide by the global batch (", lopt.batch_size, ")");
    LoaderOptions cl = lopt;
    cl.seed = o.seed ^ 0xC1A55C1A55ull;  // an order of its own
    class_loader = std::make_unique<DataLoader>(*class_data, cl);
  }
  // The prior term's loss is plain MSE (diffusers), whatever weighting the instance term has.
  ObjectiveOptions prior_oo = oo;
  prior_oo.min_snr_gamma = 0;
  DiffusionObjective prior_objective(objective.schedule(), prior_oo);

  std::unique_ptr<Ema> ema;
  if (o.use_ema) {
    EmaOptions eo;
    eo.decay = o.ema_decay;
    ema = std::make_unique<Ema>(params, eo);
  }

  RunState state;
  state.optimizer = optimizer_type;
  state.mixed_precision = o.mixed_precision;
  if (o.resume) {
    const distributed::CheckpointSource source(run_dir);  // --distributed: rank 0's checkpoint, on every rank
    state = read_checkpoint(source.run_dir(), params, optimizer_type, o.mixed_precision, optimizer, ema.get());
    loader.restore(state.loader);
    if (class_loader) {
      PIG_CHECK(state.prior_loader.has_value(), "--resume: the checkpoint in ", run_dir.string(),
                " was written without prior preservation (--class-prompt)");
      class_loader->restore(*state.prior_loader);
    }
    std::fprintf(stderr, "resumed from %s at step %lld\n", run_dir.string().c_str(), (long long)state.step);
  }
  // A run whose final checkpoint was written but not its output (killed while saving it) resumes to write it.
  const bool only_output = o.resume && state.step == o.max_steps && !fs::exists(o.output);
  PIG_CHECK(state.step < o.max_steps || only_output, "--resume: the checkpoint is at step ", state.step,
            ", --max-train-steps is ", o.max_steps, ": nothing to do");
  if (only_output) std::fprintf(stderr, "the run is complete but %s is missing: writing it\n", o.output.c_str());

  // The CSV log: appended on resume, cut back to the checkpoint's step so no step is listed twice.
  const fs::path log_path = run_dir / "log.csv";
  std::vector<std::string> kept;
  if (o.resume && fs::exists(log_path) && distributed::is_root()) {
    std::ifstream in(log_path);
    for (std::string line; std::getline(in, line);)
      if (line.rfind("step,", 0) == 0 || (!line.empty() && std::stoll(line.substr(0, line.find(','))) <= state.step))
        kept.push_back(line);
  }
  std::ofstream log;  // (not open on ranks other than 0)
  if (distributed::is_root()) {
    std::ofstream out(log_path, std::ios::trunc);
    if (kept.empty()) kept.push_back("step,loss,smoothed_loss,lr,seconds");
    for (const auto& l : kept) out << l << "\n";
    out.close();
    log.open(log_path, std::ios::app);
  }

  LatentCache latent_cache(size_t(2) << 30,
                           o.cache_latents_to_disk && !o.random_crop ? fs::path(o.data_dir) : fs::path(),
                           &model.base_component("vae"));
  ops::autograd::Tape tape;
  for (const auto& p : params) tape.watch(p.value);
  UNetHooks hooks = method->unet_hooks();
  hooks.checkpoint_blocks = o.gradient_checkpointing;
  const int N = o.gradient_accumulation_steps;
  TrainSummary summary;
  summary.output = o.output;
  summary.run_dir = run_dir.string();

  for (int64_t step = state.step; step < o.max_steps; ++step) {
    const auto t0 = std::chrono::steady_clock::now();
    // N micro-batches: the tape adds their parameter gradients; each loss is divided by N (diffusers), the
    // logged loss is their mean. Micro-batch m of step k draws from generator (seed, k N + m): with N = 1 the
    // stream of a run without accumulation.
    float step_loss = 0;
    for (int m = 0; m < N; ++m) {
      Batch batch = loader.next();
      // --distributed: this rank's share of the global batch weighs its loss (1 for an even split; 0: none here)
      const float share = distributed::share_weight(batch);
      if (share == 0) continue;
      if (!instance_prompt.empty())
        for (auto& c : batch.captions) c = instance_prompt;
      // Prior preservation: as many class images after the training images, in the same batch.
      const int64_t n_instance = batch.images.dim(0);
      if (class_loader) {
        Batch cb = class_loader->next();
        PIG_CHECK(cb.images.dim(2) == batch.images.dim(2) && cb.images.dim(3) == batch.images.dim(3),
                  "prior preservation: class images are ", cb.images.dim(3), "x", cb.images.dim(2),
                  " but training images ", batch.images.dim(3), "x", batch.images.dim(2));
        batch.images = ops::concat({batch.images, cb.images}, 0);
        for (size_t i = 0; i < cb.paths.size(); ++i) {
          batch.captions.push_back(prior->prompt);
          batch.paths.push_back(cb.paths[i]);
          batch.positions.push_back(int(batch.global_size) + cb.positions[i]);  // after the global batch's own
        }
        batch.time_ids.insert(batch.time_ids.end(), cb.time_ids.begin(), cb.time_ids.end());
      }
      const int64_t B = batch.images.dim(0);
      auto gen = make_generator("cpu", distributed::rank_seed(step_seed(o.seed, step * N + m)));
      if (std::optional<float> own = method->own_objective(batch, *gen, tape, share / float(N))) {
        PIG_CHECK(std::isfinite(*own), "train: the loss became ", *own, " at step ", step + 1,
                  " (learning rate too high?); the last checkpoint is in ", run_dir.string());
        tape.clear();
        step_loss += share * *own / float(N);
        continue;
      }
      // Frozen parts: latents and text conditioning (nothing records: no input needs a gradient).
      // Each sample draws from a generator of its own, seeded by (step seed, its position in the global batch), so a
      // sample draws the same numbers in one process as in any rank of --distributed.
      const auto gens = distributed::sample_generators(step_seed(o.seed, step * N + m), batch);
      auto draw = [&](bool normal, Shape shape) {  // one draw of `shape` ([1, ...]) per sample, stacked
        std::vector<Tensor> each;
        for (const auto& g : gens) each.push_back(normal ? g->randn(shape) : g->rand(shape));
        return ops::concat(each, 0);
      };
      std::vector<Generator*> per_sample;
      for (const auto& g : gens) per_sample.push_back(g.get());
      Tensor latents = ops::scale(sample_latents(latent_cache.encode(model.vae(), batch), per_sample),
                                  model.vae().scaling_factor());
      const Shape one = {1, latents.dim(1), latents.dim(2), latents.dim(3)};
      std::vector<std::string> captions = batch.captions;
      Tensor drop = draw(false, {1});
      for (int64_t b = 0; b < B; ++b)
        if (drop.f32()[b] < o.caption_dropout) captions[size_t(b)].clear();

      Tensor u = draw(false, {1});
      std::vector<int> ts;
      for (int64_t b = 0; b < B; ++b)
        ts.push_back(t_min + std::min(t_end - t_min - 1, int(u.f32()[b] * float(t_end - t_min))));
      Tensor noise = draw(true, one);
      if (o.noise_offset != 0) {
        Tensor offset = draw(true, {1, latents.dim(1), 1, 1});
        noise = ops::add(noise, ops::scale(offset, o.noise_offset));  // broadcast over H, W
      }
      Tensor noised_with = noise;
      if (o.input_perturbation != 0) noised_with = ops::add(noise, ops::scale(draw(true, one), o.input_perturbation));
      Tensor noisy = objective.add_noise(latents, noised_with, ts);
      Tensor target = objective.target(latents, noise, ts);

      method->begin_micro_batch(distributed::rank_seed(step_seed(o.seed ^ 0xD50Full, step * N + m)));
      // (looked up each time: sample images may have swapped the model's UNet for a while)
      const UNet& unet = method->unet() ? *method->unet() : model.unet();
      Tensor pred;
      {
        ops::autograd::Recording rec(tape);
        PromptEmbeds e = method->encode_captions(captions);
        if (!e.context.defined()) e = encode_captions(model, captions);
        const Tensor context = e.context;
        UNetExtras extras;
        if (model.family() == Family::SDXL) extras.text_embeds = e.pooled;
        if (model.family() == Family::SDXL) {
          PIG_CHECK(extras.text_embeds.defined(), "train: --method ", o.method, " gives no SDXL pooled text embedding");
          PIG_CHECK(int64_t(batch.time_ids.size()) == B, "train: the batch has no SDXL size conditioning");
          std::vector<float> ids;
          for (const auto& t6 : batch.time_ids) ids.insert(ids.end(), t6.begin(), t6.end());
          extras.time_ids = Tensor::from_vector({B, 6}, ids);
        }
        extras.hooks = hooks;
        method->add_unet_inputs(extras, noisy, std::vector<float>(ts.begin(), ts.end()), context, batch);
        pred = unet.forward(noisy, std::vector<float>(ts.begin(), ts.end()), context, extras);
      }
      DiffusionObjective::Loss loss;
      if (n_instance == B) {
        loss = objective.loss(pred, target, ts);
      } else {
        // loss = instance + weight · prior, each the mean over its half of the batch (diffusers).
        const std::vector<int> ti(ts.begin(), ts.begin() + n_instance), tc(ts.begin() + n_instance, ts.end());
        DiffusionObjective::Loss li = objective.loss(pred.slice0(0, n_instance), target.slice0(0, n_instance), ti);
        DiffusionObjective::Loss lc = prior_objective.loss(pred.slice0(n_instance, B), target.slice0(n_instance, B), tc);
        loss.value = li.value + prior->weight * lc.value;
        loss.dpred = ops::concat({li.dpred, ops::scale(lc.dpred, prior->weight)}, 0);
      }
      PIG_CHECK(std::isfinite(loss.value), "train: the loss became ", loss.value, " at step ", step + 1,
                " (learning rate too high?); the last checkpoint is in ", run_dir.string());
      tape.backward(pred, N == 1 && share == 1 ? loss.dpred : ops::scale(loss.dpred, share / float(N)));
      tape.clear();
      step_loss += share * loss.value / float(N);
    }
    for (auto& p : params) p.grad = tape.gradient(p.value);
    distributed::average_gradients(params);  // --distributed: the mean over the ranks (a no-op in one process)
    step_loss = float(distributed::mean(step_loss));
    if (o.max_grad_norm > 0) clip_grad_norm(params, o.max_grad_norm);
    const double lr = lr_schedule.lr(step);
    optimizer.set_lr(lr);
    optimizer.step(params);
    for (auto& p : params) p.grad = Tensor();
    tape.zero_grad();
    for (auto& p : params) ops::forget_prepared(p.value);  // changed in place: prepare anew (f32 and bf16 forms)
    if (ema) ema->update(params);

    state.step = step + 1;
    state.smoothed_loss = step == 0 ? step_loss : 0.9f * state.smoothed_loss + 0.1f * step_loss;
    state.loader = loader.state();
    if (class_loader) state.prior_loader = class_loader->state();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    char line[160];
    std::snprintf(line, sizeof line, "%lld,%.9g,%.9g,%.9g,%.3f", (long long)state.step, step_loss,
                  state.smoothed_loss, lr, secs);
    if (distributed::is_root()) log << line << "\n" << std::flush;
    if (summary.steps == 0) summary.first_loss = step_loss;
    ++summary.steps;
    summary.last_smoothed_loss = state.smoothed_loss;
    if (on_step) on_step({state.step, o.max_steps, step_loss, state.smoothed_loss, lr, secs});
    if (o.sample_every > 0 && state.step % o.sample_every == 0 && distributed::is_root())
      write_samples(model, *method, o, state.step, o.data.resolution, (run_dir / "samples").string());
    const bool stop = distributed::any(o.stop && o.stop->load());  // a signal on any rank stops every rank here
    if ((o.save_every > 0 && state.step % o.save_every == 0) || state.step == o.max_steps || stop) {
      if (distributed::is_root()) write_checkpoint(run_dir, params, optimizer, ema.get(), state);
      distributed::barrier();
    }
    if (stop && state.step < o.max_steps) {
      summary.stopped = true;
      summary.last_step = state.step;
      summary.output.clear();
      return summary;
    }
  }
  summary.last_step = state.step;
  if (distributed::is_root()) write_loss_plot(log_path.string(), (run_dir / "loss.png").string());

  std::map<std::string, std::string> meta = {
      {"ss_training_started_by", "pigment"},
      {"ss_network_module", o.method == "lora" ? "networks.lora" : ""},
      {"ss_learning_rate", std::to_string(o.learning_rate)},
      {"ss_text_encoder_lr", std::to_string(o.text_encoder_lr < 0 ? o.learning_rate : o.text_encoder_lr)},
      {"ss_max_train_steps", std::to_string(o.max_steps)},
      {"ss_train_batch_size", std::to_string(o.batch_size)},
      {"ss_lr_scheduler", o.lr_scheduler},
      {"ss_seed", std::to_string(o.seed)},
      {"ss_optimizer", optimizer.describe()},
      {"ss_resolution", std::to_string(o.data.resolution)},
      {"ss_caption_dropout_rate", std::to_string(o.caption_dropout)},
      {"ss_min_snr_gamma", std::to_string(o.min_snr_gamma)},
      {"ss_noise_offset", std::to_string(o.noise_offset)},
      {"ss_ip_noise_gamma", std::to_string(o.input_perturbation)},
      {"ss_num_train_images", std::to_string(data.items().size())},
  };
  if (prior) {
    meta["ss_num_reg_images"] = std::to_string(class_data->items().size());
    meta["ss_prior_loss_weight"] = std::to_string(prior->weight);
  }
  if (ema) {
    ema->copy_to(params);  // diffusers saves the averaged weights
    meta["ss_ema_decay"] = std::to_string(o.ema_decay);
  }
  meta["ss_gradient_accumulation_steps"] = std::to_string(N);
  meta["ss_mixed_precision"] = o.mixed_precision;
  if (distributed::size() > 1) meta["ss_num_processes"] = std::to_string(distributed::size());
  if (distributed::is_root()) {
    method->save(o.output, meta);
    method->save_extras(o.output, optimizer);
  }
  distributed::barrier();
  return summary;
}

}  // namespace pigment::training
