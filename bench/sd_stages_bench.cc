// Stage benchmark of a whole model through the public pipeline API: text encoding (one 77-token prompt), sampling
// steps (each one UNet evaluation on the [uncond, cond] batch of CFG), VAE decode, the whole txt2img, and the peak
// RSS. Steps 1-2 of the first image (which prepare the weights) have their own row — with at most 2 steps an image
// and several runs, the first image's steps. Every figure is the median over the runs; beside it the work done
// (GFLOP, counted by the ops from their shapes, 2 per multiply-add of the direct algorithm, so Winograd's rate is an
// effective one), the achieved rate, and that rate as a share of the fp32 FMA peak measured by this process at
// start-up.
//   sd_stages_bench MODEL TOKENIZER_DIR [SIZE=512] [STEPS=4] [RUNS=3] [default|low-memory|fast] [--reference]
// --reference: also runs each stage once on pigment's plain reference path (ops/precision.h Precision::Reference, the
// scalar twins of every op) and prints the speed-up of the chosen mode over it. Slow: minutes at 256².
// PIGMENT_PROFILE=1 prints per-op tables of the last run's stages; PIGMENT_MEMSTAT=1 memory after each stage.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/threading.h"
#include "fma_peak.h"
#include "ops/fast_products.h"
#include "ops/onednn.h"
#include "ops/ops.h"
#include "ops/precision.h"
#include "ops/profile.h"
#include "pipelines/memory_mode.h"
#include "pipelines/stable_diffusion.h"

using namespace pigment;
using Clock = std::chrono::steady_clock;

namespace {
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}
double peak_rss_gb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0 / 1024.0;
}
double rss_gb() {  // current resident set (/proc/self/statm: pages)
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return double(resident) * 4096 / 1073741824.0;
}
// PIGMENT_MEMSTAT=1: where the memory is after each stage (stderr).
void memstat(const char* stage) {
  if (!std::getenv("PIGMENT_MEMSTAT")) return;
  static double last_cpu = 0;
  const double cpu = ops::profile::process_cpu_seconds();
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  static long last_faults = 0;
  static double last_sys = 0;
  const double sys = double(u.ru_stime.tv_sec) + 1e-6 * double(u.ru_stime.tv_usec);
  std::fprintf(stderr, "cpu %6.2f s (sys %5.2f), %5ld k minor faults, %zu primitives, bf16 kept %.2f GB | ",
               cpu - last_cpu, sys - last_sys, (u.ru_minflt - last_faults) / 1000, ops::onednn::cached_primitive_count(),
               ops::fast::kept_bf16_bytes() / 1073741824.0);
  last_faults = u.ru_minflt;
  last_sys = sys;
  last_cpu = cpu;
  std::fprintf(stderr, "mem after %-14s rss %.2f GB, peak %.2f GB, kept weights %.2f GB (%zu), tensor pool free %.2f GB\n",
               stage, rss_gb(), peak_rss_gb(), ops::default_weight_cache().bytes() / 1073741824.0,
               ops::default_weight_cache().entries(), cached_memory_bytes() / 1073741824.0);
}

// Seconds and FLOPs of one stage, over runs.
struct Stage {
  std::vector<double> seconds, flops;
  double reference_s = 0;  // 0: not measured
  void add(double s, double f) { seconds.push_back(s), flops.push_back(f); }
};

// Times fn() and counts the FLOPs the ops did meanwhile.
template <class F>
void measure(Stage& st, F&& fn) {
  const double f0 = ops::profile::flops_counted();
  const auto t = Clock::now();
  fn();
  st.add(since(t), ops::profile::flops_counted() - f0);
}

// `peak`: the fp32 FMA peak; `mode_peak`: the peak of the precision the run computes in (bf16 for fast, int8 for
// int8; fp32 for exact).
void print_row(const char* name, const Stage& st, double peak, double mode_peak) {
  const double s = median(st.seconds), gflop = median(st.flops) * 1e-9;
  auto share = [&](double p) { return s > 0 && p > 0 ? 100.0 * gflop / s / (p * 1e-9) : 0.0; };
  std::printf("| %s | %.3f | %.1f | %.0f | %.0f %% | %.0f %% |", name, s, gflop, s > 0 ? gflop / s : 0.0, share(peak),
              share(mode_peak));
  if (st.reference_s > 0)
    std::printf(" %.1f | %.1fx |\n", st.reference_s, st.reference_s / s);
  else
    std::printf(" — | — |\n");
}
}  // namespace

