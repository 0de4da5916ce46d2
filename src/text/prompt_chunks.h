// Long and weighted prompts as A1111 feeds them to CLIP (modules/sd_hijack_clip.py, tokenize_line): the parsed
// (text, weight) pieces are tokenized one by one and packed into chunks of 75 tokens, each wrapped as
// bos + 75 + eos = 77 with a weight per token (1.0 on bos, eos and padding). The encoder runs once per chunk and
// the outputs are concatenated, so a prompt has no length limit.
//   - BREAK ({"BREAK", -1} from parse_prompt_attention) closes the current chunk, padding it to 75 with eos.
//   - Comma back-off: when a chunk is full and a comma was among its last `comma_backtrack` tokens, the tokens after
//     that comma move to the next chunk, so a phrase is not cut in two.
//   - A textual-inversion embedding that spans several tokens is never split across chunks (group_length).
//   - SD2 / OpenCLIP pads with id 0 after the first eos of each chunk (pad_id). Note that A1111 tokenizes SD2
//     prompts with OpenCLIP's tokenizer, which gives "!" no special meaning: use a tokenizer without the "!" pad
//     token (ClipTokenizer::set_pad_token) together with pad_id 0 to reproduce it.
#pragma once
#include <functional>
#include <string_view>
#include <vector>

#include "text/clip_tokenizer.h"
#include "text/prompt_parser.h"

namespace pigment {

struct PromptChunk {
  std::vector<int> ids;         // chunk_length + 2 ids
  std::vector<double> weights;  // one per id; A1111 hands them to the encoder as float32
};

struct ChunkOptions {
  int chunk_length = 75;     // tokens per chunk between bos and eos
  int comma_backtrack = 20;  // A1111's "comma_padding_backtrack" setting; 0 turns the back-off off
  int pad_id = -1;           // id after each chunk's first eos; negative: eos (SD1, SDXL encoder 1)
  // Tokens that must stay in one chunk starting at `pos` of a piece's ids (a multi-vector embedding's ids);
  // values <= 1 mean an ordinary token. Optional.
  std::function<int(const std::vector<int>& ids, size_t pos)> group_length;
};

struct ChunkedPrompt {
  std::vector<PromptChunk> chunks;  // at least one
  int token_count = 0;              // A1111's count: 75 per full chunk, plus the used part of the last one
};

ChunkedPrompt chunk_prompt(const ClipTokenizer& tokenizer, const std::vector<WeightedText>& parsed,
                           const ChunkOptions& options = {});
// parse_prompt_attention, then chunk_prompt.
ChunkedPrompt chunk_prompt(const ClipTokenizer& tokenizer, std::string_view prompt, const ChunkOptions& options = {});

// A chunk with no text (bos, then eos / padding): what A1111 uses to even out the chunk counts of a batch.
PromptChunk empty_prompt_chunk(const ClipTokenizer& tokenizer, const ChunkOptions& options = {});

}  // namespace pigment
