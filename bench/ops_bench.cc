// Microbenchmarks of the ops on the shapes of SD1.5's UNet at 64x64 latents (512² images) and its VAE, with a
// fp32 FMA peak and a bf16 dot-product peak measured in the same process, so every figure is also shown as a share
// of what the cores can do. The `/fast` rows run the products under Precision::Fast (ops/precision.h; they equal
// the fp32 rows where the CPU has no fast path), the `/int8` rows under Precision::Int8 (`/int8_N2`: a batch of 2).
// Run through bench/ops.sh for a table; GFLOP/s counts 2 per multiply-add (Winograd: the direct algorithm's work).
// --cpu_time times by process CPU time (see main).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "fma_peak.h"
#include "ops/backward.h"
#include "ops/isa_cap.h"
#include "ops/ops.h"
#include "ops/precision.h"
#include "core/threading.h"

namespace {
using namespace pigment;

double g_peak = 0;        // flop/s, all threads
double g_bf16_peak = 0;   // vdpbf16ps flop/s, all threads (0 without AVX-512 BF16)
bool g_cpu_time = false;  // --cpu_time: rates per process CPU second instead of per wall-clock second


Tensor randn(Shape s, uint32_t seed, float stddev = 1.f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.f, stddev);
  Tensor t = Tensor::empty(std::move(s));
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = d(g);
  return t;
}

