#!/usr/bin/env bash
# A single-file checkpoint needs no tokenizer files: pigment generate on the tiny golden SD1 single file without
# --tokenizer, with HOME and every Hugging Face cache variable pointing at empty folders, uses the built-in CLIP table
# and gives the same image as the ../shared tokenizer files. --tokenizer still works, with OpenAI's
# bpe_simple_vocab_16e6.txt.gz too, and a stray special_tokens_map.json beside the files does not change SD1's pad.
set -u
source "$(dirname "$0")/lib/common.bash"
requires python3
TOK=$SHARED/clip-tokenizer
NO_TOK=()  # TINY_SD1 less its --tokenizer
for ((i = 0; i < ${#TINY_SD1[@]}; i++)); do
  if [ "${TINY_SD1[i]}" = --tokenizer ]; then i=$((i + 1)); else NO_TOK+=("${TINY_SD1[i]}"); fi
done
mkdir -p "$T/home" "$T/hf" "$T/hub" "$T/xdg"
# Nothing to find anywhere: an empty home, empty caches, no other HF_* variable.
for v in $(env | sed -n 's/^\(HF_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$v"; done
export HOME=$T/home HF_HOME=$T/hf HF_HUB_CACHE=$T/hub HUGGINGFACE_HUB_CACHE=$T/hub XDG_CACHE_HOME=$T/xdg
gen() { "$BIN/pigment" generate "${NO_TOK[@]}" -q -p "a red fox in the snow, highly detailed!!" -n "blurry" \
          -W 32 -H 32 --steps 2 -s 5 "$@"; }

gen -o "$T/builtin.png" 2>"$T/err.txt"
check "no --tokenizer, empty caches: an image" '[ -s "$T/builtin.png" ]'
check "  and no error" '[ ! -s "$T/err.txt" ] || { cat "$T/err.txt"; false; }'

gen --tokenizer "$TOK" -o "$T/files.png"
check "same image as with --tokenizer ../shared/clip-tokenizer" '[ "$(idat "$T/builtin.png")" = "$(idat "$T/files.png")" ]'

python3 - "$TOK/merges.txt" "$T/openai/bpe_simple_vocab_16e6.txt.gz" <<'PY'
import gzip, os, sys
merges = open(sys.argv[1], encoding="utf-8").read().split("\n")[1:]
os.makedirs(os.path.dirname(sys.argv[2]), exist_ok=True)
# OpenAI's layout: a quoted header line, then the merges (and more than CLIP reads).
with gzip.open(sys.argv[2], "wt", encoding="utf-8") as f:
    f.write('"bpe_simple_vocab_16e6.txt#version: 0.2\n' + "\n".join(m for m in merges if m) + "\nq z\nz q\n")
PY
gen --tokenizer "$T/openai/bpe_simple_vocab_16e6.txt.gz" -o "$T/gz.png"
check "--tokenizer bpe_simple_vocab_16e6.txt.gz: same image" '[ "$(idat "$T/builtin.png")" = "$(idat "$T/gz.png")" ]'
gen --tokenizer "$T/openai" -o "$T/gzdir.png"
check "--tokenizer a folder with the .gz: same image" '[ "$(idat "$T/builtin.png")" = "$(idat "$T/gzdir.png")" ]'

# A tokenizer folder whose special_tokens_map.json says "!" (SD2's pad): SD1 still pads with <|endoftext|>.
mkdir -p "$T/stray"
cp "$TOK/vocab.json" "$TOK/merges.txt" "$T/stray/"
echo '{"pad_token": "!"}' >"$T/stray/special_tokens_map.json"
gen --tokenizer "$T/stray" -o "$T/stray.png"
check "a stray pad token in special_tokens_map.json is ignored" '[ "$(idat "$T/builtin.png")" = "$(idat "$T/stray.png")" ]'

out=$(gen --tokenizer "$T/missing" -o "$T/bad.png" 2>&1 >/dev/null); rc=$?
check "--tokenizer that does not exist: an error naming it" '[ $rc -ne 0 ] && grep -q "$T/missing" <<<"$out" && [ ! -e "$T/bad.png" ]'
[ $fails -eq 0 ]
