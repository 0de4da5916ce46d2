#!/usr/bin/env bash
# pigment train on the tiny golden SD1 model: a LoRA and a textual inversion through the public CLI, runs killed
# with SIGKILL or stopped with SIGINT and resumed give the losses of an uninterrupted run, the results load in
# pigment generate, and bad input is a one-line error before the first step.
set -u
source "$(dirname "$0")/lib/common.bash"
requires python3
P=$BIN/pigment
# Training data: two images the tiny model draws, with captions (any image will do for these checks).
mkdir -p "$T/data/2_thing"
"$P" generate "${TINY_SD1[@]}" -q -W 64 -H 64 --steps 2 -s 1 -p "a" -o "$T/data/one.png"
"$P" generate "${TINY_SD1[@]}" -q -W 64 -H 64 --steps 2 -s 2 -p "b" -o "$T/data/2_thing/two.png"
echo "a red thing" > "$T/data/one.txt"
ARGS=("${TINY_SD1[@]}" --data "$T/data" --resolution 64 --no-buckets --threads 1 --seed 3)
train() { "$P" train "${ARGS[@]}" "$@"; }
losses() { cut -d, -f1,2 "$1"; }

train --output "$T/full.safetensors" --max-train-steps 30 > "$T/full.out" 2>&1
check "a 30-step LoRA run writes its file" '[ -s "$T/full.safetensors" ] && grep -q "trained 30 steps" "$T/full.out"'
check "log.csv has a header and 30 rows" '[ "$(wc -l < "$T/full.safetensors.run/log.csv")" -eq 31 ]'
"$P" generate "${TINY_SD1[@]}" -q -W 64 -H 64 --steps 3 -s 5 -p "a red thing" -o "$T/base.png"
"$P" generate "${TINY_SD1[@]}" -q -W 64 -H 64 --steps 3 -s 5 -p "a red thing" --lora "$T/full.safetensors:1" \
  -o "$T/lora.png" 2> "$T/gen.err"
check "pigment generate loads the trained LoRA with no unmatched key, and it changes the pixels" \
  '[ -s "$T/lora.png" ] && ! grep -qi "match" "$T/gen.err" && [ "$(idat "$T/lora.png")" != "$(idat "$T/base.png")" ]'

# SIGKILL in the middle, resume: the same losses as the uninterrupted run, bit for bit.
# (in the background the binary itself, not a shell function, so that $! is its process)
"$P" train "${ARGS[@]}" --output "$T/k.safetensors" --max-train-steps 30 --save-every-n-steps 4 > /dev/null 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  [ -f "$T/k.safetensors.run/log.csv" ] && [ "$(wc -l < "$T/k.safetensors.run/log.csv")" -ge 15 ] && break
  sleep 0.05
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
check "the killed run left a checkpoint and no output" '[ -d "$T/k.safetensors.run/checkpoint" ] && [ ! -e "$T/k.safetensors" ]'
train --output "$T/k.safetensors" --max-train-steps 30 --save-every-n-steps 4 --resume > "$T/k.out" 2>&1
check "resume after SIGKILL finishes" 'grep -q "resumed from" "$T/k.out" && [ -s "$T/k.safetensors" ]'
check "resumed losses equal the uninterrupted run's" \
  '[ "$(losses "$T/k.safetensors.run/log.csv")" = "$(losses "$T/full.safetensors.run/log.csv")" ]'
check "the resumed LoRA has the same bytes" 'cmp -s "$T/k.safetensors" "$T/full.safetensors"'

# SIGINT: a checkpoint at the current step, exit 0; resume completes.
"$P" train "${ARGS[@]}" --output "$T/i.safetensors" --max-train-steps 30 > "$T/i.out" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  [ -f "$T/i.safetensors.run/log.csv" ] && [ "$(wc -l < "$T/i.safetensors.run/log.csv")" -ge 8 ] && break
  sleep 0.05
