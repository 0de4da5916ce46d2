// Precision::Fast against the float32 path on one txt2img: the same request (seed, sampler, steps) run once per
// precision in this process, then the error of the fast run — PSNR of the decoded image (float pixels in [0, 1] and
// the 8-bit PNG pixels) and max |Δ| of the final latents — beside each precision's seconds per sampling step (each
// step is one UNet evaluation on the CFG batch of 2; median and best, wall clock and process CPU time) and of the VAE
// decode, the step's work (GFLOP counted from the ops' shapes, 2 per multiply-add of the direct algorithm) and its
// rate as a share of the fp32 FMA and bf16 dot-product peaks measured in the same process. On a machine loaded by
// other work the wall figures mean little: the CPU-time rate (flop per CPU second × threads, comparable to the peaks,
// which are measured on each thread's CPU clock) and the best step are the better measures; the CPU model and the
// load average are printed beside them.
//   precision_bench MODEL TOKENIZER_DIR [SIZE=512] [STEPS=20] [SAMPLER=Euler] [fast|int8]
// The last argument picks the precision compared with fp32 (default fast).
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "core/threading.h"
#include "fma_peak.h"
#include "ops/precision.h"
#include "ops/profile.h"
#include "pipelines/stable_diffusion.h"

using namespace pigment;
using Clock = std::chrono::steady_clock;

namespace {
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
double cpu_now() { return ops::profile::process_cpu_seconds(); }
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}
double best(const std::vector<double>& v) { return v.empty() ? 0 : *std::min_element(v.begin(), v.end()); }
std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "?";
}
double load_average() {
  double l[1] = {0};
  return getloadavg(l, 1) == 1 ? l[0] : -1;
}
struct Run {
  GenerateResult result;
  std::vector<double> wall, cpu;  // per step, the first left out when there are others (it also prepares weights)
  double step_gflop = 0, decode_wall = 0, decode_cpu = 0, total_wall = 0;
};
Run run(const StableDiffusion& sd, const GenerateRequest& r, ops::Precision p) {
  ops::ScopedPrecision scoped(p);
  Run out;
  std::vector<double> flops;
  auto start = Clock::now(), last = start;
  double last_cpu = cpu_now(), last_flops = ops::profile::flops_counted();
  out.result = sd.generate(r, [&](const StepProgress&) {
    out.wall.push_back(since(last));
    out.cpu.push_back(cpu_now() - last_cpu);
    flops.push_back(ops::profile::flops_counted() - last_flops);
    last = Clock::now();
    last_cpu = cpu_now();
    last_flops = ops::profile::flops_counted();
  });
  out.decode_wall = since(last);  // after the last step: the VAE decode (and the 8-bit image)
  out.decode_cpu = cpu_now() - last_cpu;
  out.total_wall = since(start);
  if (out.wall.size() > 1) out.wall.erase(out.wall.begin()), out.cpu.erase(out.cpu.begin());
  out.step_gflop = median(flops) * 1e-9;
  return out;
}
double psnr(const float* a, const float* b, size_t n, double peak) {
  double se = 0;
  for (size_t i = 0; i < n; ++i) se += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  const double mse = se / double(n);
  return mse > 0 ? 10 * std::log10(peak * peak / mse) : INFINITY;
}
void print_row(const char* name, const Run& x, double fp32_peak, double bf16_peak) {
  // flop per CPU second × threads: the rate the threads reach while they run, comparable to the peaks.
  const double rate_cpu = x.step_gflop / best(x.cpu) * num_threads();
  std::printf("| %s | %.2f / %.2f | %.2f / %.2f | %.0f (%.0f %% / %.0f %%) | %.0f | %.2f / %.2f | %.1f |\n", name,
              best(x.wall), median(x.wall), best(x.cpu), median(x.cpu), rate_cpu, 100 * rate_cpu / fp32_peak,
              bf16_peak > 0 ? 100 * rate_cpu / bf16_peak : 0.0, x.step_gflop / best(x.wall), x.decode_wall,
              x.decode_cpu, x.total_wall);
}
}  // namespace

int main(int argc, char** argv) {
  pigment::use_runtime_settings(argv);  // core/threading.h
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL TOKENIZER_DIR [SIZE=512] [STEPS=20] [SAMPLER=Euler]\n", argv[0]);
    return 2;
  }
  try {
    const double load_start = load_average();
    const bench::FmaPeak fp32 = bench::measure_fma_peak(), bf16 = bench::measure_bf16_peak();
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
    const ops::Precision other = argc > 6 ? ops::parse_precision(argv[6]) : ops::Precision::Fast;
    const std::string name = ops::precision_name(other);
    const Run b = run(sd, r, other);
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
    std::printf("CPU %s, %d threads; load average %.1f at start, %.1f at end; fp32 FMA peak %.0f GFLOP/s (%s), bf16 "
                "dot-product peak %.0f GFLOP/s (%s), measured now\n",
                cpu_model().c_str(), num_threads(), load_start, load_average(), fp32.flops_per_s * 1e-9, fp32.isa,
                bf16.flops_per_s * 1e-9, bf16.isa);
    std::printf("model %s, %dx%d, %d steps %s, CFG 7, fast path %s\n", argv[1], r.width, r.height, r.steps,
                r.sampler.c_str(),
                ops::fast_precision_available() ? ops::fast_path_name(ops::fast_path()) : "unavailable (= fp32)");
    std::printf("| precision | s/step wall best / median | s/step CPU best / median | GFLOP/s by CPU time (%% fp32 / "
                "%% bf16 peak) | GFLOP/s wall (best) | VAE decode s wall / CPU | whole txt2img s wall |\n"
                "|---|---|---|---|---|---|---|\n");
    print_row("fp32", a, fp32.flops_per_s * 1e-9, bf16.flops_per_s * 1e-9);
    print_row(name.c_str(), b, fp32.flops_per_s * 1e-9, bf16.flops_per_s * 1e-9);
    std::printf("step: %.1f GFLOP (fp32), %.1f GFLOP (%s)\n", a.step_gflop, b.step_gflop, name.c_str());
    std::printf("speed-up per step (best): %.2fx wall, %.2fx CPU; medians: %.2fx wall, %.2fx CPU; VAE decode: %.2fx "
                "CPU\n",
                best(a.wall) / best(b.wall), best(a.cpu) / best(b.cpu), median(a.wall) / median(b.wall),
                median(a.cpu) / median(b.cpu), a.decode_cpu / b.decode_cpu);
    std::printf("%s vs fp32 after %d steps: image PSNR %.2f dB (float pixels), %.2f dB (8-bit); final latents max "
                "|diff| %.4g (max |latent| %.3g)\n",
                name.c_str(), r.steps, psnr_f, psnr_8, max_lat, lat_scale);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
