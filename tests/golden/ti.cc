// ti/textual_inversion: two A1111 embeddings (.pt and .safetensors) added to the tiny SD1 text encoder: added token
// ids, rewritten prompts, ids, prompt embeddings, pooled output and the new embedding rows.
#include <regex>

#include "golden.h"
#include "models/clip_text.h"
#include "models/model_config.h"
#include "pipelines/embedding_set.h"
#include "text/tokenizer_files.h"

namespace pigment::golden {
namespace {

void run_ti(Case& c) {
  const auto& spec = c.spec();
  TokenizerLocation where;
  where.path = c.tokenizer_dir().string();
  where.search_hf_cache = false;
  ClipTokenizer tok = ClipTokenizer::load(where);
  // "... into the tiny SD1 text encoder (models/clip_sd1) ..."
  std::smatch m;
  const std::string description = spec.value("description", "");
  PIG_CHECK(std::regex_search(description, m, std::regex(R"(text encoder \((models/\w+)\))")), c.name(),
            ": the description names no text encoder folder");
  fs::path model_dir = c.golden_root() / std::string(m[1]);
  ClipTextConfig config = ClipTextConfig::from_config(ModelConfig::load(model_dir.string()));
  SafeTensors st = SafeTensors::open((model_dir / "model.safetensors").string());
  auto map = std::make_shared<TensorMap>();
  for (const auto& e : st.entries()) (*map)[e.name] = st.get(e.name);
  ClipTextModel model = ClipTextModel::load(config, Weights(map, model_dir.string()));
  EmbeddingSet set;
  // Each "pipe.load_textual_inversion('ti/embeddings/my-concept.pt', token='<my-concept>')" of the producer.
  int loaded = 0;
  for (const auto& call : spec["producer"]["calls"]) {
    const std::string text = call.get<std::string>();
    if (!std::regex_search(text, m, std::regex(R"(load_textual_inversion\('([^']+)',\s*token='([^']+)'\))"))) continue;
    const fs::path file = c.golden_root() / std::string(m[1]);
    Embedding e = load_embedding(file.string(), m[2]);
    c.compare("embedding." + file.stem().string(), e.vectors);
    set.add(e, tok, config.vocab_size, config.hidden_size);
    ++loaded;
  }
  PIG_CHECK(loaded > 0, c.name(), ": the producer's calls load no embedding");
  for (const auto& [token, id] : spec["added_tokens"].items())
    c.compare_ids("added token " + token, {tok.token_to_id(token)}, {id.get<int64_t>()});
  c.compare("token_embedding_rows", set.extra_rows());

  std::vector<std::vector<int64_t>> ids;
  for (const auto& p : spec["prompts"]) {
    std::string converted = set.expand(p["prompt"].get<std::string>());
    c.compare_text("converted " + p["prompt"].get<std::string>(), converted, p["converted_prompt"]);
    std::vector<int> padded = tok.encode_padded(converted, ClipTokenizer::kContextLength);
    ids.emplace_back(padded.begin(), padded.end());
    c.compare_ids("ids " + converted, ids.back(), p["ids_77"].get<std::vector<int64_t>>());
  }
  ClipOptions opt;
  opt.extra_rows = &set.extra_rows();
  ClipOutput out = model.forward(ids, opt);
  c.compare("prompt_embeds", out.last_hidden_state);
  c.compare("pooler_output", out.pooled);
}

Register reg("ti/", run_ti);

}  // namespace
}  // namespace pigment::golden