done
kill -INT $pid; wait $pid; rc=$?
check "SIGINT saves and exits 0" '[ $rc -eq 0 ] && grep -q "stopped at step" "$T/i.out" && [ -d "$T/i.safetensors.run/checkpoint" ]'
train --output "$T/i.safetensors" --max-train-steps 30 --resume > /dev/null 2>&1
check "resume after SIGINT gives the same losses" \
  '[ "$(losses "$T/i.safetensors.run/log.csv")" = "$(losses "$T/full.safetensors.run/log.csv")" ]'

# Textual inversion: an A1111 embedding that pigment generate uses by name.
train --method textual-inversion --token-string "<thing>" --init-word "cat" --num-vectors-per-token 2 \
  --output "$T/emb/sks-thing.safetensors" --max-train-steps 5 --learning-rate 5e-3 \
  --sample-every-n-steps 5 --sample-prompt "a <thing>" > /dev/null 2>&1
check "textual inversion writes an embedding" '[ -s "$T/emb/sks-thing.safetensors" ]'
check "textual inversion writes a sample image with the new word" \
  '[ -s "$T/emb/sks-thing.safetensors.run/samples/step-000005-0.png" ]'
"$P" generate "${TINY_SD1[@]}" -q -W 64 -H 64 --steps 3 -s 5 -p "a sks-thing" --embedding-dir "$T/emb" \
  -o "$T/ti.png" 2> "$T/ti.err"
"$P" generate "${TINY_SD1[@]}" -q -W 64 -H 64 --steps 3 -s 5 -p "a sks-thing" -o "$T/plain.png"
check "the embedding loads by name and changes the pixels" '[ -s "$T/ti.png" ] && [ "$(idat "$T/ti.png")" != "$(idat "$T/plain.png")" ]'

# A LoRA on the text encoder alone (kohya's --network_train_text_encoder_only): lora_te_* modules, none for the UNet,
# loaded by pigment generate with every module bound, and it changes the picture through the text conditioning.
train --network-train-text-encoder-only --output "$T/te.safetensors" --max-train-steps 3 --learning-rate 1e-2 \
  > /dev/null 2>&1
check "a text-encoder LoRA writes lora_te_ modules and no lora_unet_ ones" \
  '[ -s "$T/te.safetensors" ] && grep -aq "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight" "$T/te.safetensors" &&
   ! grep -aq "lora_unet_" "$T/te.safetensors"'
"$P" generate "${TINY_SD1[@]}" -q -W 64 -H 64 --steps 3 -s 5 -p "a red thing" --lora "$T/te.safetensors:1" \
  -o "$T/te.png" 2> "$T/te.err"
check "pigment generate loads the text-encoder LoRA with no unmatched key, and it changes the pixels" \
  '[ -s "$T/te.png" ] && ! grep -qi "match" "$T/te.err" && [ "$(idat "$T/te.png")" != "$(idat "$T/base.png")" ]'
check "train --help describes the text-encoder LoRA" \
  '"$P" train --help | grep -q -- "--network-train-text-encoder-only" && "$P" train --help | grep -q "lora_te1_"'

# Accumulation, EMA, sample images and the loss curve through the CLI.
train --output "$T/e.safetensors" --max-train-steps 4 --gradient-accumulation-steps 2 --use-ema --ema-decay 0.9 \
  --sample-every-n-steps 2 --sample-prompt "a red thing" --sample-prompt "two" > "$T/e.out" 2>&1
check "accumulation + EMA + samples: 4 logged steps, 4 sample images, a loss curve" \
  '[ -s "$T/e.safetensors" ] && [ "$(wc -l < "$T/e.safetensors.run/log.csv")" -eq 5 ] &&
   [ "$(ls "$T/e.safetensors.run/samples"/step-00000[24]-[01].png | wc -l)" -eq 4 ] && [ -s "$T/e.safetensors.run/loss.png" ] &&
   [ -s "$T/e.safetensors.run/checkpoint/ema.safetensors" ]'
train --method full --output "$T/f.safetensors" --max-train-steps 1 --sample-every-n-steps 1 --sample-prompt "x" \
  > "$T/f.out" 2>&1; rc=$?