void set_flops(benchmark::State& state, double flops_per_iter) {
  state.counters["GFLOP/s"] = benchmark::Counter(flops_per_iter * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  if (g_peak > 0)
    state.counters["%peak"] =
        benchmark::Counter(100.0 * flops_per_iter / g_peak, benchmark::Counter::kIsIterationInvariantRate);
  if (g_bf16_peak > 0)
    state.counters["%bf16peak"] =
        benchmark::Counter(100.0 * flops_per_iter / g_bf16_peak, benchmark::Counter::kIsIterationInvariantRate);
}

// x [1, C, H, H] * w [O, C, k, k], padding k/2
void BM_Conv2d(benchmark::State& state, int64_t C, int64_t O, int64_t H, int64_t k, int64_t s, bool winograd,
               ops::Precision precision, int64_t N = 1) {
  ops::ScopedPrecision prec(precision);
  ops::Conv2dOptions opt;
  opt.algorithm = winograd ? ops::ConvAlgorithm::Winograd : ops::ConvAlgorithm::Direct;
  const int pad = int(k / 2);
  Tensor x = randn({N, C, H, H}, 1);
  Tensor w = randn({O, C, k, k}, 2, 1.f / std::sqrt(float(C * k * k)));
  Tensor b = randn({O}, 3);
  const auto p = ops::Conv2dParams::same(pad, int(s));
  Tensor y = ops::conv2d(x, w, &b, p, opt);  // warm: primitive and prepared weights
  for (auto _ : state) benchmark::DoNotOptimize(y = ops::conv2d(x, w, &b, p, opt));
  const double Ho = double(y.dim(2)), Wo = double(y.dim(3));
  set_flops(state, 2.0 * N * O * Ho * Wo * C * k * k);
}

// x [M, K] · w [N, K]ᵀ + b
void BM_Linear(benchmark::State& state, int64_t M, int64_t K, int64_t N, ops::Precision precision) {
  ops::ScopedPrecision prec(precision);
  Tensor x = randn({M, K}, 4);
  Tensor w = randn({N, K}, 5, 1.f / std::sqrt(float(K)));
  Tensor b = randn({N}, 6);
  Tensor y = ops::linear(x, w, &b);
  for (auto _ : state) benchmark::DoNotOptimize(y = ops::linear(x, w, &b));
  set_flops(state, 2.0 * M * K * N);
}

// The backward of x [M, K] · w [N, K]ᵀ: dx = dy · w (input) or dw = dyᵀ · x (weight), dy [M, N].
void BM_LinearBackward(benchmark::State& state, int64_t M, int64_t K, int64_t N, bool weight, ops::Precision precision) {
  ops::ScopedPrecision prec(precision);
  Tensor x = randn({M, K}, 4), dy = randn({M, N}, 7);
  Tensor w = randn({N, K}, 5, 1.f / std::sqrt(float(K)));
  Tensor g = weight ? ops::linear_backward_weight(dy, x) : ops::linear_backward_input(dy, w);
  for (auto _ : state)
    benchmark::DoNotOptimize(g = weight ? ops::linear_backward_weight(dy, x) : ops::linear_backward_input(dy, w));
  set_flops(state, 2.0 * M * K * N);
}

// The backward of a 3x3 "same" convolution [1, C, H, H] → [1, O, H, H]: dx (input) or dw (weight).
void BM_ConvBackward(benchmark::State& state, int64_t C, int64_t O, int64_t H, bool weight, ops::Precision precision) {
  ops::ScopedPrecision prec(precision);
  Tensor x = randn({1, C, H, H}, 1), dy = randn({1, O, H, H}, 7);
  Tensor w = randn({O, C, 3, 3}, 2, 1.f / std::sqrt(float(C * 9)));
  const auto p = ops::Conv2dParams::same(1);
  auto run = [&] {
    return weight ? ops::conv2d_backward_weight(dy, x, w.shape(), p) : ops::conv2d_backward_input(dy, w, x.shape(), p);
  };
  Tensor g = run();
  for (auto _ : state) benchmark::DoNotOptimize(g = run());
  set_flops(state, 2.0 * O * H * H * C * 9);
}

// Tq queries, Tk keys, H heads of D dims, batch 1
void BM_Attention(benchmark::State& state, int64_t Tq, int64_t Tk, int64_t H, int64_t D, ops::Precision precision) {
  ops::ScopedPrecision prec(precision);
  Tensor q = randn({1, Tq, H * D}, 7), k = randn({1, Tk, H * D}, 8), v = randn({1, Tk, H * D}, 9);
  const float scale = 1.f / std::sqrt(float(D));
  Tensor y;
  for (auto _ : state) benchmark::DoNotOptimize(y = ops::attention(q, k, v, int(H), scale));
  set_flops(state, 4.0 * Tq * Tk * H * D);
}

// Memory-bound ops: bytes read + written per call as a rate.
void set_bytes(benchmark::State& state, double bytes) {
  state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_GroupNormSilu(benchmark::State& state, int64_t C, int64_t H) {
  Tensor x = randn({1, C, H, H}, 10), g = randn({C}, 11), b = randn({C}, 12);
  Tensor y;
  for (auto _ : state) benchmark::DoNotOptimize(y = ops::group_norm_silu(x, 32, g, b, 1e-5f));
  set_bytes(state, 3.0 * x.nbytes());  // two reads for the statistics, one write
}

void BM_AddBroadcast(benchmark::State& state, int64_t C, int64_t H) {
  Tensor x = randn({1, C, H, H}, 13), t = randn({1, C, 1, 1}, 14);
  Tensor y;
  for (auto _ : state) benchmark::DoNotOptimize(y = ops::add(x, t));
  set_bytes(state, 2.0 * x.nbytes());
}

void BM_Geglu(benchmark::State& state, int64_t rows, int64_t d) {
  Tensor x = randn({rows, 2 * d}, 15);
  Tensor y;
  for (auto _ : state) benchmark::DoNotOptimize(y = ops::geglu(x));
  set_bytes(state, 1.5 * x.nbytes());
}

void BM_LayerNorm(benchmark::State& state, int64_t rows, int64_t d) {
  Tensor x = randn({rows, d}, 16), g = randn({d}, 17), b = randn({d}, 18);
  Tensor y;
  for (auto _ : state) benchmark::DoNotOptimize(y = ops::layer_norm(x, g, b, 1e-5f));
  set_bytes(state, 2.0 * x.nbytes());
}

void BM_Upsample(benchmark::State& state, int64_t C, int64_t H) {
  Tensor x = randn({1, C, H, H}, 19);
  Tensor y;
  for (auto _ : state) benchmark::DoNotOptimize(y = ops::upsample_nearest2x(x));
  set_bytes(state, 5.0 * x.nbytes());
}

void BM_NchwToNlc(benchmark::State& state, int64_t C, int64_t H) {
  Tensor x = randn({1, C, H, H}, 20);
  Tensor y;
  for (auto _ : state) benchmark::DoNotOptimize(y = ops::nchw_to_nlc(x));
  set_bytes(state, 2.0 * x.nbytes());
}

void register_all() {
  auto add = [](const std::string& name, auto fn, benchmark::TimeUnit unit) {
    auto* b = benchmark::RegisterBenchmark(name.c_str(), fn)->Unit(unit);
    if (g_cpu_time)
      b->MeasureProcessCPUTime();
    else
      b->UseRealTime();
  };
  auto conv = [&](const std::string& name, int64_t C, int64_t O, int64_t H, int64_t k, int64_t s, bool wino) {
    using P = ops::Precision;
    add(name + "/direct", [=](benchmark::State& st) { BM_Conv2d(st, C, O, H, k, s, false, P::Fp32); },
        benchmark::kMillisecond);
    if (wino)
      add(name + "/winograd", [=](benchmark::State& st) { BM_Conv2d(st, C, O, H, k, s, true, P::Fp32); },
          benchmark::kMillisecond);
    add(name + "/fast", [=](benchmark::State& st) { BM_Conv2d(st, C, O, H, k, s, false, P::Fast); },
        benchmark::kMillisecond);
    add(name + "/int8", [=](benchmark::State& st) { BM_Conv2d(st, C, O, H, k, s, false, P::Int8); },
        benchmark::kMillisecond);
    // The UNet's CFG batch of 2 (one input scale per image).
    add(name + "/int8_N2", [=](benchmark::State& st) { BM_Conv2d(st, C, O, H, k, s, false, P::Int8, 2); },
        benchmark::kMillisecond);
  };
  conv("conv/unet_conv_in_4-320_64", 4, 320, 64, 3, 1, true);
  conv("conv/unet_320_64", 320, 320, 64, 3, 1, true);
  conv("conv/unet_640_32", 640, 640, 32, 3, 1, true);
  conv("conv/unet_1280_16", 1280, 1280, 16, 3, 1, true);
  conv("conv/unet_1280_8", 1280, 1280, 8, 3, 1, true);
  conv("conv/unet_down_320_64_s2", 320, 320, 64, 3, 2, false);
  conv("conv/unet_shortcut_1x1_640-320_32", 640, 320, 32, 1, 1, false);
  conv("conv/vae_512_64", 512, 512, 64, 3, 1, true);
  conv("conv/vae_256_256", 256, 256, 256, 3, 1, true);
  conv("conv/vae_128_512", 128, 128, 512, 3, 1, true);
  auto lin = [&](const std::string& name, int64_t M, int64_t K, int64_t N) {
    for (ops::Precision p : {ops::Precision::Fp32, ops::Precision::Fast, ops::Precision::Int8})
      add(p == ops::Precision::Fp32 ? name : name + "/" + ops::precision_name(p),
          [=](benchmark::State& st) { BM_Linear(st, M, K, N, p); }, benchmark::kMillisecond);
  };
  lin("linear/attn_proj_4096x320-320", 4096, 320, 320);
  lin("linear/ff_4096x320-1280", 4096, 320, 1280);
  lin("linear/geglu_proj_4096x320-2560", 4096, 320, 2560);
  lin("linear/ff_out_4096x1280-320", 4096, 1280, 320);
  lin("linear/cross_kv_77x768-320", 77, 768, 320);
  lin("linear/attn_proj_1024x640-640", 1024, 640, 640);
  lin("linear/geglu_proj_1024x640-5120", 1024, 640, 5120);
  lin("linear/ff_out_1024x2560-640", 1024, 2560, 640);
  lin("linear/attn_proj_256x1280-1280", 256, 1280, 1280);
  // Backward products, among them a rank-16 LoRA's (down: K 320 → N 16; up: K 16 → N 320).
  // NAME (fp32) and NAME/fast rows of one backward benchmark.
  auto fp32_and_fast = [&](const std::string& name, auto bench) {
    for (ops::Precision p : {ops::Precision::Fp32, ops::Precision::Fast})
      add(p == ops::Precision::Fp32 ? name : name + "/" + ops::precision_name(p),
          [=](benchmark::State& st) { bench(st, p); }, benchmark::kMillisecond);
  };
  auto linb = [&](const std::string& name, int64_t M, int64_t K, int64_t N, bool weight) {
    fp32_and_fast(name, [=](benchmark::State& st, ops::Precision p) { BM_LinearBackward(st, M, K, N, weight, p); });
  };
  linb("linear_bwd_weight/attn_proj_4096x320-320", 4096, 320, 320, true);
  linb("linear_bwd_input/attn_proj_4096x320-320", 4096, 320, 320, false);
  linb("linear_bwd_weight/ff_4096x320-1280", 4096, 320, 1280, true);
  linb("linear_bwd_input/ff_4096x320-1280", 4096, 320, 1280, false);
  linb("linear_bwd_weight/geglu_proj_1024x640-5120", 1024, 640, 5120, true);
  linb("linear_bwd_input/geglu_proj_1024x640-5120", 1024, 640, 5120, false);
  linb("linear_bwd_weight/attn_proj_256x1280-1280", 256, 1280, 1280, true);
  linb("linear_bwd_input/attn_proj_256x1280-1280", 256, 1280, 1280, false);
  linb("linear_bwd_weight/lora_down_4096x320-16", 4096, 320, 16, true);
  linb("linear_bwd_weight/lora_up_4096x16-320", 4096, 16, 320, true);
  linb("linear_bwd_weight/lora_up_4096x16-2560", 4096, 16, 2560, true);
  linb("linear_bwd_input/lora_up_4096x16-320", 4096, 16, 320, false);
  linb("linear_bwd_input/lora_down_4096x320-16", 4096, 320, 16, false);
  auto convb = [&](const std::string& name, int64_t C, int64_t O, int64_t H, bool weight) {
    fp32_and_fast(name, [=](benchmark::State& st, ops::Precision p) { BM_ConvBackward(st, C, O, H, weight, p); });
  };
  convb("conv_bwd_input/unet_320_64", 320, 320, 64, false);
  convb("conv_bwd_weight/unet_320_64", 320, 320, 64, true);
  convb("conv_bwd_input/unet_640_32", 640, 640, 32, false);
  convb("conv_bwd_weight/unet_640_32", 640, 640, 32, true);
  convb("conv_bwd_input/unet_1280_16", 1280, 1280, 16, false);
  convb("conv_bwd_weight/unet_1280_16", 1280, 1280, 16, true);
  convb("conv_bwd_input/unet_1280_8", 1280, 1280, 8, false);
  convb("conv_bwd_weight/unet_1280_8", 1280, 1280, 8, true);
  lin("linear/lora_down_4096x320-16", 4096, 320, 16);
  lin("linear/lora_up_4096x16-320", 4096, 16, 320);
  lin("linear/lora_up_1024x16-5120", 1024, 16, 5120);
  auto attn = [&](const std::string& name, int64_t Tq, int64_t Tk, int64_t H, int64_t D) {
    for (ops::Precision p : {ops::Precision::Fp32, ops::Precision::Fast})  // fast: bf16 products where the CPU has them
      add(p == ops::Precision::Fp32 ? name : name + "/" + ops::precision_name(p),
          [=](benchmark::State& st) { BM_Attention(st, Tq, Tk, H, D, p); }, benchmark::kMillisecond);
  };
  attn("attention/self_4096x4096_8x40", 4096, 4096, 8, 40);
  attn("attention/cross_4096x77_8x40", 4096, 77, 8, 40);
  attn("attention/self_1024x1024_8x80", 1024, 1024, 8, 80);
  attn("attention/self_256x256_8x160", 256, 256, 8, 160);
  attn("attention/self_512x512_8x80", 512, 512, 8, 80);  // near where bf16 starts to win (ops/attention_bf16.h)
  auto mem = [&](const std::string& name, void (*fn)(benchmark::State&, int64_t, int64_t), int64_t a, int64_t b) {
    add(name, [=](benchmark::State& st) { fn(st, a, b); }, benchmark::kMicrosecond);
  };
  mem("mem/group_norm_silu_320_64", BM_GroupNormSilu, 320, 64);
  mem("mem/group_norm_silu_128_512", BM_GroupNormSilu, 128, 512);
  mem("mem/add_bcast_320_64", BM_AddBroadcast, 320, 64);
  mem("mem/geglu_4096x1280", BM_Geglu, 4096, 1280);
  mem("mem/layer_norm_4096x320", BM_LayerNorm, 4096, 320);
  mem("mem/upsample_1280_16", BM_Upsample, 1280, 16);
  mem("mem/nchw_to_nlc_320_64", BM_NchwToNlc, 320, 64);
}
}  // namespace

int main(int argc, char** argv) {
  pigment::use_runtime_settings(argv);  // core/threading.h
  // --cpu_time: time by process CPU time. With OMP_NUM_THREADS=1 this gives per-core figures that preemption on a
  // busy machine does not distort (wall-clock figures there are meaningless).
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--cpu_time") {
      g_cpu_time = true;
      for (int j = i; j + 1 < argc; ++j) argv[j] = argv[j + 1];
      --argc;
      break;
    }
  const bench::FmaPeak peak = bench::measure_fma_peak();
  g_peak = peak.flops_per_s;
  const char* isa = peak.isa;
  std::printf("fp32 FMA peak: %.1f GFLOP/s (%s, %d threads)\n", g_peak * 1e-9, isa, peak.threads);
  const bench::FmaPeak bf16_peak = bench::measure_bf16_peak();
  g_bf16_peak = bf16_peak.flops_per_s;
  std::printf("bf16 dot-product peak: %.1f GFLOP/s (%s)\n", g_bf16_peak * 1e-9, bf16_peak.isa);
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("fp32_fma_peak_gflops", std::to_string(g_peak * 1e-9));
  benchmark::AddCustomContext("fp32_fma_peak_isa", isa);
  benchmark::AddCustomContext("bf16_peak_gflops", std::to_string(g_bf16_peak * 1e-9));
  benchmark::AddCustomContext("fast_path", ops::fast_precision_available() ? "yes" : "no (= fp32)");
  benchmark::AddCustomContext("simd_target", ops::simd_target_name());  // after $PIGMENT_MAX_ISA
  benchmark::AddCustomContext("onednn_isa", ops::onednn_isa_name());
  benchmark::AddCustomContext("threads", std::to_string(omp_get_max_threads()));
  benchmark::AddCustomContext("timing", g_cpu_time ? "process CPU time" : "wall clock");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
