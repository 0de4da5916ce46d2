// Golden runner for tokenizer/*: CLIP BPE ids, tokens, SD1 / SD2 77-token ids, the ids without ftfy and the ids of
// OpenAI's own SimpleTokenizer (ids_openai: ftfy, then html.unescape twice) for every prompt of the case. A prompt
// that lacks one of these lists is a failure, not a skipped check.
#include <cstdio>
#include <string>
#include <vector>

#include "golden.h"
#include "text/clip_tokenizer.h"
#include "text/tokenizer_files.h"

namespace pigment::golden {
namespace {

std::vector<int64_t> widen(const std::vector<int>& v) { return std::vector<int64_t>(v.begin(), v.end()); }

std::string joined(const std::vector<std::string>& tokens) {
  std::string s;
  for (const auto& t : tokens) s += (s.empty() ? "" : " ") + t;
  return s;
}

void run_clip_bpe(Case& c) {
  TokenizerLocation where;
  where.path = c.tokenizer_dir().string();
  ClipTokenizer tok = ClipTokenizer::load(where);
  // The SD2 tokenizer is the same pair of files with pad_token "!" (which transformers then also splits out).
  ClipTokenizer tok2 = ClipTokenizer::load(where);
  tok2.set_pad_token(ClipTokenizer::kSd2PadToken);
  ClipTokenizer basic = ClipTokenizer::load(where);
  basic.set_text_cleanup(ClipTokenizer::TextCleanup::kBasic);
  ClipTokenizer openai = ClipTokenizer::load(where);
  openai.set_text_cleanup(ClipTokenizer::TextCleanup::kOpenai);
  const auto& prompts = c.spec().at("prompts");
  std::vector<float> sd1, sd2;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto& p = prompts[i];
    const std::string text = p.at("prompt").get<std::string>();
    const std::string label = "prompt[" + std::to_string(i) + "] ";
    c.compare_ids(label + "ids", widen(tok.encode_with_special(text)), p.at("ids").get<std::vector<int64_t>>());
    c.compare_text(label + "tokens", joined(tok.tokenize(text)),
                   joined(p.at("tokens").get<std::vector<std::string>>()));
    std::vector<int> ids1 = tok.encode_padded(text);
    std::vector<int> ids2 = tok2.encode_padded(text);
    c.compare_ids(label + "ids_sd1_77", widen(ids1), p.at("ids_sd1_77").get<std::vector<int64_t>>());
    c.compare_ids(label + "ids_sd2_77", widen(ids2), p.at("ids_sd2_77").get<std::vector<int64_t>>());
    for (auto [key, tokenizer] : {std::pair<const char*, const ClipTokenizer*>{"ids_no_ftfy", &basic},
                                  {"ids_openai", &openai}}) {
      if (!p.contains(key))
        c.failure(label + key, "the case gives no such list");
      else
        c.compare_ids(label + key, widen(tokenizer->encode_with_special(text)), p.at(key).get<std::vector<int64_t>>());
    }
    sd1.insert(sd1.end(), ids1.begin(), ids1.end());
    sd2.insert(sd2.end(), ids2.begin(), ids2.end());
  }
  const int64_t n = int64_t(prompts.size());
  if (c.has("ids_sd1_77")) c.compare("ids_sd1_77", Tensor::from_vector({n, ClipTokenizer::kContextLength}, sd1));
  if (c.has("ids_sd2_77")) c.compare("ids_sd2_77", Tensor::from_vector({n, ClipTokenizer::kContextLength}, sd2));
}

Register reg_clip_bpe("tokenizer/", run_clip_bpe);

}  // namespace
}  // namespace pigment::golden
