// Training-step benchmark on a whole model (e.g. a full-size random SD1.5 from `pigment init`), batch 1:
//   floor  forward + backward to the input latents through the frozen UNet (no weight gradients): the least any
//          adapter method costs, and what the PyTorch anchor measures
//   lora   a LoRA of rank RANK on every attention projection and feed-forward linear (training/lora.h), with the
//          AdamW step: a real `pigment train --method lora` step minus data loading and the frozen VAE/text encoder
//   full   every UNet weight in float32 with its gradient (no optimizer step, as the anchor)
//   controlnet  `pigment train --method controlnet`'s step minus data loading and the frozen VAE/text encoder: the
//          ControlNet made from the UNet (training/controlnet.cc) on a random control map, its residuals into the
//          frozen UNet, every ControlNet weight's gradient and the AdamW step
// Prints per step: seconds, GFLOP counted by the ops (2 per multiply-add of the direct algorithm; Winograd and the
// backward products count as their direct form), GFLOP/s and its share of the fp32 FMA peak measured by this process
// at start-up; at the end the median step and the peak RSS.
//   hypernetwork  an A1111 hypernetwork (layer structure 1, 2, 1, linear, the widths of every attention context:
//          768, 320, 640, 1280 on SD1) with the AdamW step: a `pigment train --method hypernetwork` step as above
//   train_bench MODEL TOKENIZER_DIR [SIZE=512] [STEPS=3] [floor|lora|full|controlnet|hypernetwork] [RANK=16] [--checkpointing]
// --checkpointing: gradient checkpointing per UNet block (UNetHooks::checkpoint_blocks).
// --mixed-precision no|bf16|both: the products in float32 (default), in bf16 where the CPU has a fast bf16 path
// (ops::Precision::Fast, as `pigment train --mixed-precision bf16`), or both in this process (bf16 first, so that the
// peak RSS after its steps is its own; float32 second). With both, STEPS steps each; the bf16 peak of vdpbf16ps is
// measured too, and each step also gives its process CPU seconds (on a loaded machine the fairer figure).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <set>

#include "core/threading.h"
#include "models/hypernetwork.h"
#include "fma_peak.h"
#include "ops/autograd.h"
#include "ops/fast_products.h"
#include "ops/ops.h"
#include "ops/precision.h"
#include "ops/profile.h"
#include "pipelines/stable_diffusion.h"
#include "sampling/rng.h"
#include "training/diffusion_objective.h"
#include "training/dataset.h"
#include "training/lora.h"
#include "training/method.h"
#include "training/optimizer.h"
#include "training/trainer.h"

using namespace pigment;
using Clock = std::chrono::steady_clock;

namespace {
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
std::string cpu_model_name() {
  std::string line;
  if (FILE* f = std::fopen("/proc/cpuinfo", "r")) {
    char buf[512];
    while (std::fgets(buf, sizeof buf, f))
      if (std::string(buf).rfind("model name", 0) == 0) {
        line = buf;
        line = line.substr(line.find(':') + 2);
        line.pop_back();
        break;
      }
    std::fclose(f);
  }
  return line;
}
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}
std::string load_average() {
  std::string s;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    char buf[128] = {};
    if (std::fgets(buf, sizeof buf, f)) s = buf;
    std::fclose(f);
  }
  if (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}
double peak_rss_gb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0 / 1024.0;
}
}  // namespace

