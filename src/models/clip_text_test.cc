#include "models/clip_text.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>

#include "core/error.h"
#include "ops/ops.h"
#include "ops/precision.h"

namespace pigment {
namespace {

constexpr int64_t kVocab = 50, kHidden = 8, kInter = 12, kLayers = 3, kPositions = 6, kProj = 5;

ClipTextConfig tiny_config() {
  ClipTextConfig c;
  c.vocab_size = kVocab;
  c.hidden_size = kHidden;
  c.intermediate_size = kInter;
  c.num_attention_heads = 2;
  c.num_hidden_layers = kLayers;
  c.max_position_embeddings = kPositions;
  c.projection_dim = kProj;
  c.eos_token_id = 2;
  c.with_projection = true;
  return c;
}

// Deterministic pseudo-random values of order 1.
Tensor filled(Shape s, uint32_t seed, float base = 0.f, float amp = 0.5f) {
  Tensor t = Tensor::empty(std::move(s));
  uint32_t x = seed * 2654435761u + 12345u;
  for (int64_t i = 0; i < t.numel(); ++i) {
    x = x * 1664525u + 1013904223u;
    t.f32()[i] = base + amp * (float(x >> 8) / float(1 << 24) * 2.f - 1.f);
  }
  return t;
}

std::shared_ptr<TensorMap> tiny_weights() {
  auto m = std::make_shared<TensorMap>();
  uint32_t seed = 1;
  auto put = [&](const std::string& name, Shape s, float base = 0.f) { (*m)[name] = filled(s, seed++, base); };
  put("text_model.embeddings.token_embedding.weight", {kVocab, kHidden});
  put("text_model.embeddings.position_embedding.weight", {kPositions, kHidden});
  for (int i = 0; i < kLayers; ++i) {
    std::string p = "text_model.encoder.layers." + std::to_string(i) + ".";
    put(p + "layer_norm1.weight", {kHidden}, 1.f);
    put(p + "layer_norm1.bias", {kHidden});
    put(p + "layer_norm2.weight", {kHidden}, 1.f);
    put(p + "layer_norm2.bias", {kHidden});
    for (const char* n : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
      put(p + "self_attn." + n + ".weight", {kHidden, kHidden});
      put(p + "self_attn." + n + ".bias", {kHidden});
    }
    put(p + "mlp.fc1.weight", {kInter, kHidden});
    put(p + "mlp.fc1.bias", {kInter});
    put(p + "mlp.fc2.weight", {kHidden, kInter});
    put(p + "mlp.fc2.bias", {kHidden});
  }
  put("text_model.final_layer_norm.weight", {kHidden}, 1.f);
  put("text_model.final_layer_norm.bias", {kHidden});
  put("text_projection.weight", {kProj, kHidden});
  return m;
}

ClipTextModel tiny_model() { return ClipTextModel::load(tiny_config(), Weights(tiny_weights(), "tiny")); }

float max_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  auto va = a.to_vector(), vb = b.to_vector();
  float d = 0;
  for (size_t i = 0; i < va.size(); ++i) d = std::max(d, std::fabs(va[i] - vb[i]));
  return d;
}

TEST(ClipText, ShapesAndHiddenStates) {
  ClipTextModel m = tiny_model();
  ClipOptions o;
  o.keep_hidden_states = true;
  ClipOutput out = m.forward({{1, 7, 49, 49, 49}, {1, 3, 4, 49, 49}}, o);
  EXPECT_EQ(out.last_hidden_state.shape(), (Shape{2, 5, kHidden}));
  EXPECT_EQ(out.hidden_states.size(), size_t(kLayers + 1));
  EXPECT_EQ(out.pooled.shape(), (Shape{2, kHidden}));
  EXPECT_EQ(out.text_embeds.shape(), (Shape{2, kProj}));
  EXPECT_EQ(max_diff(out.context, out.last_hidden_state), 0.f);
  EXPECT_EQ(max_diff(m.final_norm(out.hidden_states.back()), out.last_hidden_state), 0.f);
  EXPECT_EQ(max_diff(ops::linear(out.pooled, tiny_weights()->at("text_projection.weight")), out.text_embeds), 0.f);
}

// Under --precision int8 the text encoder's products run as fast (ops::without_int8): each layer sees Fast, and the
// caller's precision is back afterwards.
TEST(ClipText, NeverRunsInInt8) {
  ClipTextModel m = tiny_model();
  std::map<std::string, ops::Precision> seen;
  UNetHooks hooks;
  hooks.layer_delta = [&](const std::string& name, const Tensor&, Tensor&) { seen[name] = ops::precision(); };
  ClipOptions o;
  o.hooks = &hooks;
  const ops::ScopedPrecision int8(ops::Precision::Int8);
  m.forward({{1, 7, 49, 49, 49}}, o);
  EXPECT_EQ(seen.size(), size_t(kLayers * 6));  // q, k, v, out, fc1, fc2
  for (const auto& [name, p] : seen) EXPECT_EQ(p, ops::Precision::Fast) << name;
  EXPECT_EQ(ops::precision(), ops::Precision::Int8);
  const ops::ScopedPrecision exact(ops::Precision::Fp32);  // other precisions are left as they are
  m.forward({{1, 7, 49, 49, 49}}, o);
  for (const auto& [name, p] : seen) EXPECT_EQ(p, ops::Precision::Fp32) << name;
}

TEST(ClipText, ClipSkipStyles) {
  ClipTextModel m = tiny_model();
  std::vector<std::vector<int64_t>> ids = {{1, 5, 9, 49, 49}};
  ClipOptions all;
  all.keep_hidden_states = true;
  ClipOutput ref = m.forward(ids, all);
  ClipOptions sd1;
  sd1.clip_skip = 2;
  EXPECT_EQ(max_diff(m.forward(ids, sd1).context, m.final_norm(ref.hidden_states[kLayers - 1])), 0.f);
  ClipOptions sdxl;
  sdxl.clip_skip = 2;
  sdxl.final_norm = false;
  EXPECT_EQ(max_diff(m.forward(ids, sdxl).context, ref.hidden_states[kLayers - 1]), 0.f);
  ClipOptions raw_last;
  raw_last.final_norm = false;
  EXPECT_EQ(max_diff(m.forward(ids, raw_last).context, ref.hidden_states[kLayers]), 0.f);
  ClipOptions bad;
  bad.clip_skip = kLayers + 1;
  EXPECT_THROW(m.forward(ids, bad), Error);
  bad.clip_skip = 0;
  EXPECT_THROW(m.forward(ids, bad), Error);
}

TEST(ClipText, BatchEqualsSingles) {
  ClipTextModel m = tiny_model();
  std::vector<int64_t> a = {1, 2, 3, 49, 49, 49}, b = {1, 40, 49, 49, 49, 49};
  ClipOutput both = m.forward({a, b});
  ClipOutput one = m.forward({a}), two = m.forward({b});
  EXPECT_LT(max_diff(ops::slice(both.last_hidden_state, 0, 0, 1), one.last_hidden_state), 1e-6f);
  EXPECT_LT(max_diff(ops::slice(both.last_hidden_state, 0, 1, 2), two.last_hidden_state), 1e-6f);
  EXPECT_LT(max_diff(ops::slice(both.text_embeds, 0, 1, 2), two.text_embeds), 1e-6f);
}

TEST(ClipText, CausalAttentionIgnoresLaterTokens) {
  ClipTextModel m = tiny_model();
  ClipOutput x = m.forward({{1, 2, 3, 4}}), y = m.forward({{1, 2, 3, 30}});
  EXPECT_EQ(max_diff(ops::slice(x.last_hidden_state, 1, 0, 3), ops::slice(y.last_hidden_state, 1, 0, 3)), 0.f);
  EXPECT_GT(max_diff(ops::slice(x.last_hidden_state, 1, 3, 4), ops::slice(y.last_hidden_state, 1, 3, 4)), 0.f);
}

TEST(ClipText, PooledPosition) {
  ClipTextModel legacy = tiny_model();
  EXPECT_EQ(legacy.pooled_position({1, 5, 49, 49}), 2);  // eos id 2: first maximum
  ClipTextConfig c = tiny_config();
  c.eos_token_id = 7;
  ClipTextModel modern = ClipTextModel::load(c, Weights(tiny_weights(), "tiny"));
  EXPECT_EQ(modern.pooled_position({1, 9, 7, 7, 0}), 2);  // first eos
  EXPECT_EQ(modern.pooled_position({1, 9, 3}), 0);        // none: position 0, as transformers
}

TEST(ClipText, ExtraEmbeddingRows) {
  ClipTextModel m = tiny_model();
  Tensor extra = filled({2, kHidden}, 99);
  ClipOptions o;
  o.extra_rows = &extra;
  o.keep_hidden_states = true;
  ClipOutput out = m.forward({{1, kVocab + 1, kVocab, 49}}, o);
  // hidden_states[0] = token row + position row; the added ids take the supplied rows.
  Tensor pos = tiny_weights()->at("text_model.embeddings.position_embedding.weight");
  auto h0 = out.hidden_states[0].to_vector(), e = extra.to_vector(), p = pos.to_vector();
  for (int64_t d = 0; d < kHidden; ++d) {
    EXPECT_FLOAT_EQ(h0[1 * kHidden + d], e[1 * kHidden + d] + p[1 * kHidden + d]);
    EXPECT_FLOAT_EQ(h0[2 * kHidden + d], e[0 * kHidden + d] + p[2 * kHidden + d]);
  }
  // The pooled output is at the highest id: the last added token here, as in the ti golden case.
  EXPECT_EQ(m.pooled_position({1, kVocab + 1, kVocab, 49}), 1);
  EXPECT_THROW(m.forward({{1, kVocab + 2}}, o), Error);  // beyond the added rows
  EXPECT_THROW(m.forward({{1, kVocab}}), Error);         // no added rows at all
  Tensor wrong = filled({1, kHidden + 1}, 3);
  o.extra_rows = &wrong;
  EXPECT_THROW(m.forward({{1, 2}}, o), Error);
}

TEST(ClipText, BadInputsThrow) {
  ClipTextModel m = tiny_model();
  EXPECT_THROW(m.forward({}), Error);
  EXPECT_THROW(m.forward({{1, 2}, {1}}), Error);                 // ragged batch
  EXPECT_THROW(m.forward({{1, 2, 3, 4, 5, 6, 7}}), Error);       // longer than the positions
  EXPECT_THROW(m.forward({{1, -1}}), Error);
}

TEST(ClipText, LoadChecksTensors) {
  auto w = tiny_weights();
  w->erase("text_model.encoder.layers.1.mlp.fc2.bias");
  try {
    ClipTextModel::load(tiny_config(), Weights(w, "tiny.safetensors"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layers.1.mlp.fc2.bias"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("tiny.safetensors"), std::string::npos);
  }
  ClipTextConfig c = tiny_config();
  c.hidden_size = 16;
  EXPECT_THROW(ClipTextModel::load(c, Weights(tiny_weights(), "tiny")), Error);  // shapes disagree
  c = tiny_config();
  c.num_hidden_layers = 2;
  EXPECT_THROW(ClipTextModel::load(c, Weights(tiny_weights(), "tiny")), Error);  // extra layer in the file
  c = tiny_config();
  c.with_projection = false;
  auto no_proj = tiny_weights();
  no_proj->erase("text_projection.weight");
  EXPECT_FALSE(ClipTextModel::load(c, Weights(no_proj, "tiny")).forward({{1, 2}}).text_embeds.defined());
}

TEST(ClipText, ConfigFromJson) {
  ModelConfig j(nlohmann::json::parse(R"({"architectures": ["CLIPTextModelWithProjection"], "hidden_size": 32,
    "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 5, "hidden_act": "gelu",
    "projection_dim": 32, "eos_token_id": 2, "bos_token_id": 0, "layer_norm_eps": 1e-05})"),
                "cfg.json");
  ClipTextConfig c = ClipTextConfig::from_config(j);
  EXPECT_TRUE(c.with_projection);
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_EQ(c.num_hidden_layers, 5);
  EXPECT_EQ(c.hidden_act, "gelu");
  EXPECT_EQ(c.eos_token_id, 2);
  EXPECT_EQ(c.vocab_size, 49408);  // default
  ModelConfig nested(nlohmann::json::parse(R"({"text_config": {"hidden_size": 64, "num_attention_heads": 4}})"), "m");
  EXPECT_EQ(ClipTextConfig::from_config(nested).hidden_size, 64);
  EXPECT_THROW(ClipTextConfig::from_config(ModelConfig(nlohmann::json::parse(R"({"hidden_act": "relu"})"), "x")),
               Error);
  EXPECT_THROW(ClipTextConfig::from_config(
                   ModelConfig(nlohmann::json::parse(R"({"hidden_size": 30, "num_attention_heads": 4})"), "x")),
               Error);
}

}  // namespace
}  // namespace pigment
