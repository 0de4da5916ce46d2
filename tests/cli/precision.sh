#!/usr/bin/env bash
# pigment generate --precision: fast writes an image (the bf16 path where the CPU has AMX, else the fp32 one),
# the same bytes at 1 and 2 threads, and an unknown precision is a one-line error.
set -u
BIN=${PIGMENT_BIN_DIR:-build/bin}
SHARED=${PIGMENT_SHARED_DIR:-../shared}
M=$SHARED/golden/models
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails+1)); fi; }
gen() { "$BIN/pigment" generate -m "$M/sd1_single_file.safetensors" --tokenizer "$SHARED/clip-tokenizer" \
  --model-config unet=$M/unet_sd1 --model-config vae=$M/vae --model-config text_encoder=$M/clip_sd1 -q \
  -p "a cat" -W 32 -H 32 --steps 3 -s 7 "$@"; }

gen --precision fp32 -o "$T/fp32.png"
gen --precision fast -t 1 -o "$T/fast1.png"
gen --precision fast -t 2 -o "$T/fast2.png"
check "fp32 and fast both write a PNG" '[ -s "$T/fp32.png" ] && [ -s "$T/fast1.png" ]'
check "fast gives the same bytes at 1 and 2 threads" 'cmp -s "$T/fast1.png" "$T/fast2.png"'
check "fp32 is the default" 'gen -o "$T/default.png" && cmp -s "$T/fp32.png" "$T/default.png"'
out=$(gen --precision half -o "$T/bad.png" 2>&1); rc=$?
check "unknown precision: exit 1, one line, no file" '[ $rc -ne 0 ] && [ $(wc -l <<<"$out") -eq 1 ] && [ ! -e "$T/bad.png" ]'
exit $((fails > 0))