int main(int argc, char** argv) {
  pigment::use_runtime_settings(argv);  // core/threading.h
  std::vector<std::string> args;
  bool reference = false;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--reference")
      reference = true;
    else
      args.push_back(argv[i]);
  }
  if (args.size() < 2) {
    std::fprintf(stderr,
                 "usage: %s MODEL TOKENIZER_DIR [SIZE=512] [STEPS=4] [RUNS=3] [default|low-memory|fast] [--reference]\n",
                 argv[0]);
    return 2;
  }
  try {
    const int size = args.size() > 2 ? std::stoi(args[2]) : 512, steps = args.size() > 3 ? std::stoi(args[3]) : 4;
    const int runs = args.size() > 4 ? std::stoi(args[4]) : 3;
    const std::string mode = args.size() > 5 ? args[5] : "default";
    if (mode != "default" && mode != "low-memory" && mode != "fast")
      throw std::runtime_error("mode must be default, low-memory or fast");
    if (steps < 1 || runs < 1) throw std::runtime_error("STEPS and RUNS must be at least 1");
    const bench::FmaPeak peak = bench::measure_fma_peak(), bf16_peak = bench::measure_bf16_peak(),
                         fp16_peak = bench::measure_fp16_peak(), int8_peak = bench::measure_int8_peak();

    PipelineOptions po;
    po.model = args[0];
    po.tokenizer = args[1];
    po.low_memory = mode == "low-memory";
    if (mode == "fast") po.precision = ops::Precision::Fast;  // load() sets the process-wide precision
    auto t = Clock::now();
    StableDiffusion sd = StableDiffusion::load(po);
    const double load_s = since(t);

    GenerateRequest r;
    r.prompt = "a photograph of an astronaut riding a horse on the moon, highly detailed, 8k";
    r.negative_prompt = "blurry";
    r.width = r.height = size;
    r.steps = steps;
    r.cfg_scale = 7.0;
    r.sampler = "Euler";
    Stage enc, first_steps, later_first_steps, step, dec, whole;
    for (int i = 0; i < runs; ++i) {
      measure(enc, [&] { sd.encode_prompt(r.prompt, r); });
      memstat("text encoding");
      r.seed = uint64_t(i);
      const bool last_run = i == runs - 1;
      if (last_run) ops::profile::reset();  // PIGMENT_PROFILE=1: per-op tables of the last run's stages
      auto last = Clock::now();
      double last_flops = ops::profile::flops_counted();
      // generate() encodes the prompts (and writes their probes) before its first step: step 1 is timed from there,
      // so that it counts the sampling work only (the text encoding has its own row).
      auto after_prompts = [&](const std::string& name, const Tensor&) {
        if (name == "prompt_embeds" || name == "negative_prompt_embeds") {
          last = Clock::now();
          last_flops = ops::profile::flops_counted();
        }
      };
      measure(whole, [&] {
        sd.generate(r, [&](const StepProgress& p) {
          const double f = ops::profile::flops_counted();
          // Steps 1 and 2 of each run prepare the weights: per call, then into the kept set at their second use;
          // steps from 3 on show the steady state.
          // Steps 1-2 of the second image on show whether the weights prepared for the first image were kept.
          // With at most 2 steps an image and several runs, the first run's steps are the preparing ones and the
          // later runs' the steady ones (their weights kept from the first).
          Stage& into = steps > 2 ? (p.step <= 2 ? (i == 0 ? first_steps : later_first_steps) : step)
                                  : (runs > 1 && i == 0 ? first_steps : step);
          into.add(since(last), f - last_flops);
          memstat("step");
          if (last_run && p.step == p.total && ops::profile::enabled()) {
            std::fprintf(stderr, "== sampling (%d steps, last run)\n%s", steps, ops::profile::table().c_str());
            ops::profile::reset();
          }
          last = Clock::now();
          last_flops = ops::profile::flops_counted();
        }, after_prompts);
      });
      // After the last step, generate() decodes the latents (and makes the 8-bit image, a negligible pass).
      dec.add(since(last), ops::profile::flops_counted() - last_flops);
      memstat("VAE decode");
      if (last_run && ops::profile::enabled()) {
        std::fprintf(stderr, "== VAE decode (last run)\n%s", ops::profile::table().c_str());
        ops::profile::reset();
      }
    }
    const double peak_rss = peak_rss_gb();

    if (reference) {  // each stage once on the scalar twins of the ops
      ops::ScopedPrecision plain(ops::Precision::Reference);
      Stage e;
      measure(e, [&] { sd.encode_prompt(r.prompt, r); });
      GenerateRequest one = r;
      one.steps = 1;
      const auto t0 = Clock::now();
      double to_step = 0;
      sd.generate(one, [&](const StepProgress&) { to_step = since(t0); });
      const double to_end = since(t0);
      enc.reference_s = median(e.seconds);
      step.reference_s = to_step - 2 * enc.reference_s;  // generate encodes the prompt and the negative prompt first
      dec.reference_s = to_end - to_step;                 // and decodes after the last step
    }

    std::printf("fp32 FMA peak, measured now: %.1f GFLOP/s (%s, %d threads)\n", peak.flops_per_s * 1e-9, peak.isa,
                peak.threads);
    std::printf("other peaks, measured now: bf16 %.1f GFLOP/s (%s), fp16 %.1f GFLOP/s (%s), int8 %.1f GOP/s (%s)\n",
                bf16_peak.flops_per_s * 1e-9, bf16_peak.isa, fp16_peak.flops_per_s * 1e-9, fp16_peak.isa,
                int8_peak.flops_per_s * 1e-9, int8_peak.isa);
    // The share of the peak of the arithmetic the products ran in (ops::precision_used: fast falls back to exact
    // on a CPU without a fast path). AMX's tile peak is not measured: on AMX CPUs the bf16 figure is vdpbf16ps's.
    const std::string used = ops::precision_used();
    const double mode_peak = used == "fast"   ? bf16_peak.flops_per_s
                             : used == "int8" ? int8_peak.flops_per_s
                                              : peak.flops_per_s;
    std::printf("model %s (%s), %dx%d, %d steps, CFG 7, Euler, %d threads, %d runs, %s mode\n", args[0].c_str(),
                family_name(sd.family()), size, size, steps, num_threads(), runs, mode.c_str());
    std::printf("| stage | median s | GFLOP | GFLOP/s | %% of peak | %% of %s peak | reference s | speed-up |\n"
                "|---|---|---|---|---|---|---|---|\n",
                used == "fast" ? "bf16" : used == "int8" ? "int8" : "fp32");
    std::printf("| load | %.2f | | | | | | |\n", load_s);
    print_row("text encoding (1 prompt)", enc, peak.flops_per_s, mode_peak);
    if (!first_steps.seconds.empty())
      print_row(steps > 2 ? "sampling steps 1-2, first image (prepare weights)" : "sampling steps, first image (prepare weights)",
                first_steps, peak.flops_per_s, mode_peak);
    if (!later_first_steps.seconds.empty())
      print_row("sampling steps 1-2, later images", later_first_steps, peak.flops_per_s, mode_peak);
    print_row(steps > 2  ? "sampling step 3+ (UNet on the CFG batch of 2)"
              : runs > 1 ? "sampling step, images 2+ (UNet on the CFG batch of 2)"
                         : "sampling step (UNet on the CFG batch of 2)",
              step, peak.flops_per_s, mode_peak);
    print_row("VAE decode", dec, peak.flops_per_s, mode_peak);
    const std::string whole_name = "whole txt2img (" + std::to_string(steps) + " steps, decode included)";
    print_row(whole_name.c_str(), whole, peak.flops_per_s, mode_peak);
    std::printf("| peak RSS | %.2f GB | | | | | | |\n", peak_rss);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
