// Textual inversion (--method textual-inversion): SDXL trains one vector set per text encoder and saves them as
// clip_l / clip_g, which pigment's embedding loader reads back.
#include "training/textual_inversion.h"

#include <gtest/gtest.h>

#include <string>

#include "core/threading.h"
#include "io/safetensors.h"
#include "models/textual_inversion.h"
#include "ops/ops.h"
#include "training/trainer.h"
#include "training/training_test_util.h"

namespace pigment::training {
namespace {

using namespace testing;

TrainOptions ti_options(const fs::path& root, const PipelineOptions& model) {
  TrainOptions o;
  o.method = "textual-inversion";
  o.model = model;
  o.data_dir = make_dataset(root).string();
  o.data.resolution = 64;
  o.data.buckets = false;
  o.output = (root / "out" / "shp.safetensors").string();
  o.token_string = "shp";
  o.init_word = "shape";
  o.num_vectors = 2;
  o.max_steps = 4;
  o.learning_rate = 5e-3;
  o.seed = 13;
  return o;
}

TEST(TextualInversionTraining, SdxlTrainsAVectorSetPerEncoderSavedAsClipLAndClipG) {
  ScopedNumThreads one(1);
  TempDir tmp;
  TrainOptions o = ti_options(tmp.path, tiny_sdxl_model());
  train(o);
  SafeTensors f = SafeTensors::open(o.output);
  ASSERT_TRUE(f.contains("clip_l") && f.contains("clip_g"));
  EXPECT_FALSE(f.contains("emb_params"));
  EXPECT_EQ(f.get("clip_l").shape(), (Shape{2, 32}));  // both tiny encoders are 32 wide
  EXPECT_EQ(f.get("clip_g").shape(), (Shape{2, 32}));

  Embedding e = load_embedding(o.output);
  EXPECT_EQ(e.name, "shp");
  EXPECT_EQ(e.vectors.to_vector(), f.get("clip_l").as_f32().to_vector());
  ASSERT_TRUE(e.vectors_2.defined());
  EXPECT_EQ(e.vectors_2.to_vector(), f.get("clip_g").as_f32().to_vector());

  // Both sets moved away from the init word's embeddings (in each encoder's own table).
  StableDiffusion sd = StableDiffusion::load(tiny_sdxl_model());
  const int shape_id = sd.tokenizer().encode("shape").at(0);
  for (const auto& [set, name] : {std::pair{e.vectors, "text_encoder"}, std::pair{e.vectors_2, "text_encoder_2"}}) {
    const Tensor table = sd.base_component(name).tensors->at("text_model.embeddings.token_embedding.weight");
    const Tensor init = ops::embedding(table, {shape_id, shape_id}).as_f32();
    EXPECT_GT(ops::mse(set, init), 0.0) << name;
  }

  // The word works in prompts and changes both the context and the pooled vector.
  GenerateRequest r;
  r.a1111_syntax = false;
  const PromptEmbeds plain = sd.encode_prompt("a shape", r);
  sd.set_embeddings({e});
  const PromptEmbeds with_word = sd.encode_prompt("a shp", r);
  EXPECT_GT(ops::mse(plain.context, with_word.context), 0.0);
  EXPECT_GT(ops::mse(plain.pooled, with_word.pooled), 0.0);

  // A1111's .pt holds one vector set: refused for SDXL before step 1.
  o.output = (tmp.path / "pt" / "shp.pt").string();
  try {
    train(o);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find(".safetensors"), std::string::npos) << err.what();
  }
  EXPECT_FALSE(fs::exists(o.output));
}

// The loss of a textual inversion falls only by the part of the error that the text explains. Over all timesteps
// the noisy latent tells the tiny golden model which image it is, so no word can lower the loss much
// (docs/status.md). Where the text alone decides the picture a word can explain nearly all of it: on
// text_reading_model (training_test_util.h) a new word, started from "blue", learns the red square at the same
// high-noise timesteps, and draws it.
TEST(TextualInversionTraining, LossFallsFiveTimesWhereTheTextDecidesThePicture) {
  ScopedNumThreads one(1);
  TempDir tmp;
  const TextReadingModel base = text_reading_model(tmp.path);
  TrainOptions o;
  o.method = "textual-inversion";
  o.model = tiny_model(base.model);
  o.data_dir = one_image_folder(tmp.path, "red", fs::path(base.data) / "red.png").string();
  o.data.resolution = 64;
  o.data.buckets = false;
  o.output = (tmp.path / "out" / "rsq.safetensors").string();
  o.token_string = "rsq";
  o.init_word = "blue";
  o.num_vectors = 2;
  o.min_timestep = 900;
  o.max_steps = 150;
  o.learning_rate = 2e-2;
  o.seed = 7;
  std::vector<float> losses;
  train(o, [&](const StepReport& r) { losses.push_back(r.loss); });
  const auto [first, last] = first_and_last_mean(losses);
  EXPECT_GT(first / last, 5.0) << "mean loss of the first 10 steps " << first << ", of the last 10 " << last;

  // The saved word draws the red square, where its init word did not.
  StableDiffusion sd = StableDiffusion::load(tiny_model(base.model));
  const Image red = read_image((fs::path(base.data) / "red.png").string());
  const double init_word = latent_distance(sd, "blue", red);
  sd.set_embeddings({load_embedding(o.output)});
  const double word = latent_distance(sd, "rsq", red);
  std::printf("textual inversion: loss first/last 10 steps %.5f / %.5f (%.1fx); latent distance to the red square "
              "%.5f (init word) -> %.5f (trained word)\n", first, last, first / last, init_word, word);
  EXPECT_LT(word, 0.5 * init_word);
}

}  // namespace
}  // namespace pigment::training
