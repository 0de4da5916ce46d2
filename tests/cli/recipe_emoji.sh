#!/usr/bin/env bash
# pigment train --recipe emoji at toy scale (24 emoji, 2 steps a stage): every stage writes its result (data set,
# merges, random init, VAE, text encoder, UNet), a second run finds them and trains nothing, the model is one
# self-describing file, and `pigment generate` uses it with no -m (PIGMENT_MODEL) at its own 64x64 size, in English
# and Chinese. Bad recipe input is one line and a non-zero exit.
set -uo pipefail
source "$(dirname "$0")/lib/common.bash"
R="$T/recipe"
rec() { "$BIN/pigment" train --recipe emoji --recipe-dir "$R" --recipe-limit 24 --recipe-merges 200 \
          --recipe-vae-steps 2 --recipe-vae-batch 2 --recipe-text-steps 2 --recipe-text-batch 4 --recipe-unet-steps 2 --recipe-unet-batch 2 --threads 1 "$@"; }
rec >"$T/out" 2>&1
check "recipe runs" "grep -q 'recipe emoji: wrote $R/pigment-emoji.safetensors' '$T/out'"
for f in data/metadata.jsonl merges.txt init.safetensors vae.safetensors text.safetensors pigment-emoji.safetensors \
         vae.run/log.csv text.run/log.csv unet.run/log.csv; do
  check "stage output $f" "[ -s '$R/$f' ]"
done
rec >"$T/out2" 2>&1
check "second run trains nothing" "grep -q 'unet: .* exists' '$T/out2' && ! grep -q 'step 1/' '$T/out2'"

"$BIN/pigment" inspect "$R/pigment-emoji.safetensors" >"$T/inspect" 2>&1
check "self-describing file" "grep -q 'pigment.family: pigment-emoji' '$T/inspect' && grep -q 'pigment.tokenizer.merges' '$T/inspect'"
check "f16" "grep -q 'dtype F16' '$T/inspect'"

PIGMENT_MODEL="$R/pigment-emoji.safetensors" "$BIN/pigment" generate -p "red apple" --steps 2 -s 1 -o "$T/a.png" \
  >"$T/gen" 2>&1
check "generate with no -m" "grep -q '64x64, 2 steps' '$T/gen' && [ -s '$T/a.png' ]"
PIGMENT_MODEL="$R/pigment-emoji.safetensors" "$BIN/pigment" generate -p "红苹果" --steps 2 -s 1 -o "$T/b.png" \
  >"$T/gen2" 2>&1
check "chinese prompt" "[ -s '$T/b.png' ] && ! cmp -s '$T/a.png' '$T/b.png'"
PIGMENT_MODEL="$T/none.safetensors" HOME="$T" "$BIN/pigment" generate -p x -o "$T/c.png" >"$T/err" 2>&1
check "no default model: one line, exit 1" "[ \$? -ne 0 ] && [ \$(wc -l <'$T/err') -eq 1 ] && grep -q 'PIGMENT_MODEL' '$T/err'"

"$BIN/pigment" train --recipe pasta >"$T/err2" 2>&1; rc=$?
check "unknown recipe" "[ $rc -ne 0 ] && grep -q \"unknown recipe 'pasta'\" '$T/err2'"
"$BIN/pigment" train --recipe emoji -m x --recipe-dir "$T/r2" >"$T/err3" 2>&1; rc=$?
check "recipe with -m refused" "[ $rc -ne 0 ] && grep -q 'leave out -m' '$T/err3'"
[ "$fails" -eq 0 ]
