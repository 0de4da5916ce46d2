// Tests of the golden harness itself: it must fail on deliberately broken input (a transposed tensor of the same
// size, wrong or missing ids), and the runners must take every value of a case from its case.json (a doctored copy
// with another size, step count or scale is read as written, and a runner fed such a copy no longer matches).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "case_inputs.h"
#include "golden.h"
#include "io/safetensors.h"
#include "ops/ops.h"

namespace pigment::golden {
namespace {

fs::path shared_dir() {
  const char* env = std::getenv("PIGMENT_SHARED_DIR");
  return env ? env : "../shared";
}

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/pigment-golden-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

nlohmann::json read_json(const fs::path& p) {
  std::ifstream f(p);
  return nlohmann::json::parse(f);
}

void write_json(const fs::path& p, const nlohmann::json& j) { std::ofstream(p) << j.dump(1); }

// A copy of shared case `name` under root/golden/<name>, whose case.json `edit` may change; the tensor file and
// other files are links to the originals unless `copy_tensors`. root/golden/models, root/golden/pipelines and
// root/clip-tokenizer link to the shared ones, so golden_root(), models_dir() and tokenizer_dir() work.
fs::path doctored_case(const fs::path& root, const std::string& name,
                       const std::function<void(nlohmann::json&)>& edit) {
  const fs::path golden = shared_dir() / "golden", src = golden / name, dst = root / "golden" / name;
  fs::create_directories(dst);
  if (!fs::exists(root / "clip-tokenizer")) {
    fs::create_directory_symlink(fs::absolute(shared_dir() / "clip-tokenizer"), root / "clip-tokenizer");
    fs::create_directory_symlink(fs::absolute(golden / "models"), root / "golden" / "models");
    if (name.rfind("pipelines/", 0) != 0)
      fs::create_directory_symlink(fs::absolute(golden / "pipelines"), root / "golden" / "pipelines");
  }
  for (const auto& e : fs::directory_iterator(src))
    if (e.path().filename() != "case.json") fs::create_symlink(fs::absolute(e.path()), dst / e.path().filename());
  nlohmann::json spec = read_json(src / "case.json");
  edit(spec);
  write_json(dst / "case.json", spec);
  return dst;
}

// A one-tensor case: "t" of shape [2, 3] holding 0..5.
fs::path tiny_case(const fs::path& root) {
  const fs::path dir = root / "harness" / "tiny";
  fs::create_directories(dir);
  write_json(dir / "case.json",
             {{"case", "harness/tiny"}, {"tensors", {{"t", {{"shape", {2, 3}}, {"atol", 0}, {"rtol", 0}}}}}});
  write_safetensors((dir / "tensors.safetensors").string(),
                    {{"t", Tensor::from_vector({2, 3}, {0, 1, 2, 3, 4, 5})}});
  return dir;
}

TEST(GoldenHarness, ShapeMismatchFailsEvenWithTheSameElementCount) {
  TempDir tmp;
  Case c(tiny_case(tmp.path));
  EXPECT_TRUE(c.compare("t", Tensor::from_vector({2, 3}, {0, 1, 2, 3, 4, 5})));
  // The transpose: same 6 elements, shape [3, 2].
  EXPECT_FALSE(c.compare("t", ops::permute(c.tensor("t"), {1, 0})));
  // The same values flattened, and reshaped to [3, 2] (values in the same order): still the wrong shape.
  EXPECT_FALSE(c.compare("t", Tensor::from_vector({6}, {0, 1, 2, 3, 4, 5})));
  EXPECT_FALSE(c.compare("t", Tensor::from_vector({3, 2}, {0, 1, 2, 3, 4, 5})));
  EXPECT_FALSE(c.compare("t", Tensor::from_vector({1, 2, 3}, {0, 1, 2, 3, 4, 5})));
  EXPECT_EQ(c.compared(), 5);
  EXPECT_EQ(c.failed(), 4);
}

TEST(GoldenHarness, IdsAndTextsCompareExactly) {
  TempDir tmp;
  Case c(tiny_case(tmp.path));
  EXPECT_TRUE(c.compare_ids("ids", {49406, 320, 49407}, {49406, 320, 49407}));
  EXPECT_FALSE(c.compare_ids("wrong id", {49406, 321, 49407}, {49406, 320, 49407}));
  EXPECT_FALSE(c.compare_ids("short", {49406, 320}, {49406, 320, 49407}));
  EXPECT_FALSE(c.compare_text("text", "a</w>", "b</w>"));
  EXPECT_EQ(c.failed_labels(), (std::vector<std::string>{"wrong id", "short", "text"}));
}

// The tokenizer runner compares ids_openai: one wrong id there, or a prompt without the list, is a failure.
TEST(GoldenHarness, TokenizerRunnerComparesIdsOpenai) {
  TempDir tmp;
  const fs::path dir = doctored_case(tmp.path, "tokenizer/clip_bpe", [](nlohmann::json& spec) {
    auto& ids = spec["prompts"][3]["ids_openai"];
    ids[1] = ids[1].get<int64_t>() + 1;
    spec["prompts"][5].erase("ids_openai");
  });
  Case c(dir);
  const Runner* run = find_runner(c.name());
  ASSERT_NE(run, nullptr);
  (*run)(c);
  EXPECT_EQ(c.failed_labels(), (std::vector<std::string>{"prompt[3] ids_openai", "prompt[5] ids_openai"}));

  Case untouched(shared_dir() / "golden" / "tokenizer" / "clip_bpe");
  (*run)(untouched);
  EXPECT_EQ(untouched.failed(), 0);
  EXPECT_GT(untouched.compared(), 200);
}

// A golden output stored transposed (same element count) fails the runner's comparison.
TEST(GoldenHarness, RunnerFailsOnATransposedGoldenTensor) {
  TempDir tmp;
  const fs::path dir = doctored_case(tmp.path, "hypernetwork/a1111", [](nlohmann::json&) {});
  SafeTensors original = SafeTensors::open((dir / "tensors.safetensors").string());
  NamedTensors tensors;
  for (const auto& e : original.entries()) {
    Tensor t = original.get(e.name).as_f32().clone();
    if (e.name == "context_k.mult1p0") t = ops::permute(t, {0, 2, 1});  // [2, 77, 32] -> [2, 32, 77]
    tensors.emplace_back(e.name, t);
  }
  fs::remove(dir / "tensors.safetensors");
  write_safetensors((dir / "tensors.safetensors").string(), tensors);
  Case c(dir);
  (*find_runner(c.name()))(c);
  EXPECT_EQ(c.failed_labels(), (std::vector<std::string>{"context_k.mult1p0"}));
}

TEST(CaseInputs, CallKeywords) {
  const std::string call = "pipe(prompt, height=64, width=128, guidance_scale=7.5, strength = 0.6, "
                           "cross_attention_kwargs={'scale': 0.25}, eta=1e-2)";
  EXPECT_EQ(call_keyword(call, "height"), 64);
  EXPECT_EQ(call_keyword(call, "guidance_scale"), 7.5);
  EXPECT_EQ(call_keyword(call, "strength"), 0.6);
  EXPECT_EQ(call_keyword(call, "scale"), 0.25);
  EXPECT_EQ(call_keyword(call, "eta"), 0.01);
  EXPECT_EQ(call_keyword(call, "num_inference_steps"), std::nullopt);
  EXPECT_EQ(call_keyword(call, "ight"), std::nullopt);  // whole keywords only
}

TEST(CaseInputs, LoraCallIsReadFromCaseJson) {
  TempDir tmp;
  Case shared(shared_dir() / "golden" / "lora" / "kohya");
  PipelineCall as_shared = read_pipeline_call(shared);
  EXPECT_EQ(as_shared.height, 64);
  EXPECT_EQ(as_shared.width, 128);
  EXPECT_EQ(as_shared.steps, 4);
  EXPECT_EQ(as_shared.guidance_scale, 7.5);
  EXPECT_EQ(as_shared.lora_scale, 0.6);
  EXPECT_EQ(as_shared.scheduler, "DDIMScheduler");
  // Recorded nowhere in the LoRA case: shared with the pipelines cases that ran the same prompt.
  EXPECT_EQ(as_shared.negative_prompt, "blurry, low quality");

  // A portrait-sized variant with other steps, guidance, LoRA scale and scheduler.
  const fs::path dir = doctored_case(tmp.path, "lora/kohya", [](nlohmann::json& spec) {
    spec["pipeline_call"] = "pipe(prompt, negative_prompt, height=96, width=64, num_inference_steps=7, "
                            "guidance_scale=5.5, latents, output_type='np', cross_attention_kwargs={'scale': 0.3})";
    spec["tensors"]["pipe.final_latents"]["meaning"] = "final latents (Euler, guidance 5.5)";
    spec["negative_prompt"] = "ugly";
    spec["tensors"]["unet_out.scale0p25"] = spec["tensors"]["unet_out.scale0p6"];
  });
  Case c(dir);
  PipelineCall p = read_pipeline_call(c);
  EXPECT_EQ(p.height, 96);
  EXPECT_EQ(p.width, 64);
  EXPECT_EQ(p.steps, 7);
  EXPECT_EQ(p.guidance_scale, 5.5);
  EXPECT_EQ(p.lora_scale, 0.3);
  EXPECT_EQ(p.scheduler, "EulerDiscreteScheduler");
  EXPECT_EQ(p.negative_prompt, "ugly");
  EXPECT_EQ(p.prompt, "a photograph of an astronaut riding a horse");
  EXPECT_EQ(scales_in_names(c, "unet_out.scale"),
            (std::map<std::string, double>{{"0p25", 0.25}, {"0p6", 0.6}, {"1p0", 1.0}}));

  // Another prompt and no negative prompt: nothing to share it with, so an error rather than a guess.
  TempDir tmp2;
  const fs::path other = doctored_case(tmp2.path, "lora/kohya", [](nlohmann::json& spec) { spec["prompt"] = "a cat"; });
  Case unknown(other);
  EXPECT_THROW(read_pipeline_call(unknown), Error);
}

TEST(CaseInputs, ControlNetCallIsReadFromCaseJson) {
  TempDir tmp;
  const fs::path dir = doctored_case(tmp.path, "controlnet/pipeline", [](nlohmann::json& spec) {
    // No height/width in the call: they come from the output image's shape.
    spec["producer"]["call"] = "pipe(prompt, image=PIL(control_image_uint8), negative_prompt, num_inference_steps=6, "
                               "guidance_scale=3.0, controlnet_conditioning_scale=0.35, latents, output_type='np')";
    spec["tensors"]["image"]["shape"] = {1, 80, 48, 3};
  });
  Case c(dir);
  PipelineCall p = read_pipeline_call(c);
  EXPECT_EQ(p.height, 80);
  EXPECT_EQ(p.width, 48);
  EXPECT_EQ(p.steps, 6);
  EXPECT_EQ(p.guidance_scale, 3.0);
  EXPECT_EQ(p.controlnet_scale, 0.35);
  EXPECT_EQ(p.scheduler, "DDIMScheduler");
  EXPECT_EQ(p.negative_prompt, "blurry, low quality");
}

TEST(CaseInputs, PipelinesCasesAreReadAsWritten) {
  Case img2img(shared_dir() / "golden" / "pipelines" / "sd1_img2img_ddim");
  PipelineCall p = read_pipeline_call(img2img);
  EXPECT_EQ(p.steps, 8);
  EXPECT_EQ(p.strength, 0.6);
  EXPECT_EQ(p.seed, 1403u);
  EXPECT_EQ(p.scheduler, "DDIMScheduler");
  Case xl(shared_dir() / "golden" / "pipelines" / "sdxl_euler");
  EXPECT_EQ(read_pipeline_call(xl).guidance_scale, 5.0);
  EXPECT_EQ(read_pipeline_call(xl).scheduler, "EulerDiscreteScheduler");
  Case cfg1(shared_dir() / "golden" / "pipelines" / "sd1_txt2img_ddim_cfg1p0");
  EXPECT_EQ(read_pipeline_call(cfg1).negative_prompt, "");
}

// The runners follow a doctored case.json: a LoRA case whose call asks for 3 steps, and a ControlNet case whose call
// asks for another conditioning scale, no longer match the stored outputs of the real runs, and only those outputs.
TEST(CaseInputs, LoraRunnerUsesTheCaseStepCount) {
  TempDir tmp;
  const fs::path dir = doctored_case(tmp.path, "lora/kohya", [](nlohmann::json& spec) {
    std::string call = spec["pipeline_call"];
    call.replace(call.find("num_inference_steps=4"), 21, "num_inference_steps=3");
    spec["pipeline_call"] = call;
  });
  Case c(dir);
  (*find_runner(c.name()))(c);
  EXPECT_EQ(c.failed_labels(), (std::vector<std::string>{"pipe.final_latents", "pipe.image", "pipe.final_latents",
                                                         "pipe.image"}));
}

TEST(CaseInputs, ControlNetRunnerUsesTheCaseConditioningScale) {
  TempDir tmp;
  const fs::path dir = doctored_case(tmp.path, "controlnet/pipeline", [](nlohmann::json& spec) {
    std::string call = spec["producer"]["call"];
    call.replace(call.find("controlnet_conditioning_scale=0.8"), 33, "controlnet_conditioning_scale=0.3");
    spec["producer"]["call"] = call;
  });
  Case c(dir);
  (*find_runner(c.name()))(c);
  EXPECT_EQ(c.failed_labels(), (std::vector<std::string>{"final_latents", "image", "latents.step00", "latents.step01",
                                                         "latents.step02", "latents.step03"}));
}

}  // namespace
}  // namespace pigment::golden
