# Text: CLIP tokenizer and A1111 prompt syntax (tests/golden/tokenizer.cc, tests/golden/prompt.cc).
list(APPEND PIGMENT_GOLDEN_CASES tokenizer/clip_bpe prompt/a1111_syntax)
