#include "text/prompt_chunks.h"

#include <algorithm>

#include "core/error.h"

namespace pigment {
namespace {

// SD2 / OpenCLIP: everything after the first eos becomes the pad id.
void apply_padding(PromptChunk& c, int eos, int pad) {
  if (pad < 0 || pad == eos) return;
  auto it = std::find(c.ids.begin(), c.ids.end(), eos);
  if (it != c.ids.end()) std::fill(it + 1, c.ids.end(), pad);
}

}  // namespace

ChunkedPrompt chunk_prompt(const ClipTokenizer& tokenizer, const std::vector<WeightedText>& parsed,
                           const ChunkOptions& options) {
  const int length = options.chunk_length;
  PIG_CHECK(length >= 1, "prompt chunks: chunk_length ", length, " must be at least 1");
  const int bos = tokenizer.bos_id(), eos = tokenizer.eos_id();
  const int comma = tokenizer.token_to_id(",</w>");

  ChunkedPrompt out;
  std::vector<int> ids;  // the current chunk, without bos/eos
  std::vector<double> weights;
  int last_comma = -1;

  auto next_chunk = [&](bool is_last) {
    out.token_count += is_last ? int(ids.size()) : length;
    if (int(ids.size()) < length) {
      weights.resize(size_t(length), 1.0);
      ids.resize(size_t(length), eos);
    }
    PromptChunk c;
    c.ids.reserve(size_t(length) + 2);
    c.ids.push_back(bos);
    c.ids.insert(c.ids.end(), ids.begin(), ids.end());
    c.ids.push_back(eos);
    c.weights.push_back(1.0);
    c.weights.insert(c.weights.end(), weights.begin(), weights.end());
    c.weights.push_back(1.0);
    apply_padding(c, eos, options.pad_id);
    out.chunks.push_back(std::move(c));
    ids.clear();
    weights.clear();
    last_comma = -1;
  };

  for (const WeightedText& piece : parsed) {
    if (piece.is_break()) {
      next_chunk(false);
      continue;
    }
    const std::vector<int> tokens = tokenizer.encode(piece.text);
    size_t pos = 0;
    while (pos < tokens.size()) {
      const int token = tokens[pos];
      if (token == comma) {
        last_comma = int(ids.size());
      } else if (options.comma_backtrack != 0 && int(ids.size()) == length && last_comma != -1 &&
                 int(ids.size()) - last_comma <= options.comma_backtrack) {
        // Move what follows the last comma into the next chunk.
        size_t cut = size_t(last_comma) + 1;
        std::vector<int> moved_ids(ids.begin() + long(cut), ids.end());
        std::vector<double> moved_weights(weights.begin() + long(cut), weights.end());
        ids.resize(cut);
        weights.resize(cut);
        next_chunk(false);
        ids = std::move(moved_ids);
        weights = std::move(moved_weights);
      }
      if (int(ids.size()) == length) next_chunk(false);

      int group = options.group_length ? options.group_length(tokens, pos) : 1;
      if (group <= 1) {
        ids.push_back(token);
        weights.push_back(piece.weight);
        ++pos;
        continue;
      }
      group = int(std::min<size_t>(size_t(group), tokens.size() - pos));
      PIG_CHECK(group <= length, "prompt chunks: an embedding of ", group, " tokens does not fit in a chunk of ",
                length);
      if (int(ids.size()) + group > length) next_chunk(false);
      ids.insert(ids.end(), tokens.begin() + long(pos), tokens.begin() + long(pos) + group);
      weights.insert(weights.end(), size_t(group), piece.weight);
      pos += size_t(group);
    }
  }
  if (!ids.empty() || out.chunks.empty()) next_chunk(true);
  return out;
}

ChunkedPrompt chunk_prompt(const ClipTokenizer& tokenizer, std::string_view prompt, const ChunkOptions& options) {
  return chunk_prompt(tokenizer, parse_prompt_attention(prompt), options);
}

PromptChunk empty_prompt_chunk(const ClipTokenizer& tokenizer, const ChunkOptions& options) {
  PromptChunk c;
  c.ids.assign(size_t(options.chunk_length) + 2, tokenizer.eos_id());
  c.ids[0] = tokenizer.bos_id();
  c.weights.assign(c.ids.size(), 1.0);
  apply_padding(c, tokenizer.eos_id(), options.pad_id);
  return c;
}

}  // namespace pigment
