#include "training/hypernetwork.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "core/threading.h"
#include "io/file_hash.h"
#include "io/pytorch_zip.h"
#include "io/safetensors.h"
#include "models/hypernetwork.h"
#include "models/textual_inversion.h"
#include "training/trainer.h"
#include "training/training_test_util.h"

namespace pigment::training {
namespace {

namespace fs = std::filesystem;
using namespace testing;

TrainOptions hypernetwork_options(const fs::path& root) {
  TrainOptions o = tiny_run_options(root, "hypernetwork", "tiny_hn.pt");
  o.max_steps = 6;
  o.learning_rate = 1e-3;
  o.seed = 11;
  return o;
}

// Tiny models train on one thread (see trainer_test.cc).
TEST(HypernetworkTraining, LossFallsAndTheOutputMovesTowardTheData) {
  ScopedNumThreads one(1);
  TempDir tmp;
  TrainOptions o = hypernetwork_options(tmp.path);
  // On the tiny golden SD1 every attention block is 32 wide, so one module pair (width 32) sits on the
  // cross-attention context and on every self-attention context, as A1111's default modules do on SD1. min-SNR-5
  // as in the LoRA test. The 5x is not reached by a hypernetwork on this model (docs/status.md; it is, where
  // the text decides the picture: LossFallsFiveTimesWhereTheTextDecidesThePicture below): the golden
  // VAE's latents are ~0.14 rms against ε's 1, so the loss is almost all "predict ε from x_t ≈ σ·ε", i.e. making
  // the frozen random UNet pass its input through; a LoRA on every linear and convolution learns that, transforms of
  // the k/v contexts of its few attention layers do not (ε-MSE at t = 990: 1.32 untrained, 0.73 after 400 steps,
  // 0.51 after 2500). Measured here: 1.6x in 400 steps (2.0x in 1000, 1.8x in 2500 with XavierNormal).
  o.max_steps = 400;
  o.learning_rate = 1e-2;
  o.min_snr_gamma = 5;
  o.hypernetwork.activation = "relu";
  std::vector<float> losses;
  TrainSummary s = train(o, [&](const StepReport& r) { losses.push_back(r.loss); });
  ASSERT_EQ(s.steps, o.max_steps);
  const auto [first, last] = first_and_last_mean(losses);
  EXPECT_GT(first / last, 1.4) << "mean loss of the first 10 steps " << first << ", of the last 10 " << last;

  // The .pt loads through pigment's loader (as <hypernet:tiny_hn:1> would) with the structure it was trained with.
  auto net = std::make_shared<const Hypernetwork>(Hypernetwork::load(o.output));
  EXPECT_EQ(net->name(), "tiny_hn");
  EXPECT_EQ(net->sizes(), (std::vector<int64_t>{32}));  // every attention block of the tiny UNet is 32 wide
  EXPECT_EQ(net->layer_structure(), (std::vector<double>{1, 2, 1}));
  EXPECT_EQ(net->structure().activation, "relu");
  // Its weights are the trained ones (the run's last checkpoint holds them under the same names).
  SafeTensors ck = SafeTensors::open((fs::path(o.output + ".run") / "checkpoint" / "trained.safetensors").string());
  for (const auto& [name, t] : net->parameters()) {
    ASSERT_TRUE(ck.contains(name)) << name;
    EXPECT_EQ(ck.get(name).as_f32().to_vector(), t.to_vector()) << name;
  }
  // The metadata keys of ECOSYSTEM §6d.
  PytorchZip z = PytorchZip::open(o.output);
  for (const char* k : {"step", "name", "layer_structure", "activation_func", "is_layer_norm", "weight_initialization",
                        "sd_checkpoint", "sd_checkpoint_name", "activate_output", "use_dropout", "dropout_structure",
                        "last_layer_dropout", "optional_info"})
    EXPECT_NE(z.root().get(k), nullptr) << k;
  EXPECT_EQ(z.root().get("step")->i, o.max_steps);
  EXPECT_EQ(z.root().get("sd_checkpoint")->s, model_short_hash(o.model.model));
  EXPECT_EQ(z.root().get("sd_checkpoint_name")->s, "sd1_single_file");
  // The optimizer state beside it, as A1111 writes it: the .pt's short hash and torch's AdamW state_dict with one
  // entry per trained tensor (in Hypernetwork.weights() order: width, key module, value module, layer order).
  PytorchZip optim = PytorchZip::open(o.output + ".optim");
  EXPECT_EQ(optim.root().get("optimizer_name")->s, "AdamW");
  EXPECT_EQ(optim.root().get("hash")->s, sha256_file(o.output).substr(0, 10));
  const pickle::Value* sd = optim.root().get("optimizer_state_dict");
  ASSERT_TRUE(sd);
  const size_t n = net->parameters().size();
  EXPECT_EQ(sd->get("state")->entries.size(), n);
  const pickle::Value* group = sd->get("param_groups")->items.at(0);
  EXPECT_EQ(group->get("params")->items.size(), n);
  EXPECT_DOUBLE_EQ(group->get("lr")->f, o.learning_rate);
  const pickle::Value* s0 = sd->get("state")->get(int64_t(0));
  EXPECT_EQ(optim.tensor(*s0->get("exp_avg")).shape(), net->parameters().at("32.k.linear.0.weight").shape());
  EXPECT_EQ(optim.tensor(*s0->get("step")).as_f32().to_vector(), (std::vector<float>{float(o.max_steps)}));

  // With it the model generates latents nearer to the training image of the prompt.
  StableDiffusion sd_model = StableDiffusion::load(tiny_model());
  const Image red = read_image((fs::path(o.data_dir) / "red.png").string());
  const double before = latent_distance(sd_model, "a red square", red);
  const double after = latent_distance(sd_model, "a red square", red, {{net, 1.f}});
  std::printf("hypernetwork: loss first/last 10 steps %.4f / %.4f (%.2fx); latent distance %.4f -> %.4f\n", first,
              last, first / last, before, after);
  EXPECT_LT(after, 0.7 * before) << "latent distance to the training image: " << before << " without, " << after
                                  << " with the hypernetwork";
}

// Where the text decides the picture (text_reading_model, training_test_util.h: timesteps 900..999, the clean
// latent as the target) a hypernetwork, which changes how the UNet reads every context, can explain nearly all of
// the loss: trained on the red square captioned "a blue circle", it makes that caption draw the red square.
TEST(HypernetworkTraining, LossFallsFiveTimesWhereTheTextDecidesThePicture) {
  ScopedNumThreads one(1);
  TempDir tmp;
  const TextReadingModel base = text_reading_model(tmp.path);
  TrainOptions o = hypernetwork_options(tmp.path);
  o.model = tiny_model(base.model);
  o.data_dir = one_image_folder(tmp.path, "swapped", fs::path(base.data) / "red.png", "a blue circle").string();
  o.min_timestep = 900;
  o.max_steps = 200;
  o.learning_rate = 5e-3;
  o.hypernetwork.activation = "relu";
  std::vector<float> losses;
  train(o, [&](const StepReport& r) { losses.push_back(r.loss); });
  const auto [first, last] = first_and_last_mean(losses);
  EXPECT_GT(first / last, 5.0) << "mean loss of the first 10 steps " << first << ", of the last 10 " << last;

  StableDiffusion sd = StableDiffusion::load(tiny_model(base.model));
  const Image red = read_image((fs::path(base.data) / "red.png").string());
  auto net = std::make_shared<const Hypernetwork>(Hypernetwork::load(o.output));
  const double before = latent_distance(sd, "a blue circle", red);
  const double after = latent_distance(sd, "a blue circle", red, {{net, 1.f}});
  std::printf("hypernetwork: loss first/last 10 steps %.5f / %.5f (%.1fx); latent distance of \"a blue circle\" to "
              "the red square %.5f -> %.5f\n", first, last, first / last, before, after);
  EXPECT_LT(after, 0.5 * before);
}

TEST(HypernetworkTraining, ResumedRunWithDropoutRepeatsTheLosses) {
  ScopedNumThreads one(1);
  TempDir a, b, c;
  auto options = [](const fs::path& root) {
    TrainOptions o = hypernetwork_options(root);
    o.hypernetwork.layer_structure = "1, 2, 2, 1";
    o.hypernetwork.activation = "tanh";
    o.hypernetwork.use_dropout = true;  // [0, 0.3, 0, 0]
    return o;
  };
  TrainOptions whole = options(a.path);
  train(whole);
  TrainOptions part = options(b.path);
  part.max_steps = 3;
  train(part);
  part.max_steps = 6;
  part.resume = true;
  train(part);
  const auto l1 = step_and_loss(fs::path(whole.output + ".run") / "log.csv");
  const auto l2 = step_and_loss(fs::path(part.output + ".run") / "log.csv");
  ASSERT_EQ(l1.size(), 6u);
  EXPECT_EQ(l1, l2);
  // Dropout acts while training: without it the same run gives other losses.
  TrainOptions no_dropout = options(c.path);
  no_dropout.hypernetwork.use_dropout = false;
  train(no_dropout);
  const auto l3 = step_and_loss(fs::path(no_dropout.output + ".run") / "log.csv");
  EXPECT_NE(l1, l3);
  // The file records the dropout structure, and pigment loads it (the Dropout takes its nn.Sequential index).
  Hypernetwork h = Hypernetwork::load(whole.output);
  EXPECT_EQ(h.structure().dropout_structure, (std::vector<double>{0, 0.3, 0, 0}));
  EXPECT_TRUE(h.structure().use_dropout);
  EXPECT_TRUE(h.parameters().count("32.k.linear.3.weight"));  // linear 0, tanh 1, dropout 2, linear 3
}

TEST(HypernetworkTraining, StructureOptionsAndInitialisation) {
  ScopedNumThreads one(1);
  TempDir tmp;
  TrainOptions o = hypernetwork_options(tmp.path);
  o.max_steps = 2;
  o.hypernetwork.layer_structure = "1, 1.5, 1";
  o.hypernetwork.activation = "swish";
  o.hypernetwork.layer_norm = true;
  o.hypernetwork.activate_output = true;
  o.hypernetwork.weight_init = "KaimingNormal";
  o.hypernetwork.sizes = "32";
  o.sample_every = 2;
  o.sample_prompts = {"a red square"};
  train(o);
  Hypernetwork h = Hypernetwork::load(o.output);
  EXPECT_EQ(h.sizes(), (std::vector<int64_t>{32}));
  EXPECT_EQ(h.structure().weight_initialization, "KaimingNormal");
  EXPECT_TRUE(h.structure().layer_norm);
  EXPECT_EQ(h.structure().activation, "swish");
  // Linear(32, 48), Hardswish, LayerNorm(48), Linear(48, 32), Hardswish, LayerNorm(32).
  const auto p = h.parameters();
  EXPECT_EQ(p.at("32.k.linear.0.weight").shape(), (Shape{48, 32}));
  EXPECT_EQ(p.at("32.k.linear.2.weight").shape(), (Shape{48}));
  EXPECT_EQ(p.at("32.v.linear.3.weight").shape(), (Shape{32, 48}));
  EXPECT_EQ(p.at("32.v.linear.5.bias").shape(), (Shape{32}));
  // Kaiming-normal weights: std √(2 / fan_in) = 0.204 for fan_in 48, still that after two small steps.
  const Tensor w = p.at("32.v.linear.3.weight");
  double ss = 0;
  for (float x : w.to_vector()) ss += double(x) * x;
  EXPECT_NEAR(std::sqrt(ss / double(w.numel())), std::sqrt(2.0 / 48), 0.03);
  // A sample image was written with the hypernetwork applied.
  EXPECT_TRUE(fs::exists(fs::path(o.output + ".run") / "samples" / "step-000002-0.png"));
}

TEST(HypernetworkTraining, BadOptionsFailBeforeTheFirstStep) {
  TempDir tmp;
  auto fails = [&](auto change, const std::string& needle) {
    TrainOptions o = hypernetwork_options(tmp.path);
    change(o);
    int steps = 0;
    try {
      train(o, [&](const StepReport&) { ++steps; });
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_EQ(steps, 0);
      return;
    }
    ADD_FAILURE() << "no error, expected one with " << needle;
  };
  fails([](TrainOptions& o) { o.hypernetwork.activation = "prelu"; }, "--activation-func");
  fails([](TrainOptions& o) { o.hypernetwork.layer_structure = "2, 1"; }, "start and end with 1");
  fails([](TrainOptions& o) { o.hypernetwork.layer_structure = "1, x, 1"; }, "'x' is not a number");
  fails([](TrainOptions& o) { o.hypernetwork.sizes = "768"; }, "not a context width");
  fails([](TrainOptions& o) { o.hypernetwork.weight_init = "Uniform"; }, "--weight-init");
  fails([](TrainOptions& o) { o.hypernetwork.dropout_structure = "0, 1.5, 0"; }, "not in [0, 1)");
  fails([](TrainOptions& o) { o.hypernetwork.dropout_structure = "0, 0.1"; }, "--dropout-structure has 2 entries");
}

// Textual inversion's A1111 .pt (issue 14): string_to_param / string_to_token / name / step / sd_checkpoint(_name),
// read back by pigment's embedding loader with the trained vectors.
TEST(TextualInversionTraining, PtEmbeddingLoadsBack) {
  ScopedNumThreads one(1);
  TempDir tmp;
  TrainOptions o = hypernetwork_options(tmp.path);
  o.method = "textual-inversion";
  o.token_string = "shp";
  o.init_word = "shape";
  o.num_vectors = 2;
  o.max_steps = 2;
  o.learning_rate = 5e-3;
  o.output = (tmp.path / "out" / "shp.pt").string();
  train(o);
  Embedding e = load_embedding(o.output);
  EXPECT_EQ(e.name, "shp");
  EXPECT_EQ(e.vectors.shape(), (Shape{2, 32}));
  SafeTensors ck = SafeTensors::open((fs::path(o.output + ".run") / "checkpoint" / "trained.safetensors").string());
  EXPECT_EQ(e.vectors.to_vector(), ck.get("emb_params").as_f32().to_vector());
  PytorchZip z = PytorchZip::open(o.output);
  EXPECT_EQ(z.root().get("string_to_token")->get("*")->i, 265);
  EXPECT_EQ(z.root().get("name")->s, "shp");
  EXPECT_EQ(z.root().get("step")->i, 2);
  EXPECT_EQ(z.root().get("sd_checkpoint")->s, model_short_hash(o.model.model));
  EXPECT_EQ(z.root().get("sd_checkpoint_name")->s, "sd1_single_file");
}

}  // namespace
}  // namespace pigment::training
