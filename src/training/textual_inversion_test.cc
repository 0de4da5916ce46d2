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

}  // namespace
}  // namespace pigment::training
