// Stage timings of a whole model, from the public pipeline API: load, text encoding (one 77-token prompt),
// sampling steps (each is one UNet evaluation on the [uncond, cond] batch), VAE decode, and the process's peak RSS.
//   sd_stages_bench MODEL TOKENIZER_DIR [SIZE=512] [STEPS=4] [RUNS=3] [default|low-memory]
// Prints one table; figures are medians over RUNS (steps: over every step of every run).
#include <sys/resource.h>

#include <algorithm>
#include <cstdlib>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/threading.h"
#include "ops/ops.h"
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
double peak_rss_gb();
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
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  const double cpu = double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
  std::fprintf(stderr, "cpu %7.2f s | ", cpu - last_cpu);
  last_cpu = cpu;
  std::fprintf(stderr, "mem after %-14s rss %.2f GB, peak %.2f GB, kept weights %.2f GB (%zu), free-block cache %.2f GB\n",
               stage, rss_gb(), peak_rss_gb(), ops::default_weight_cache().bytes() / 1073741824.0,
               ops::default_weight_cache().entries(), cached_memory_bytes() / 1073741824.0);
}
double peak_rss_gb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0 / 1024.0;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL TOKENIZER_DIR [SIZE=512] [STEPS=4] [RUNS=3] [default|low-memory]\n", argv[0]);
    return 2;
  }
  try {
    int size = argc > 3 ? std::stoi(argv[3]) : 512, steps = argc > 4 ? std::stoi(argv[4]) : 4;
    int runs = argc > 5 ? std::stoi(argv[5]) : 3;
    auto t = Clock::now();
    PipelineOptions po;
    po.model = argv[1];
    po.tokenizer = argv[2];
    const std::string mode = argc > 6 ? argv[6] : "default";
    if (mode != "default" && mode != "low-memory") throw std::runtime_error("mode must be default or low-memory");
    po.low_memory = mode == "low-memory";
    StableDiffusion sd = StableDiffusion::load(po);
    double load_s = since(t);

    GenerateRequest r;
    r.prompt = "a photograph of an astronaut riding a horse on the moon, highly detailed, 8k";
    r.negative_prompt = "blurry";
    r.width = r.height = size;
    r.steps = steps;
    r.cfg_scale = 7.0;
    r.sampler = "Euler";
    std::vector<double> enc, step, dec, total;
    for (int i = 0; i < runs; ++i) {
      t = Clock::now();
      sd.encode_prompt(r.prompt, r);
      enc.push_back(since(t));
      memstat("text encoding");
      r.seed = uint64_t(i);
      const bool last_run = i == runs - 1;
      if (last_run) ops::profile::reset();  // PIGMENT_PROFILE=1: per-op tables of the last run's stages
      auto start = Clock::now(), last = start;
      GenerateResult res = sd.generate(r, [&](const StepProgress&) {
        step.push_back(since(last));
        memstat("step");
        last = Clock::now();
      });
      total.push_back(since(start));
      Tensor latents = ops::scale(res.latents, 1.f / sd.vae().scaling_factor());
      memory_phase_boundary();
      if (last_run && ops::profile::enabled()) {
        std::fprintf(stderr, "== sampling (%d steps, last run)\n%s", steps, ops::profile::table().c_str());
        ops::profile::reset();
      }
      t = Clock::now();
      sd.vae().decode(latents, decode_tiling(po.low_memory));
      dec.push_back(since(t));
      memstat("VAE decode");
      if (last_run && ops::profile::enabled()) {
        std::fprintf(stderr, "== VAE decode (last run)\n%s", ops::profile::table().c_str());
        ops::profile::reset();
      }
    }
    std::printf("model %s (%s), %dx%d, %d steps, CFG 7, %d threads, %d runs, %s mode\n", argv[1],
                family_name(sd.family()), size, size, steps, num_threads(), runs, mode.c_str());
    std::printf("| stage | median s |\n|---|---|\n");
    std::printf("| load | %.2f |\n| text encoding (1 prompt) | %.3f |\n| sampling step (UNet x2 batch) | %.2f |\n",
                load_s, median(enc), median(step));
    std::printf("| VAE decode | %.2f |\n| whole txt2img (%d steps, decode included) | %.2f |\n", median(dec), steps,
                median(total));
    std::printf("| peak RSS | %.2f GB |\n", peak_rss_gb());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