int main(int argc, char** argv) {
  pigment::use_runtime_settings(argv);  // core/threading.h
  bool checkpointing = false;
  std::string mixed = "no";
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::string(argv[i]) == "--checkpointing")
      checkpointing = true;
    else if (std::string(argv[i]) == "--mixed-precision" && i + 1 < argc)
      mixed = argv[++i];
    else
      args.push_back(argv[i]);
  }
  if (mixed != "no" && mixed != "bf16" && mixed != "both") {
    std::fprintf(stderr, "--mixed-precision: no, bf16 or both\n");
    return 2;
  }
  argc = int(args.size());
  argv = args.data();
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL TOKENIZER_DIR [SIZE=512] [STEPS=3] [floor|lora|full|controlnet|hypernetwork] [RANK=16]\n", argv[0]);
    return 2;
  }
  try {
    const int size = argc > 3 ? std::stoi(argv[3]) : 512, steps = argc > 4 ? std::stoi(argv[4]) : 3;
    const std::string mode = argc > 5 ? argv[5] : "lora";
    const int rank = argc > 6 ? std::stoi(argv[6]) : 16;
    if (mode != "floor" && mode != "lora" && mode != "full" && mode != "controlnet" && mode != "hypernetwork")
      throw std::runtime_error("mode: floor, lora, full, controlnet or hypernetwork");
    if (size % 8 || size < 64 || steps < 1) throw std::runtime_error("SIZE: a multiple of 8 from 64; STEPS >= 1");
    const bench::FmaPeak peak = bench::measure_fma_peak();
    const bench::FmaPeak bpeak = bench::measure_bf16_peak();
    std::printf("cpu: %s, %d threads, fp32 FMA peak %.0f GFLOP/s (%s), bf16 peak %.0f GFLOP/s (%s), fast path %s, "
                "load average %s\n",
                cpu_model_name().c_str(), num_threads(), peak.flops_per_s / 1e9, peak.isa, bpeak.flops_per_s / 1e9,
                bpeak.isa, ops::fast_path_name(ops::fast_path()), load_average().c_str());

    PipelineOptions po;
    po.model = argv[1];
    po.tokenizer = argv[2];
    StableDiffusion sd = StableDiffusion::load(po);
    GenerateRequest r;
    r.a1111_syntax = false;
    const Tensor context = sd.encode_prompt("a photograph of an astronaut riding a horse", r).context;

    // What trains.
    ops::autograd::Tape tape;
    std::unique_ptr<training::LoraNetwork> lora;
    std::unique_ptr<UNet> full_unet;
    std::shared_ptr<Hypernetwork> hypernet;
    std::shared_ptr<TensorMap> full_weights;
    std::vector<training::Param> params;
    std::unique_ptr<training::Method> controlnet;
    training::Batch batch;  // controlnet: the control map
    UNetExtras extras;
    extras.hooks.checkpoint_blocks = checkpointing;
    const ModelComponent& uc = sd.base_component("unet");
    if (mode == "lora") {
      training::LoraOptions lo;
      lo.rank = rank;
      lo.alpha = float(rank);
      lo.targets = {"to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2"};
      lora = std::make_unique<training::LoraNetwork>(training::LoraNetwork::create(*uc.tensors, lo, 1));
      for (const auto& [name, t] : lora->parameters()) params.push_back({name, t, Tensor()});
      extras.hooks = lora->hooks();
      extras.hooks.checkpoint_blocks = checkpointing;
    } else if (mode == "hypernetwork") {
      std::set<int64_t> widths;  // every attention context width (to_k inputs), as the training method's default
      for (const auto& [name, t] : *uc.tensors)
        if (name.size() > 12 && name.compare(name.size() - 12, 12, ".to_k.weight") == 0) widths.insert(t.dim(1));
      hypernet = std::make_shared<Hypernetwork>(
          Hypernetwork::create("bench", {widths.begin(), widths.end()}, HypernetworkStructure{}));
      auto g = make_generator("cpu", 1);
      for (auto& [name, t] : hypernet->parameters()) {  // A1111's Normal init: N(0, 0.01) weights, zero biases
        Tensor w = t;
        const Tensor z = g->randn(w.shape());
        const bool bias = name.find(".bias") != std::string::npos;
        for (int64_t i = 0; i < w.numel(); ++i) w.f32()[i] = bias ? 0.f : 0.01f * z.f32()[i];
        params.push_back({name, t, Tensor()});
      }
      extras.hooks.attention_context = hypernetwork_hook({{hypernet, 1.f}});
    } else if (mode == "full") {
      full_weights = std::make_shared<TensorMap>();
      for (const auto& [name, t] : *uc.tensors) (*full_weights)[name] = t.to(DType::F32);
      full_unet = std::make_unique<UNet>(UNetConfig::from_json(uc.config.dump(), uc.source),
                                         Weights(full_weights, uc.source));
      for (auto& [name, t] : *full_weights) params.push_back({name, t, Tensor()});
    } else if (mode == "controlnet") {
      training::TrainOptions to;
      to.method = "controlnet";
      controlnet = training::make_method("controlnet", sd, to);
      params = controlnet->params();
      batch.conditioning = make_generator("cpu", 99)->rand({1, 3, size, size});
    }
    for (const auto& p : params) tape.watch(p.value);
    int64_t trained = 0;
    for (const auto& p : params) trained += p.value.numel();
    std::printf("model %s, %dx%d, mode %s%s%s, %lld trained parameters\n", argv[1], size, size, mode.c_str(),
                mode == "lora" ? (" rank " + std::to_string(rank)).c_str() : "",
                checkpointing ? ", gradient checkpointing" : "", (long long)trained);
    const UNet& unet = full_unet ? *full_unet : sd.unet();
    training::DiffusionObjective objective(schedule::TrainSchedule::from_config(sd.scheduler_config(r)), {});
    training::AdamW adamw({1e-4});

    auto run_steps = [&](ops::Precision precision) {
      const ops::ScopedPrecision scoped(precision);
      const char* name = precision == ops::Precision::Fast ? "bf16" : "fp32";
      std::vector<double> times, cpu_times;
      for (int s = 0; s < steps; ++s) {
        auto g = make_generator("cpu", uint64_t(s + 1));
        const Tensor x0 = g->randn({1, 4, size / 8, size / 8});
        const Tensor noise = g->randn(x0.shape());
        const std::vector<int> ts{100 + 300 * s % 900};
        const double flops0 = ops::profile::flops_counted();
        const auto t0 = Clock::now();
        const double c0 = cpu_seconds();
        Tensor noisy = objective.add_noise(x0, noise, ts);
        if (mode == "floor") noisy = tape.input(noisy);
        Tensor pred;
        {
          ops::autograd::Recording rec(tape);
          UNetExtras x = extras;
          if (controlnet) controlnet->add_unet_inputs(x, noisy, {float(ts[0])}, context, batch);
          pred = unet.forward(noisy, {float(ts[0])}, context, x);
        }
        const double fwd = since(t0);
        auto loss = objective.loss(pred, objective.target(x0, noise, ts), ts);
        tape.backward(pred, loss.dpred);
        for (auto& p : params) p.grad = tape.gradient(p.value);
        tape.clear();
        if (mode == "lora" || mode == "controlnet" || mode == "hypernetwork") {
          adamw.step(params);
          for (auto& p : params) ops::forget_prepared(p.value);
        }
        for (auto& p : params) p.grad = Tensor();
        tape.zero_grad();
        const double secs = since(t0), cpu = cpu_seconds() - c0, gflop = (ops::profile::flops_counted() - flops0) / 1e9;
        times.push_back(secs);
        cpu_times.push_back(cpu);
        std::printf("%s step %d: %.2f s wall, %.2f s CPU (forward %.2f s), %.0f GFLOP, %.0f GFLOP/s = %.0f %% of the "
                    "fp32 peak, %.0f %% of the bf16 peak (wall); by CPU time / threads %.0f GFLOP/s; loss %.4f, rss "
                    "peak %.2f GB, load %s\n",
                    name, s + 1, secs, cpu, fwd, gflop, gflop / secs, 100 * gflop * 1e9 / secs / peak.flops_per_s,
                    bpeak.flops_per_s > 0 ? 100 * gflop * 1e9 / secs / bpeak.flops_per_s : 0.0,
                    gflop / (cpu / num_threads()), loss.value, peak_rss_gb(), load_average().c_str());
        std::fflush(stdout);
      }
      std::vector<double> sorted = times, sorted_cpu = cpu_times;
      std::sort(sorted.begin(), sorted.end());
      std::sort(sorted_cpu.begin(), sorted_cpu.end());
      const double median = sorted[sorted.size() / 2];
      std::printf("%s: median step %.2f s wall (%.3f samples/s at batch 1), best %.2f s; CPU median %.2f s, best "
                  "%.2f s; peak RSS so far %.2f GB\n",
                  name, median, 1.0 / median, sorted[0], sorted_cpu[sorted_cpu.size() / 2], sorted_cpu[0],
                  peak_rss_gb());
    };
    if (mixed != "no") {
      ops::fast::set_default_bf16_weight_budget(training::kMixedPrecisionBf16Budget);  // as `pigment train` does
      run_steps(ops::Precision::Fast);
    }
    if (mixed != "bf16") run_steps(ops::Precision::Fp32);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
