// Stage timings of a whole model, from the public pipeline API: load, text encoding (one 77-token prompt),
// sampling steps (each is one UNet evaluation on the [uncond, cond] batch), VAE decode, and the process's peak RSS.
//   sd_stages_bench MODEL TOKENIZER_DIR [SIZE=512] [STEPS=4] [RUNS=3]
// Prints one table; figures are medians over RUNS (steps: over every step of every run).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "core/threading.h"
#include "ops/ops.h"
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
}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL TOKENIZER_DIR [SIZE=512] [STEPS=4] [RUNS=3]\n", argv[0]);
    return 2;
  }
  try {
    int size = argc > 3 ? std::stoi(argv[3]) : 512, steps = argc > 4 ? std::stoi(argv[4]) : 4;
    int runs = argc > 5 ? std::stoi(argv[5]) : 3;
    auto t = Clock::now();
    PipelineOptions po;
    po.model = argv[1];
    po.tokenizer = argv[2];
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
      r.seed = uint64_t(i);
      auto start = Clock::now(), last = start;
      GenerateResult res = sd.generate(r, [&](const StepProgress&) {
        step.push_back(since(last));
        last = Clock::now();
      });
      total.push_back(since(start));
      Tensor latents = ops::scale(res.latents, 1.f / sd.vae().scaling_factor());
      t = Clock::now();
      sd.vae().decode(latents);
      dec.push_back(since(t));
    }
    std::printf("model %s (%s), %dx%d, %d steps, CFG 7, %d threads, %d runs\n", argv[1], family_name(sd.family()), size,
                size, steps, num_threads(), runs);
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
