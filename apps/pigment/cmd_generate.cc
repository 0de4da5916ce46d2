// pigment generate: txt2img, img2img and inpainting from the command line, with stable-diffusion.cpp's flag names
// where one exists, PNGs that carry their recipe in A1111's infotext format, and --from-png to re-run one.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>

#include "command.h"
#include "default_model.h"
#include "generate_a1111_options.h"
#include "control_options.h"
#include "generate.h"
#include "core/threading.h"
#include "io/file_hash.h"
#include "io/checkpoint.h"
#include "imaging/resize.h"
#include "io/image.h"
#include "models/model_family.h"
#include "pipelines/generation_request.h"
#include "pipelines/infotext.h"
#include "pipelines/stable_diffusion.h"
#include "sampling/sampler_names.h"
#include "text/extra_networks.h"

namespace pigment::cli {
namespace {

namespace fs = std::filesystem;

struct Options {
  std::string model, prompt, negative, sampler = "Euler a", schedule, rng = "cuda", init_img, mask, tokenizer, vae,
                                       output = "output.png", from_png, prediction, scheduler_config;
  int width = 512, height = 512, steps = 20, batch_count = 1, clip_skip = 1, threads = 0, mask_blur = 4;
  int64_t seed = -1;
  double cfg_scale = 7.0, strength = 0.75, guidance_rescale = 0.0;
  std::vector<std::string> model_configs;
  bool overwrite = false, quiet = false, no_a1111 = false;
  bool low_memory = false;
  // adapters
  std::vector<std::string> loras;
  std::string lora_dir, lora_apply = "merge", embedding_dir, hypernetwork_dir;
  std::string precision = "fp32";
  int upscale = 1;
  std::string upscale_filter = "lanczos";
  const CLI::App* app = nullptr;
};
Options o;

bool given(const char* name) { return o.app->count(name) > 0; }

void setup(CLI::App& c, bool model_required) {
  auto* model = c.add_option("-m,--model", o.model,
                             "model: single .safetensors/.ckpt file or diffusers folder (default: pigment's own "
                             "emoji model, models/pigment-emoji.safetensors, at its 64x64 size)");
  if (model_required) model->required();
  c.add_option("-p,--prompt", o.prompt, "prompt (A1111 syntax: (word:1.2), [word], BREAK, [a:b:when], [a|b], AND)");
  c.add_option("-n,--negative-prompt", o.negative, "negative prompt");
  c.add_option("--upscale", o.upscale, "write the picture N times larger (for viewing; 1-16)")
      ->check(CLI::Range(1, 16))
      ->capture_default_str();
  c.add_option("--upscale-filter", o.upscale_filter, "--upscale filter: lanczos or nearest")
      ->check(CLI::IsMember({"lanczos", "nearest"}))
      ->capture_default_str();
  c.add_option("-W,--width", o.width, "image width in pixels, a multiple of 8")->capture_default_str();
  c.add_option("-H,--height", o.height, "image height in pixels, a multiple of 8")->capture_default_str();
  c.add_option("--steps", o.steps, "sampling steps")->capture_default_str();
  c.add_option("--cfg-scale", o.cfg_scale, "classifier-free guidance scale")->capture_default_str();
  c.add_option("--guidance-rescale", o.guidance_rescale, "guidance rescale φ (0 = off)")->capture_default_str();
  c.add_option("--sampler,--sampling-method", o.sampler, "sampler: A1111 label or scheduler name (pigment samplers)")
      ->capture_default_str();
  c.add_option("--schedule,--scheduler", o.schedule, "schedule type: Karras, Exponential, SGM Uniform, ...");
  c.add_option("--scheduler-config", o.scheduler_config, "extra scheduler config fields as JSON");
  c.add_option("-s,--seed", o.seed, "seed; -1 picks a random one (printed)")->capture_default_str();
  c.add_option("--rng", o.rng, "noise generator: cuda (A1111 GPU seeds) or cpu (diffusers CPU generator)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  c.add_option("-b,--batch-count", o.batch_count, "images to generate (seed, seed+1, ...)")->capture_default_str();
  c.add_option("--clip-skip", o.clip_skip, "use the N-th last CLIP layer (1 = last)")->capture_default_str();
  c.add_option("-i,--init-img", o.init_img, "init image for img2img / inpainting (PNG, JPEG, WebP)");
  c.add_option("--strength", o.strength, "img2img denoising strength in [0, 1]")->capture_default_str();
  c.add_option("--mask", o.mask, "inpainting mask (white = repaint), same size as the init image");
  c.add_option("--mask-blur", o.mask_blur,
               "mask blur in pixels (A1111's: a Gaussian with this sigma; with --inpaint-area masked also the paste's "
               "soft edge)")
      ->capture_default_str();
  c.add_option("--tokenizer", o.tokenizer,
               "CLIP tokenizer: folder, vocab.json/merges.txt or bpe_simple_vocab_16e6.txt.gz (default: a "
               "diffusers folder's tokenizer/, else the built-in table)");
  c.add_option("--vae", o.vae, "external VAE file");
  c.add_option("--precision", o.precision,
               "fp32 (default) or fast: bf16 products on AMX or AVX-512 BF16 where the CPU has them (docs/performance.md has its error)")
      ->check(CLI::IsMember({"fp32", "fast"}))
      ->capture_default_str();
  c.add_option("--prediction", o.prediction, "eps or v (default: inferred from the model)");
  c.add_option("--model-config", o.model_configs,
               "COMPONENT=PATH: a diffusers config.json for unet, vae, text_encoder or text_encoder_2 (a single file "
               "records no head counts or norm groups)");
  c.add_option("-t,--threads", o.threads, "threads (0 = all cores)")->capture_default_str();
  c.add_option("-o,--output", o.output, "output PNG path")->capture_default_str();
  c.add_option("--from-png", o.from_png, "take prompt and settings from a PNG's parameters (flags given win)");
  c.add_flag("--overwrite", o.overwrite, "replace existing files instead of numbering new ones");
  c.add_flag("--literal-prompt", o.no_a1111, "tokenize the prompt literally (no A1111 syntax), as diffusers does");
  c.add_flag("-q,--quiet", o.quiet, "no progress output");
  c.add_flag("--low-memory", o.low_memory,
             "least memory: weights streamed from the checkpoint, none kept prepared, VAE decoded in tiles (slower; "
             "docs/performance.md has the figures)");
  c.add_option("--lora", o.loras, "FILE[:WEIGHT]: apply a LoRA (repeatable; weight 1 by default)");
  c.add_option("--lora-dir", o.lora_dir, "folder of LoRA files for <lora:NAME:WEIGHT> tags in the prompt");
  c.add_option("--lora-apply", o.lora_apply, "merge (into copies of the weights) or runtime (layer hooks)")
      ->check(CLI::IsMember({"merge", "runtime"}))
      ->capture_default_str();
  c.add_option("--embedding-dir", o.embedding_dir, "folder of textual-inversion embeddings, used by file name");
  c.add_option("--hypernetwork-dir", o.hypernetwork_dir, "folder of A1111 hypernetworks for <hypernet:NAME:WEIGHT>");
  add_control_options(c);
  add_a1111_options(c);
}

// Fills options from a PNG's infotext, except those given on the command line.
void apply_png(const std::string& path) {
  auto text = read_png_text(path);
  auto it = text.find("parameters");
  PIG_CHECK(it != text.end(), path, ": the PNG has no 'parameters' text chunk");
  Infotext info = parse_infotext(it->second);
  // The recipe over the current options (pipelines/generation_request.h reads it strictly: "Steps: 3abc" is one
  // error line naming the field and the value); then every flag given on the command line wins.
  GenerationRequest g;
  GenerateRequest& r = g.gen;
  r.prompt = o.prompt, r.negative_prompt = o.negative, r.steps = o.steps, r.cfg_scale = o.cfg_scale;
  r.clip_skip = o.clip_skip, r.strength = o.strength, r.guidance_rescale = o.guidance_rescale, g.seed = o.seed;
  r.sampler = o.sampler, r.schedule = o.schedule, r.rng = o.rng, r.width = o.width, r.height = o.height;
  apply_infotext(g, info, path);
  auto take = [&](const char* flag, auto& dst, const auto& v) {
    if (!given(flag)) dst = v;
  };
  take("--prompt", o.prompt, r.prompt);
  take("--negative-prompt", o.negative, r.negative_prompt);
  take("--steps", o.steps, r.steps);
  take("--cfg-scale", o.cfg_scale, r.cfg_scale);
  take("--clip-skip", o.clip_skip, r.clip_skip);
  take("--strength", o.strength, r.strength);
  take("--guidance-rescale", o.guidance_rescale, r.guidance_rescale);
  take("--seed", o.seed, g.seed);
  take("--sampler", o.sampler, r.sampler);
  take("--schedule", o.schedule, r.schedule);
  take("--rng", o.rng, r.rng);
  if (!given("--width") && !given("--height")) o.width = r.width, o.height = r.height;
  apply_a1111_infotext(info, *o.app, path, o.mask_blur);
}

// "out.png" → itself when free (or --overwrite), else "out-1.png", "out-2.png", ...
std::string output_path(int index) {
  fs::path p(o.output);
  std::string stem = p.stem().string(), ext = p.has_extension() ? p.extension().string() : ".png";
  fs::path dir = p.parent_path();
  auto numbered = [&](int n) { return (dir / (n ? stem + "-" + std::to_string(n) + ext : stem + ext)).string(); };
  if (o.overwrite) return numbered(index);
  for (int n = index;; ++n)
    if (!fs::exists(numbered(n))) return numbered(n);
}

// The picture size a self-describing model (model_family.h) was made for: its VAE's sample_size; 0 for other models.
int native_image_size(const std::string& model) {
  if (!fs::is_regular_file(model)) return 0;
  const auto meta = load_checkpoint(model).metadata;
  auto it = meta.find(std::string(kMetaConfigPrefix) + "vae");
  if (it == meta.end()) return 0;
  const auto j = nlohmann::json::parse(it->second, nullptr, false);
  return j.is_object() && j.contains("sample_size") && j["sample_size"].is_number_integer() ? j["sample_size"].get<int>()
                                                                                           : 0;
}

int run(const CLI::App& app, const GenerateHooks& hooks) {
  o.app = &app;
  if (o.model.empty()) o.model = default_model_path();
  // A model of pigment's own families draws at its own size unless told otherwise (the emoji model: 64x64).
  if (!given("--width") && !given("--height"))
    if (int native = native_image_size(o.model); native > 0) o.width = o.height = native;
  if (!o.from_png.empty()) apply_png(o.from_png);
  PIG_CHECK(o.batch_count >= 1 && o.batch_count <= 1000, "--batch-count must be between 1 and 1000");
  PIG_CHECK(o.threads >= 0, "--threads must be 0 (all cores) or positive");
  PIG_CHECK(o.mask.empty() || !o.init_img.empty(), "--mask needs --init-img");
  resolve_sampler(o.sampler);  // an unknown name fails here, before loading anything
  if (!o.schedule.empty()) resolve_schedule(o.schedule);
  if (o.threads > 0) set_num_threads(o.threads);
  fs::path out_dir = fs::path(o.output).parent_path();
  PIG_CHECK(out_dir.empty() || fs::is_directory(out_dir), "--output: folder ", out_dir.string(), " does not exist");

  GenerateRequest r;
  r.prompt = o.prompt;
  r.negative_prompt = o.negative;
  r.a1111_syntax = !o.no_a1111;
  r.width = o.width;
  r.height = o.height;
  r.steps = o.steps;
  r.cfg_scale = o.cfg_scale;
  r.guidance_rescale = o.guidance_rescale;
  r.sampler = o.sampler;
  r.schedule = o.schedule;
  r.scheduler_config_json = o.scheduler_config;
  r.rng = o.rng;
  r.clip_skip = o.clip_skip;
  r.strength = o.strength;
  r.mask_blur = o.mask_blur;
  if (!o.init_img.empty()) r.init_image = read_image(o.init_img);
  if (!o.mask.empty()) r.mask = read_image(o.mask);
  fill_a1111_request(r, *o.app, o.strength);  // hires fix, inpaint area, masked content, SDXL sizes
  r.strength = o.strength;

  auto t0 = std::chrono::steady_clock::now();
  PipelineOptions po;
  po.model = o.model;
  po.tokenizer = o.tokenizer;
  po.vae = o.vae;
  po.low_memory = o.low_memory;
  po.precision = ops::parse_precision(o.precision.c_str());
  if (po.precision == ops::Precision::Fast && !ops::fast_precision_available())
    std::fprintf(stderr, "warning: --precision fast has no fast path on this CPU (it needs AMX or AVX-512 BF16); running fp32\n");
  po.load.prediction = o.prediction;
  for (const auto& mc : o.model_configs) {
    size_t eq = mc.find('=');
    PIG_CHECK(eq != std::string::npos && eq > 0, "--model-config expects COMPONENT=PATH, got '", mc, "'");
    po.load.config_paths[mc.substr(0, eq)] = mc.substr(eq + 1);
  }
  // The request with its prompts as given (tags included): the library loads the adapters they name and writes the
  // infotext from it (pipelines/generation_request.h).
  GenerationRequest g;
  g.gen = r;
  g.gen.prompt = o.prompt;
  g.gen.negative_prompt = o.negative;
  g.lora_files = o.loras;
  g.lora_apply = o.lora_apply;
  g.crop_coords_given = a1111_crop_coords_set();
  Adapters adapters = load_adapters(g, {o.lora_dir, o.embedding_dir, o.hypernetwork_dir});
  for (const auto& w : adapters.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  r.prompt = adapters.prompt;
  r.negative_prompt = adapters.negative_prompt;
  if (hooks.leading_control_images) control_options().leading_images = hooks.leading_control_images(o.width, o.height);
  check_control_options();
  StableDiffusion sd = StableDiffusion::load(po);
  if (!adapters.loras.empty()) {
    auto unmatched = sd.set_loras(adapters.loras, o.lora_apply == "runtime" ? LoraApply::Runtime : LoraApply::Merge);
    for (const auto& u : unmatched) std::fprintf(stderr, "warning: LoRA key matches no layer: %s\n", u.c_str());
  }
  if (!adapters.embeddings.empty()) sd.set_embeddings(adapters.embeddings);
  r.hypernetworks = adapters.hypernetworks;
  if (!control_options().nets.empty())
    r.control = load_control_units(sd.base_component("unet").config, o.width, o.height);
  r.seed = 0;
  check_a1111_family(sd.family());
  sd.check_request(r);  // sizes, steps, strength, mask: before any work
  double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!o.quiet) std::fprintf(stderr, "loaded %s (%s) in %.1f s\n", o.model.c_str(), family_name(sd.family()), load_s);

  uint64_t seed = o.seed >= 0 ? uint64_t(o.seed) : (uint64_t(std::random_device{}()) & 0xffffffffu);
  if (o.seed < 0) std::printf("seed: %llu\n", (unsigned long long)seed);
  RecipeContext recipe;
  recipe.model_path = o.model;
  recipe.model_hash = model_short_hash(o.model);
  recipe.vae_path = o.vae;
  recipe.lora_hashes = adapters.lora_hashes;
  recipe.ti_hashes = adapters.ti_hashes;
  Infotext control_keys;
  add_control_infotext(control_keys);
  recipe.extra = control_keys.params;
  const bool tty = isatty(fileno(stderr));

  for (int b = 0; b < o.batch_count; ++b) {
    r.seed = seed + uint64_t(b);
    auto start = std::chrono::steady_clock::now();
    ProgressCallback progress;
    auto pass_start = start;
    if (!o.quiet && tty)
      progress = [&](const StepProgress& p) {
        // Rate and ETA per pass: the hires pass's steps are slower than the first pass's.
        auto now = std::chrono::steady_clock::now();
        double el = std::chrono::duration<double>(now - pass_start).count();
        double rate = p.step / std::max(el, 1e-9);
        int width = 30, fill = p.total ? p.step * width / p.total : width;
        if (p.step == p.total) pass_start = now;
        std::fprintf(stderr, "\r%s[%.*s%*s] %d/%d  %.2f it/s  ETA %.0f s ", p.pass > 1 ? "hires " : "", fill,
                     "==============================", width - fill, "", p.step, p.total, rate,
                     (p.total - p.step) / std::max(rate, 1e-9));
        if (p.step == p.total && p.pass < p.passes) std::fprintf(stderr, "\n");
        std::fflush(stderr);
      };
    GenerateResult res = sd.generate(r, progress);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    Infotext info = request_infotext(g, r.seed, recipe);
    std::string path = output_path(b);
    if (o.upscale > 1)  // for viewing small models' pictures; the recipe stays the generation's
      res.image = resize_image(res.image, res.image.width * o.upscale, res.image.height * o.upscale,
                               o.upscale_filter == "nearest" ? ImageFilter::Nearest : ImageFilter::Lanczos);
    write_png(path, res.image, {{"parameters", format_infotext(info)}});
    if (hooks.written) hooks.written(path);
    if (!o.quiet) {
      if (tty) std::fprintf(stderr, "\n");
      std::string steps = std::to_string(o.steps);
      if (r.hires) steps += "+" + std::to_string(r.hires->steps > 0 ? r.hires->steps : o.steps) + " hires";
      std::fprintf(stderr, "image %d/%d: seed %llu, %dx%d, %s steps in %.1f s -> %s\n", b + 1, o.batch_count,
                   (unsigned long long)r.seed, res.image.width, res.image.height, steps.c_str(), secs, path.c_str());
    }
  }
  return 0;
}

const CLI::App* generate_app = nullptr;
RegisterCommand reg(
    "generate", "make images: txt2img, img2img (-i), inpainting (-i --mask)",
    [](CLI::App& c) {
      generate_app = &c;
      setup(c, false);
    },
    [] { return run(*generate_app, {}); });

}  // namespace

void add_generate_options(CLI::App& app, bool model_required) { setup(app, model_required); }
int run_generate(const CLI::App& app, const GenerateHooks& hooks) { return run(app, hooks); }
}  // namespace pigment::cli