check "full fine-tuning writes sample images with the trained weights" \
  '[ $rc -eq 0 ] && [ -s "$T/f.safetensors.run/samples/step-000001-0.png" ] && [ -s "$T/f.safetensors" ] &&
   ! grep -q "cannot write sample" "$T/f.out"'

# Bad input: one line on stderr, exit 1, before anything trains.
err() {
  local what=$1; shift
  train "$@" > "$T/err.out" 2> "$T/err.txt"; local rc=$?
  check "$what: exit 1, one line" '[ $rc -eq 1 ] && [ "$(wc -l < "$T/err.txt")" -eq 1 ] && grep -q "^error: " "$T/err.txt"'
}
err "unknown method" --method nonsense --output "$T/x.safetensors"
err "unknown LR schedule" --lr-scheduler sideways --output "$T/x.safetensors"
"$P" train "${TINY_SD1[@]}" --data "$T/nowhere" --output "$T/x.safetensors" > /dev/null 2> "$T/err.txt"; rc=$?
check "missing data folder: exit 1, one line" '[ $rc -eq 1 ] && [ "$(wc -l < "$T/err.txt")" -eq 1 ]'
err "unwritable output" --output /proc/pigment/x.safetensors
err "resume with no checkpoint" --output "$T/none.safetensors" --resume
err "zero steps" --output "$T/x.safetensors" --max-train-steps 0
err "zero accumulation steps" --output "$T/x.safetensors" --gradient-accumulation-steps 0
err "UNet-only and text-encoder LoRA together" --output "$T/x.safetensors" --network-train-unet-only --train-text-encoder
err "a LoRA flag with another method" --method full --output "$T/x.safetensors" --network-train-text-encoder-only
for m in hypernetwork controlnet vae textual-inversion; do
  err "--train-text-encoder with --method $m (which trains no text encoder)" --method $m --train-text-encoder \
    --output "$T/x.safetensors"
  check "... names the method" 'grep -q "method $m trains no text encoder" "$T/err.txt"'
done
err "--text-encoder-lr without --train-text-encoder" --output "$T/x.safetensors" --text-encoder-lr 1e-5
err "an 8-bit optimizer" --output "$T/x.safetensors" --optimizer-type AdamW8bit
check "... says it is not supported" 'grep -q "AdamW8bit is not supported" "$T/err.txt"'
err "an unknown optimizer argument" --output "$T/x.safetensors" --optimizer-type SGD --optimizer-args "momentum=0.9 betas=0.9,0.99"
check "... names the key" 'grep -q "unknown key .betas." "$T/err.txt"'
err "--adam-weight-decay with SGD" --output "$T/x.safetensors" --optimizer-type SGD --adam-weight-decay 0.1
err "resume with another optimizer than the checkpoint's" --output "$T/full.safetensors" --max-train-steps 31 --resume \
  --optimizer-type sgdnesterov
check "... names both" 'grep -q "written with --optimizer-type AdamW, this run uses SGDNesterov" "$T/err.txt"'
err "caption line weights without --caption-per-line" --output "$T/x.safetensors" --caption-line-weights 4,1
check "... says what it needs" 'grep -q "needs --caption-per-line" "$T/err.txt"'
err "a caption line weight that is not a number" --output "$T/x.safetensors" --caption-per-line \
  --caption-line-weights 4,x
err "a negative caption line weight" --output "$T/x.safetensors" --caption-per-line --caption-line-weights 4,-1
err "a timestep range beyond the model's schedule" --output "$T/x.safetensors" --min-timestep 900 --max-timestep 1200
check "... names the schedule's length" 'grep -q "schedule has 1000 timesteps" "$T/err.txt"'
check "no output file from the failed runs" '[ ! -e "$T/x.safetensors" ]'
check "train --help lists the optimizers" \
  '"$P" train --help | grep -q -- "--optimizer-type" && "$P" train --help | grep -q "SGDNesterov" &&
   "$P" train --help | grep -q -- "--optimizer-args"'

echo "$fails failure(s)"
[ $fails -eq 0 ]
