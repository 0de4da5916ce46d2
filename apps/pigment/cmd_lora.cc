// pigment lora extract BASE TUNED --rank N [--conv-rank M] [--clamp-quantile Q] [--min-diff D] -o OUT.safetensors:
//   the difference TUNED − BASE as a kohya LoRA, by SVD per layer (training/lora_extract.h: kohya's
//   extract_lora_from_models.py semantics). `pigment generate -m BASE --lora OUT:1` then approximates TUNED.
#include <chrono>
#include <cstdio>

#include "command.h"
#include "core/error.h"
#include "models/model_loader.h"
#include "training/lora_extract.h"

namespace pigment::cli {
namespace {

struct Args {
  CLI::App* extract = nullptr;
  std::string base, tuned, out, save_precision = "f32";
  std::vector<std::string> model_configs;
  training::LoraExtractOptions o;
} g;

int run_extract() {
  PIG_CHECK(g.o.rank > 0, "lora extract: --rank must be positive, got ", g.o.rank);
  LoadOptions lo;
  for (const auto& mc : g.model_configs) {
    const auto eq = mc.find('=');
    PIG_CHECK(eq != std::string::npos && eq > 0, "--model-config expects COMPONENT=PATH, got '", mc, "'");
    lo.config_paths[mc.substr(0, eq)] = mc.substr(eq + 1);
  }
  const std::string& p = g.save_precision;
  if (p == "f32" || p == "fp32" || p == "float")
    g.o.save_dtype = DType::F32;
  else if (p == "f16" || p == "fp16" || p == "float16")
    g.o.save_dtype = DType::F16;
  else if (p == "bf16" || p == "bfloat16")
    g.o.save_dtype = DType::BF16;
  else
    fail("--save-precision: expected f32, f16 or bf16, got '", p, "'");
  const auto t0 = std::chrono::steady_clock::now();
  const LoadedModel base = load_model(g.base, lo);
  const LoadedModel tuned = load_model(g.tuned, lo);
  const training::ExtractedLora lora = training::extract_lora(base, tuned, g.o);
  training::write_extracted_lora(g.out, lora);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!lora.text_encoder_different)
    std::printf("text encoder is the same (largest difference %.3g <= --min-diff %.3g): UNet only\n",
                lora.text_encoder_max_diff, g.o.min_diff);
  std::printf("wrote %s: %d UNet and %d text-encoder modules, rank %d%s, in %.1f s\n", g.out.c_str(),
              lora.unet_modules, lora.text_encoder_modules, g.o.rank,
              g.o.conv_rank > 0 ? (", conv rank " + std::to_string(g.o.conv_rank)).c_str() : "", s);
  return 0;
}

RegisterCommand reg(
    "lora", "LoRA tools: extract the difference of two models as a LoRA",
    [](CLI::App& c) {
      c.require_subcommand(1);
      g.extract = c.add_subcommand(
          "extract",
          "the difference TUNED - BASE as a kohya LoRA (SVD per layer, kohya's extract_lora_from_models.py): "
          "transformer-block linear and 1x1 layers of the UNet, the text encoder's attention and MLP layers (left "
          "out when it differs by at most --min-diff), and with --conv-rank the resnet and resampler layers");
      auto* e = g.extract;
      e->add_option("base", g.base, "the base model (single file or diffusers folder)")->required();
      e->add_option("tuned", g.tuned, "the fine-tuned model of the same architecture")->required();
      e->add_option("-o,--output,--save-to", g.out, "the LoRA file to write (.safetensors)")->required();
      e->add_option("--rank,--dim", g.o.rank, "LoRA rank of linear and 1x1 layers")->capture_default_str();
      e->add_option("--conv-rank,--conv-dim", g.o.conv_rank,
                    "rank of the 3x3 convolutions; also adds the resnets' other layers (0: none)")
          ->capture_default_str();
      e->add_option("--clamp-quantile", g.o.clamp_quantile,
                    "clamp up and down to the +-quantile of their values (1: no clamping)")
          ->capture_default_str();
      e->add_option("--min-diff", g.o.min_diff,
                    "the text encoder is extracted only if some weight differs by more than this")
          ->capture_default_str();
      e->add_option("--save-precision", g.save_precision, "dtype of the up/down weights: f32, f16 or bf16")
          ->capture_default_str();
      e->add_option("--model-config", g.model_configs,
                    "COMPONENT=PATH: a diffusers config for a component of both models (repeatable)");
    },
    [] { return run_extract(); });

}  // namespace
}  // namespace pigment::cli
