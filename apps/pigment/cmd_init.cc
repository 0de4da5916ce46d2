// pigment init --family sd15|sd21|sd21-v|sdxl [--dtype f32|f16|bf16] [--seed N] (--out FILE | --diffusers DIR):
// a full-size random-weight checkpoint with the real key names and shapes, for tests and benchmarks without
// downloading a model. A diffusers folder is complete (tokenizer folders and every config) for diffusers'
// from_pretrained. With --controlnet, a random ControlNet for that family instead (original control_model.*
// layout, one file).
#include <chrono>
#include <cstdio>

#include "command.h"
#include "core/dtype.h"
#include "core/error.h"
#include "io/text_file.h"
#include "models/controlnet_loader.h"
#include "models/model_family.h"
#include "models/random_init.h"
#include "pipelines/diffusers_folder.h"

namespace pigment::cli {
namespace {

struct Args {
  std::string family, dtype = "f16", out, diffusers, merges;
  uint64_t seed = 0;
  bool controlnet = false;
} g;

DType parse_dtype(const std::string& s) {
  if (s == "f32" || s == "fp32" || s == "float32") return DType::F32;
  if (s == "f16" || s == "fp16" || s == "float16") return DType::F16;
  if (s == "bf16" || s == "bfloat16") return DType::BF16;
  fail("--dtype: expected f32, f16 or bf16, got '", s, "'");
}

int run_init() {
  PIG_CHECK(g.out.empty() != g.diffusers.empty(), "init: give exactly one of --out FILE or --diffusers DIR");
  InitOptions o;
  o.family = g.family;
  o.dtype = parse_dtype(g.dtype);
  o.seed = g.seed;
  const FamilyPreset& p = family_preset(g.family);  // fails early on an unknown name
  if (!g.merges.empty()) o.tokenizer_merges = read_text_file(g.merges, "--merges");
  PIG_CHECK(!p.self_describing || g.diffusers.empty(), "init: ", p.name, " is written as one self-describing file: give --out FILE");
  auto t0 = std::chrono::steady_clock::now();
  PIG_CHECK(!g.controlnet || !g.out.empty(), "init --controlnet: give --out FILE (a ControlNet is one file)");
  InitReport r = g.controlnet         ? write_random_tensors(g.out, {controlnet_layout(p.unet)}, o, false)
                 : g.out.empty()      ? write_random_diffusers(g.diffusers, o)
                                      : write_random_single_file(g.out, o);
  // diffusers' from_pretrained needs the tokenizer folders too: the built-in CLIP table with the family's pad token.
  if (!g.controlnet && g.out.empty()) write_diffusers_tokenizers(g.diffusers, p.family);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("wrote %s: %s%s, %s, seed %llu (%s)\n", (g.out.empty() ? g.diffusers : g.out).c_str(), p.name.c_str(),
              g.controlnet ? " ControlNet" : "",
              std::string(dtype_name(o.dtype)).c_str(), (unsigned long long)o.seed, p.description.c_str());
  for (const auto& [name, c] : r.components)
    std::printf("component %s: %lld tensors, %lld parameters\n", name.c_str(), (long long)c.tensors,
                (long long)c.parameters);
  std::printf("bytes: %llu in %.1f s\n", (unsigned long long)r.bytes, s);
  return 0;
}

RegisterCommand reg(
    "init", "write a full-size random-weight checkpoint of a model family",
    [](CLI::App& c) {
      std::string names;
      for (const auto& n : family_preset_names()) names += (names.empty() ? "" : "|") + n;
      c.add_option("--family", g.family, "model family: " + names)->required();
      c.add_option("--dtype", g.dtype, "f32, f16 (default) or bf16");
      c.add_option("--seed", g.seed, "random seed (default 0)");
      c.add_option("--out", g.out, "write one .safetensors file in the original single-file layout");
      c.add_option("--diffusers", g.diffusers, "write a diffusers folder instead");
      c.add_option("--merges", g.merges,
                   "pigment's own families: the tokenizer's BPE merges (merges.txt from `pigment tokenizer train`), "
                   "stored in the file");
      c.add_flag("--controlnet", g.controlnet, "write a random ControlNet for the family (original layout) instead");
    },
    run_init);

}  // namespace
}  // namespace pigment::cli
