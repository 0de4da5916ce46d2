// Precision::Fast against the float32 path on one txt2img: the same request (seed, sampler, steps) run once per
// precision in this process, then the error of the fast run — PSNR of the decoded image (float pixels in [0, 1] and
// the 8-bit PNG pixels) and max |Δ| of the final latents — beside each precision's median wall and CPU seconds per
// sampling step (each step is one UNet evaluation on the CFG batch of 2) and of the VAE decode.
//   precision_bench MODEL TOKENIZER_DIR [SIZE=512] [STEPS=20] [SAMPLER=Euler]
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/threading.h"
#include "ops/precision.h"
#include "pipelines/stable_diffusion.h"

using namespace pigment;
using Clock = std::chrono::steady_clock;

namespace {
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
double cpu_now() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}
struct Run {
  GenerateResult result;
  double step_wall = 0, step_cpu = 0, total_wall = 0;
};
Run run(const StableDiffusion& sd, const GenerateRequest& r, ops::Precision p) {
  ops::ScopedPrecision scoped(p);
  Run out;
  std::vector<double> wall, cpu;
  auto start = Clock::now(), last = start;
  double last_cpu = cpu_now();
  out.result = sd.generate(r, [&](const StepProgress&) {
    wall.push_back(since(last));
    cpu.push_back(cpu_now() - last_cpu);
    last = Clock::now();
    last_cpu = cpu_now();
  });
  out.total_wall = since(start);
  // The first step also prepares weights: leave it out of the median when there are others.
  if (wall.size() > 1) wall.erase(wall.begin()), cpu.erase(cpu.begin());
  out.step_wall = median(wall);
  out.step_cpu = median(cpu);
  return out;
}
double psnr(const float* a, const float* b, size_t n, double peak) {
  double se = 0;
  for (size_t i = 0; i < n; ++i) se += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  const double mse = se / double(n);
  return mse > 0 ? 10 * std::log10(peak * peak / mse) : INFINITY;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL TOKENIZER_DIR [SIZE=512] [STEPS=20] [SAMPLER=Euler]\n", argv[0]);
    return 2;
  }
  try {
    PipelineOptions po;
    po.model = argv[1];
    po.tokenizer = argv[2];
    StableDiffusion sd = StableDiffusion::load(po);
    GenerateRequest r;
    r.prompt = "a photograph of an astronaut riding a horse on the moon, highly detailed, 8k";
    r.negative_prompt = "blurry";
    r.width = r.height = argc > 3 ? std::stoi(argv[3]) : 512;
    r.steps = argc > 4 ? std::stoi(argv[4]) : 20;
    r.sampler = argc > 5 ? argv[5] : "Euler";
    r.cfg_scale = 7.0;
    r.seed = 42;
    const Run a = run(sd, r, ops::Precision::Fp32);
    const Run b = run(sd, r, ops::Precision::Fast);
    const Tensor &la = a.result.latents, &lb = b.result.latents;
    double max_lat = 0, lat_scale = 0;
    for (int64_t i = 0; i < la.numel(); ++i) {
      max_lat = std::max(max_lat, double(std::fabs(la.f32()[i] - lb.f32()[i])));
      lat_scale = std::max(lat_scale, double(std::fabs(la.f32()[i])));
    }
    const Tensor &pa = a.result.pixels, &pb = b.result.pixels;
    const double psnr_f = psnr(pa.f32(), pb.f32(), size_t(pa.numel()), 1.0);
    std::vector<float> ia(a.result.image.pixels.begin(), a.result.image.pixels.end()),
        ib(b.result.image.pixels.begin(), b.result.image.pixels.end());
    const double psnr_8 = psnr(ia.data(), ib.data(), ia.size(), 255.0);
    std::printf("model %s, %dx%d, %d steps %s, CFG 7, %d threads, fast path %s\n", argv[1], r.width, r.height, r.steps,
                r.sampler.c_str(), num_threads(), ops::fast_precision_available() ? ops::fast_path_name(ops::fast_path()) : "unavailable (= fp32)");
    std::printf("| precision | s/step wall (median) | s/step CPU | whole txt2img s (wall) |\n|---|---|---|---|\n");
    std::printf("| fp32 | %.2f | %.2f | %.1f |\n| fast | %.2f | %.2f | %.1f |\n", a.step_wall, a.step_cpu, a.total_wall,
                b.step_wall, b.step_cpu, b.total_wall);
    std::printf("speed-up per step: %.2fx wall, %.2fx CPU\n", a.step_wall / b.step_wall, a.step_cpu / b.step_cpu);
    std::printf("fast vs fp32 after %d steps: image PSNR %.2f dB (float pixels), %.2f dB (8-bit); final latents max "
                "|diff| %.4g (max |latent| %.3g)\n",
                r.steps, psnr_f, psnr_8, max_lat, lat_scale);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
