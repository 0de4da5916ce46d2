#!/usr/bin/env bash
# pigment train --method dreambooth on the tiny golden SD1 model through the CLI: prior preservation draws the class
# images once (a resumed run reuses them and repeats the losses), the checkpoint loads in pigment generate -m, the
# --save-as-lora file loads as a LoRA, and misplaced DreamBooth flags are one-line errors.
set -u
source "$(dirname "$0")/lib/common.bash"
P=$BIN/pigment
mkdir -p "$T/subject"
"$P" generate "${TINY_SD1[@]}" -q -W 64 -H 64 --steps 2 -s 1 -p "a" -o "$T/subject/one.png"
"$P" generate "${TINY_SD1[@]}" -q -W 64 -H 64 --steps 2 -s 2 -p "b" -o "$T/subject/two.png"
ARGS=("${TINY_SD1[@]}" --method dreambooth --data "$T/subject" --resolution 64 --threads 1 --seed 3
      --instance-prompt "a photo of sks thing" --class-prompt "a photo of a thing" --num-class-images 2
      --class-image-steps 3 --learning-rate 1e-4)
train() { "$P" train "${ARGS[@]}" "$@"; }
losses() { cut -d, -f1,2 "$1"; }

"$P" train --help > "$T/help.txt"
check "train --help documents dreambooth and its flags" \
  'grep -q "dreambooth" "$T/help.txt" && grep -q -- "--class-prompt" "$T/help.txt" && grep -q -- "--prior-loss-weight" "$T/help.txt" && grep -q -- "--save-as-lora" "$T/help.txt"'

train --output "$T/whole.safetensors" --max-train-steps 6 --save-as-lora --network-dim 4 > "$T/whole.out" 2>&1
check "a 6-step run writes the checkpoint and the LoRA" \
  '[ -s "$T/whole.safetensors" ] && [ -s "$T/whole-lora.safetensors" ] && grep -q "trained 6 steps" "$T/whole.out"'
check "the class images were drawn into RUN_DIR/class_images" \
  '[ "$(ls "$T/whole.safetensors.run/class_images" | wc -l)" -eq 2 ] && grep -q "drawing 2" "$T/whole.out"'
"$P" generate "${TINY_SD1[@]/$M\/sd1_single_file.safetensors/$T/whole.safetensors}" -q -W 64 -H 64 --steps 3 -s 5 \
  -p "a photo of sks thing" -o "$T/tuned.png"
check "pigment generate -m loads the DreamBooth checkpoint" '[ -s "$T/tuned.png" ]'
"$P" generate "${TINY_SD1[@]}" -q -W 64 -H 64 --steps 3 -s 5 -p "a photo of sks thing" \
  --lora "$T/whole-lora.safetensors:1" -o "$T/lora.png" 2> "$T/gen.err"
check "the --save-as-lora file loads with no unmatched key" '[ -s "$T/lora.png" ] && ! grep -qi "match" "$T/gen.err"'

# Interrupted after 3 steps and resumed: the class images are reused (same files, same times), the losses repeat.
train --output "$T/part.safetensors" --max-train-steps 3 > /dev/null 2>&1
before=$(stat -c '%n %Y %s' "$T/part.safetensors.run/class_images"/*)
train --output "$T/part.safetensors" --max-train-steps 6 --resume > "$T/resume.out" 2>&1
after=$(stat -c '%n %Y %s' "$T/part.safetensors.run/class_images"/*)
check "resume reuses the class images" 'grep -q "(reused)" "$T/resume.out" && [ "$before" = "$after" ]'
check "resumed losses equal the uninterrupted run's" \
  '[ "$(losses "$T/part.safetensors.run/log.csv")" = "$(losses "$T/whole.safetensors.run/log.csv")" ]'

# Bad input: one line on stderr, exit 1.
err() {
  local what=$1; shift
  "$P" train "$@" > "$T/err.out" 2> "$T/err.txt"; local rc=$?
  check "$what: exit 1, one line" '[ $rc -eq 1 ] && [ "$(wc -l < "$T/err.txt")" -eq 1 ] && grep -q "^error: " "$T/err.txt"'
}
err "--class-prompt with --method lora" "${TINY_SD1[@]}" --data "$T/subject" --method lora --class-prompt "x" \
  --output "$T/x.safetensors"
err "--with-prior-preservation without --class-prompt" "${TINY_SD1[@]}" --data "$T/subject" --method dreambooth \
  --with-prior-preservation --output "$T/x.safetensors"
err "a negative prior loss weight" "${ARGS[@]}" --prior-loss-weight -1 --output "$T/x.safetensors" \
  --class-data-dir "$T/x-class"
check "no output from the failed runs" '[ ! -e "$T/x.safetensors" ]'

echo "$fails failure(s)"
[ $fails -eq 0 ]
