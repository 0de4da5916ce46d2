// pigment generate: txt2img, img2img and inpainting from the command line, with stable-diffusion.cpp's flag names
// where one exists, PNGs that carry their recipe in A1111's infotext format, and --from-png to re-run one.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "command.h"
#include "default_model.h"
#include "generate_a1111_options.h"
#include "control_options.h"
#include "generate.h"
#include "generate_flags.h"
#include "core/threading.h"
#include "io/file_hash.h"
#include "io/checkpoint.h"
#include "imaging/resize.h"
#include "io/image.h"
#include "models/model_family.h"
#include "ops/int8_products.h"
#include "pipelines/generation_run.h"
#include "pipelines/infotext.h"
#include "pipelines/stable_diffusion.h"
#include "sampling/sampler_names.h"

namespace pigment::cli {
namespace {

namespace fs = std::filesystem;

GenerateFlags f;
CLI::App* app = nullptr;

bool given(const char* name) { return app->count(name) > 0; }

void setup(CLI::App& c, bool model_required) {
  GenerateRequest& r = f.g.gen;
  auto* model = c.add_option("-m,--model", f.model,
                             "model: single .safetensors/.ckpt file or diffusers folder (default: pigment's own "
                             "emoji model, models/pigment-emoji.safetensors, at its 64x64 size)");
  if (model_required) model->required();
  c.add_option("-p,--prompt", r.prompt, "prompt (A1111 syntax: (word:1.2), [word], BREAK, [a:b:when], [a|b], AND)");
  c.add_option("-n,--negative-prompt", r.negative_prompt, "negative prompt");
  c.add_option("--upscale", f.upscale, "write the picture N times larger (for viewing; 1-16)")
      ->check(CLI::Range(1, 16))
      ->capture_default_str();
  c.add_option("--upscale-filter", f.upscale_filter, "--upscale filter: lanczos or nearest")
      ->check(CLI::IsMember({"lanczos", "nearest"}))
      ->capture_default_str();
  c.add_option("-W,--width", r.width, "image width in pixels, a multiple of 8")->capture_default_str();
  c.add_option("-H,--height", r.height, "image height in pixels, a multiple of 8")->capture_default_str();
  c.add_option("--steps", r.steps, "sampling steps")->capture_default_str();
  c.add_option("--cfg-scale", r.cfg_scale, "classifier-free guidance scale")->capture_default_str();
  c.add_option("--guidance-rescale", r.guidance_rescale, "guidance rescale φ (0 = off)")->capture_default_str();
  c.add_option("--sampler,--sampling-method", r.sampler, "sampler: A1111 label or scheduler name (pigment samplers)")
      ->capture_default_str();
  c.add_option("--schedule,--scheduler", r.schedule, "schedule type: Karras, Exponential, SGM Uniform, ...");
  c.add_option("--scheduler-config", r.scheduler_config_json, "extra scheduler config fields as JSON");
  c.add_option("-s,--seed", f.g.seed, "seed; -1 picks a random one (printed)")->capture_default_str();
  c.add_option("--rng", r.rng, "noise generator: cuda (A1111 GPU seeds) or cpu (diffusers CPU generator)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  c.add_option("-b,--batch-count", f.g.batch_count, "images to generate (seed, seed+1, ...)")->capture_default_str();
  c.add_option("--clip-skip", r.clip_skip, "use the N-th last CLIP layer (1 = last)")->capture_default_str();
  c.add_option("-i,--init-img", f.init_img, "init image for img2img / inpainting (PNG, JPEG, WebP)");
  c.add_option("--strength", r.strength, "img2img denoising strength in [0, 1]")->capture_default_str();
  c.add_option("--mask", f.mask, "inpainting mask (white = repaint), same size as the init image");
  c.add_option("--mask-blur", r.mask_blur,
               "mask blur in pixels (A1111's: a Gaussian with this sigma; with --inpaint-area masked also the paste's "
               "soft edge)")
      ->capture_default_str();
  c.add_option("--tokenizer", f.tokenizer,
               "CLIP tokenizer: folder, vocab.json/merges.txt or bpe_simple_vocab_16e6.txt.gz (default: a "
               "diffusers folder's tokenizer/, else the built-in table)");
  c.add_option("--vae", f.vae, "external VAE file");
  c.add_option("--precision", f.precision,
               "auto (default: fast where the CPU has AMX or AVX-512 BF16, else exact; exact under --low-memory), "
               "exact (the float32 path the golden cases check), fast (bf16 products, float32 sums) or int8 (linear "
               "layers and 3x3 convolutions in 8-bit integers where the CPU has VNNI, the rest as fast); "
               "docs/performance.md has their error")
      ->check(CLI::IsMember({"auto", "exact", "fast", "int8", "fp32"}))
      ->capture_default_str();
  c.add_option("--prediction", f.prediction, "eps, v or sample (x0) (default: inferred from the model)");
  c.add_option("--model-config", f.model_configs,
               "COMPONENT=PATH: a diffusers config.json for unet, vae, text_encoder or text_encoder_2 (a single file "
               "records no head counts or norm groups)");
  c.add_option("-t,--threads", f.threads, "threads (0 = all cores)")->capture_default_str();
  c.add_option("-o,--output", f.output, "output PNG path")->capture_default_str();
  c.add_option("--from-png", f.from_png, "take prompt and settings from a PNG's parameters (flags given win)");
  c.add_flag("--overwrite", f.overwrite, "replace existing files instead of numbering new ones");
  c.add_flag("--literal-prompt", f.literal_prompt, "tokenize the prompt literally (no A1111 syntax), as diffusers does");
  c.add_flag("-q,--quiet", f.quiet, "no progress output");
  c.add_flag("--low-memory", f.low_memory,
             "least memory: weights streamed from the checkpoint, none kept prepared, VAE decoded in tiles (slower; "
             "docs/performance.md has the figures)");
  c.add_option("--lora", f.g.lora_files, "FILE[:WEIGHT]: apply a LoRA (repeatable; weight 1 by default)");
  c.add_option("--lora-dir", f.folders.lora_dir, "folder of LoRA files for <lora:NAME:WEIGHT> tags in the prompt");
  c.add_option("--lora-apply", f.g.lora_apply, "merge (into copies of the weights) or runtime (layer hooks)")
      ->check(CLI::IsMember({"merge", "runtime"}))
      ->capture_default_str();
  c.add_option("--embedding-dir", f.folders.embedding_dir, "folder of textual-inversion embeddings, used by file name");
  c.add_option("--hypernetwork-dir", f.folders.hypernetwork_dir,
               "folder of A1111 hypernetworks for <hypernet:NAME:WEIGHT>");
  add_control_options(c);
  add_a1111_options(c, f);
}

// The recipe of a PNG (pipelines/generation_request.h reads it strictly: "Steps: 3abc" is one error line naming the
// field and the value) over the request, then every flag given on the command line again, so that it wins.
void apply_png(const std::string& path) {
  auto text = read_png_text(path);
  auto it = text.find("parameters");
  PIG_CHECK(it != text.end(), path, ": the PNG has no 'parameters' text chunk");
  GenerateRequest& r = f.g.gen;
  const int width = r.width, height = r.height;
  const Infotext info = parse_infotext(it->second);
  apply_infotext(f.g, info, path);
  // The recipe's arithmetic, unless --precision is given: "exact", "fast" or "int8" (another value: the default).
  if (const std::string* p = info.find("Precision"); p && (*p == "exact" || *p == "fast" || *p == "int8"))
    f.precision = *p;
  if (r.hires) f.hires = true, f.hr = *r.hires;  // the --hr-* flags given apply over the recipe's hires fix
  r.hires.reset();
  for (CLI::Option* opt : app->get_options())
    if (opt->count() > 0) opt->run_callback();
  if (given("--width") || given("--height")) r.width = width, r.height = height;  // a size given replaces the recipe's
}

// "out.png" → itself when free (or --overwrite), else "out-1.png", "out-2.png", ...
std::string output_path(int index) {
  fs::path p(f.output);
  std::string stem = p.stem().string(), ext = p.has_extension() ? p.extension().string() : ".png";
  fs::path dir = p.parent_path();
  auto numbered = [&](int n) { return (dir / (n ? stem + "-" + std::to_string(n) + ext : stem + ext)).string(); };
  if (f.overwrite) return numbered(index);
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

// The pipeline's options from the flags: the model, tokenizer, VAE, configs, memory and precision.
PipelineOptions pipeline_options() {
  PipelineOptions po;
  po.model = f.model;
  po.tokenizer = f.tokenizer;
  po.vae = f.vae;
  po.low_memory = f.low_memory;
  // auto under --low-memory: exact, whose weights are converted per call with their file pages handed back; the bf16
  // copies of the fast path have no such mode yet.
  po.precision = f.precision == "auto" && f.low_memory ? ops::Precision::Fp32 : ops::parse_precision(f.precision.c_str());
  if (po.precision == ops::Precision::Int8 && !ops::int8::available())
    std::fprintf(stderr, "warning: --precision int8 has no int8 path on this CPU (it needs AVX-512 VNNI or AMX); running %s\n",
                 ops::fast_precision_available() ? "fast" : "exact");
  if (po.precision == ops::Precision::Fast && !ops::fast_precision_available())
    std::fprintf(stderr,
                 "warning: --precision fast has no fast path on this CPU (it needs AMX or AVX-512 BF16); running "
                 "exact\n");
  po.load.prediction = f.prediction;
  for (const auto& mc : f.model_configs) {
    size_t eq = mc.find('=');
    PIG_CHECK(eq != std::string::npos && eq > 0, "--model-config expects COMPONENT=PATH, got '", mc, "'");
    po.load.config_paths[mc.substr(0, eq)] = mc.substr(eq + 1);
  }
  return po;
}

// The flags into the request, checked as far as they can be without a model.
void complete_request() {
  GenerationRequest& g = f.g;
  GenerateRequest& r = g.gen;
  if (f.model.empty()) f.model = default_model_path();
  // A model of pigment's own families draws at its own size unless told otherwise (the emoji model: 64x64).
  if (!given("--width") && !given("--height"))
    if (int native = native_image_size(f.model); native > 0) r.width = r.height = native;
  if (!f.from_png.empty()) apply_png(f.from_png);
  PIG_CHECK(g.batch_count >= 1 && g.batch_count <= 1000, "--batch-count must be between 1 and 1000");
  PIG_CHECK(f.threads >= 0, "--threads must be 0 (all cores) or positive");
  PIG_CHECK(f.mask.empty() || !f.init_img.empty(), "--mask needs --init-img");
  resolve_sampler(r.sampler);  // an unknown name fails here, before loading anything
  if (!r.schedule.empty()) resolve_schedule(r.schedule);
  if (f.threads > 0) set_num_threads(f.threads);
  fs::path out_dir = fs::path(f.output).parent_path();
  PIG_CHECK(out_dir.empty() || fs::is_directory(out_dir), "--output: folder ", out_dir.string(), " does not exist");
  r.a1111_syntax = !f.literal_prompt;
  if (!f.init_img.empty()) r.init_image = read_image(f.init_img);
  if (!f.mask.empty()) r.mask = read_image(f.mask);
  apply_a1111_flags(f, *app);  // hires fix, resize mode, inpaint area, masked content, SDXL sizes
}

// A progress bar with rate and ETA per pass (the hires pass's steps are slower than the first pass's).
ProgressCallback progress_bar() {
  auto pass_start = std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
  return [pass_start](const StepProgress& p) {
    auto now = std::chrono::steady_clock::now();
    double el = std::chrono::duration<double>(now - *pass_start).count();
    double rate = p.step / std::max(el, 1e-9);
    int width = 30, fill = p.total ? p.step * width / p.total : width;
    if (p.step == p.total) *pass_start = now;
    std::fprintf(stderr, "\r%s[%.*s%*s] %d/%d  %.2f it/s  ETA %.0f s ", p.pass > 1 ? "hires " : "", fill,
                 "==============================", width - fill, "", p.step, p.total, rate,
                 (p.total - p.step) / std::max(rate, 1e-9));
    if (p.step == p.total && p.pass < p.passes) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  };
}

int run(CLI::App& cli, const GenerateHooks& hooks) {
  app = &cli;
  complete_request();
  const GenerationRequest& g = f.g;
  const GenerateRequest& r = g.gen;

  auto t0 = std::chrono::steady_clock::now();
  PipelineOptions po = pipeline_options();
  // The adapters the request names (pipelines/generation_request.h), loaded before the model: a bad name fails fast.
  Adapters adapters = load_adapters(g, f.folders);
  if (hooks.leading_control_images) control_options().leading_images = hooks.leading_control_images(r.width, r.height);
  check_control_options();
  StableDiffusion sd = StableDiffusion::load(po);
  std::vector<ControlUnit> control;
  if (!control_options().nets.empty()) control = load_control_units(sd.base_component("unet").config, r.width, r.height);
  check_a1111_family(g, sd.family());
  RecipeContext recipe;
  recipe.model_path = f.model;
  recipe.model_hash = model_short_hash(f.model);
  recipe.vae_path = f.vae;
  recipe.extra = control_infotext_entries();
  // The library path `pigment serve` runs too (pipelines/generation_run.h): adapters set, model checks, the seed.
  PreparedGeneration job = prepare_generation(sd, g, adapters, std::move(control), std::move(recipe));
  for (const auto& w : job.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!f.quiet) std::fprintf(stderr, "loaded %s (%s) in %.1f s\n", f.model.c_str(), family_name(sd.family()), load_s);
  if (job.random_seed) std::printf("seed: %llu\n", (unsigned long long)job.seed);
  const bool tty = isatty(fileno(stderr));

  for (int b = 0; b < g.batch_count; ++b) {
    auto start = std::chrono::steady_clock::now();
    const GenerateRequest image_request = job.image_request(b);
    GenerateResult res = sd.generate(image_request, !f.quiet && tty ? progress_bar() : ProgressCallback{});
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    std::string path = output_path(b);
    if (f.upscale > 1)  // for viewing small models' pictures; the recipe stays the generation's
      res.image = resize_image(res.image, res.image.width * f.upscale, res.image.height * f.upscale,
                               f.upscale_filter == "nearest" ? ImageFilter::Nearest : ImageFilter::Lanczos);
    write_png(path, res.image, {{"parameters", format_infotext(job.infotext(b))}});
    if (hooks.written) hooks.written(path);
    if (!f.quiet) {
      if (tty) std::fprintf(stderr, "\n");
      std::string steps = std::to_string(r.steps);
      if (r.hires) steps += "+" + std::to_string(r.hires->steps > 0 ? r.hires->steps : r.steps) + " hires";
      std::fprintf(stderr, "image %d/%d: seed %llu, %dx%d, %s steps in %.1f s -> %s\n", b + 1, g.batch_count,
                   (unsigned long long)image_request.seed, res.image.width, res.image.height, steps.c_str(), secs,
                   path.c_str());
    }
  }
  return 0;
}

CLI::App* generate_app = nullptr;
RegisterCommand reg(
    "generate", "make images: txt2img, img2img (-i), inpainting (-i --mask)",
    [](CLI::App& c) {
      generate_app = &c;
      setup(c, false);
    },
    [] { return run(*generate_app, {}); });

}  // namespace

void add_generate_options(CLI::App& app, bool model_required) { setup(app, model_required); }
int run_generate(CLI::App& app, const GenerateHooks& hooks) { return run(app, hooks); }
}  // namespace pigment::cli
