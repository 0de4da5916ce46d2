#!/usr/bin/env bash
# pigment train on a tiny SD2-style v-prediction model (a diffusers folder made of the golden unet_sd2, vae and
# clip_proj, whose scheduler config says v_prediction): --method lora and --method full take the v target from the
# model's config (--prediction-type overrides it), the loss falls, and the results load back in pigment generate.
set -u
source "$(dirname "$0")/lib/common.bash"
requires python3
P=$BIN/pigment
S=$T/sd2v
mkdir -p "$S/scheduler"
cp -r "$M/unet_sd2" "$S/unet"
cp -r "$M/vae" "$S/vae"
cp -r "$M/clip_proj" "$S/text_encoder"
cat > "$S/model_index.json" <<JSON
{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
 "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"],
 "scheduler": ["diffusers", "DDIMScheduler"]}
JSON
cat > "$S/scheduler/scheduler_config.json" <<JSON
{"_class_name": "DDIMScheduler", "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
 "num_train_timesteps": 1000, "clip_sample": false, "set_alpha_to_one": false, "steps_offset": 1,
 "prediction_type": "v_prediction"}
JSON
SD2=(-m "$S" --tokenizer "$SHARED/clip-tokenizer")
# A single file records no head counts or norm groups: the folder's configs give them.
CONFIGS=(--model-config "unet=$S/unet" --model-config "vae=$S/vae" --model-config "text_encoder=$S/text_encoder")
GEN=(--tokenizer "$SHARED/clip-tokenizer" -q -W 64 -H 64 --steps 3 -s 5 -p "a red thing")
mkdir -p "$T/data"
"$P" generate "${SD2[@]}" -q -W 64 -H 64 --steps 2 -s 1 -p "a" -o "$T/data/one.png"
"$P" generate "${SD2[@]}" -q -W 64 -H 64 --steps 2 -s 2 -p "b" -o "$T/data/two.png"
echo "a red thing" > "$T/data/one.txt"
echo "a blue thing" > "$T/data/two.txt"
train() { "$P" train "${SD2[@]}" --data "$T/data" --resolution 64 --no-buckets --threads 1 --seed 3 "$@"; }
losses() { cut -d, -f1,2 "$1.run/log.csv" | sed 1d | head -n "${2:-1000}"; }
mean_last10() { tail -n 10 "$1.run/log.csv" | awk -F, '{ s += $2 } END { printf "%.6f", s / 10 }'; }
below() { python3 -c "import sys; sys.exit(0 if $1 < $2 * $3 else 1)"; }  # below A B F: A < B * F

check "the tiny model draws" '"$P" generate "${SD2[@]}" -q -W 64 -H 64 --steps 2 -s 1 -p x -o "$T/x.png" && [ -s "$T/x.png" ]'

# LoRA. Every random draw comes from the step's seed, so runs that differ only in the learning rate or the target
# see the same images, timesteps and noise: the loss of a barely moving LoRA (learning rate 1e-9) is the baseline.
train --output "$T/lora.safetensors" --max-train-steps 200 --learning-rate 1e-2 --network-dim 8 > "$T/lora.out" 2>&1
train --output "$T/lora0.safetensors" --max-train-steps 200 --learning-rate 1e-9 --network-dim 8 > /dev/null 2>&1
train --output "$T/lorav.safetensors" --max-train-steps 3 --learning-rate 1e-2 --network-dim 8 \
  --prediction-type v_prediction > /dev/null 2>&1
train --output "$T/lorae.safetensors" --max-train-steps 3 --learning-rate 1e-2 --network-dim 8 \
  --prediction-type epsilon > /dev/null 2>&1
check "lora: 200 steps run" 'grep -q "trained 200 steps" "$T/lora.out" && [ -s "$T/lora.safetensors" ]'
check "lora: the model's config gives the v target (the losses of --prediction-type v_prediction)" \
  '[ "$(losses "$T/lora.safetensors" 3)" = "$(losses "$T/lorav.safetensors")" ]'
check "lora: --prediction-type epsilon overrides it (other losses from step 1)" \
  '[ "$(losses "$T/lorae.safetensors" 1)" != "$(losses "$T/lora.safetensors" 1)" ]'
l=$(mean_last10 "$T/lora.safetensors"); l0=$(mean_last10 "$T/lora0.safetensors")
echo "lora: mean loss of steps 191-200 $l (learning rate 1e-9: $l0)"
check "lora: the loss falls (steps 191-200 below 0.75 x the untrained baseline's)" 'below "$l" "$l0" 0.75'
"$P" generate "${SD2[@]}" "${GEN[@]:2}" -o "$T/base.png"
"$P" generate "${SD2[@]}" "${GEN[@]:2}" --lora "$T/lora.safetensors:1" -o "$T/lora.png" 2> "$T/gen.err"
check "lora: pigment generate --lora loads it with no unmatched key, and it changes the pixels" \
  '[ -s "$T/lora.png" ] && ! grep -qi "match" "$T/gen.err" && [ "$(idat "$T/lora.png")" != "$(idat "$T/base.png")" ]'

# Full fine-tuning: a single file in SD2's original layout that says v_prediction.
train --method full --output "$T/full.safetensors" --max-train-steps 100 --learning-rate 1e-3 --save-precision f32 \
  > "$T/full.out" 2>&1
train --method full --output "$T/full0.safetensors" --max-train-steps 100 --learning-rate 1e-9 --save-precision f32 \
  > /dev/null 2>&1
check "full: 100 steps run" 'grep -q "trained 100 steps" "$T/full.out" && [ -s "$T/full.safetensors" ]'
check "full: the same losses as LoRA at step 1 (the same v target)" \
  '[ "$(losses "$T/full.safetensors" 1)" = "$(losses "$T/lora.safetensors" 1)" ]'
l=$(mean_last10 "$T/full.safetensors"); l0=$(mean_last10 "$T/full0.safetensors")
echo "full: mean loss of steps 91-100 $l (learning rate 1e-9: $l0)"
check "full: the loss falls (steps 91-100 below 0.5 x the untrained baseline's)" 'below "$l" "$l0" 0.5'
"$P" inspect "$T/full.safetensors" > "$T/inspect.out"
check "full: the checkpoint is SD2, v-prediction" \
  'grep -qx "family: sd2" "$T/inspect.out" && grep -qx "prediction: v_prediction" "$T/inspect.out"'
"$P" generate -m "$T/full.safetensors" "${CONFIGS[@]}" "${GEN[@]}" -o "$T/full.png"
check "full: pigment generate -m loads it and the pixels change" \
  '[ -s "$T/full.png" ] && [ "$(idat "$T/full.png")" != "$(idat "$T/base.png")" ]'
# One SGD step of learning rate 1e-30 leaves every weight as it was: the saved file is the base model again.
train --method full --output "$T/same.safetensors" --max-train-steps 1 --optimizer-type SGD --learning-rate 1e-30 \
  --max-grad-norm 0 --save-precision f32 > /dev/null 2>&1
"$P" generate -m "$T/same.safetensors" "${CONFIGS[@]}" "${GEN[@]}" -o "$T/same.png"
check "full: an unchanged model saved as a single file draws the base model's pixels" \
  '[ "$(idat "$T/same.png")" = "$(idat "$T/base.png")" ]'
train --method full --output "$T/eps.safetensors" --max-train-steps 1 --prediction-type epsilon > /dev/null 2>&1
check "full: with --prediction-type epsilon the checkpoint says epsilon" \
  '"$P" inspect "$T/eps.safetensors" | grep -qx "prediction: epsilon"'
# x0-prediction ("sample", diffusers' name): the target is the clean latent, the checkpoint says so, and generate
# samples with it (every sampler converts an x0 output as diffusers' schedulers do).
train --method full --output "$T/x0.safetensors" --max-train-steps 1 --prediction-type x0 > /dev/null 2>&1
check "full: with --prediction-type x0 the checkpoint says sample" \
  '"$P" inspect "$T/x0.safetensors" | grep -qx "prediction: sample"'
check "  ... other losses than the v and epsilon targets from step 1" \
  '[ "$(losses "$T/x0.safetensors" 1)" != "$(losses "$T/eps.safetensors" 1)" ] &&
   [ "$(losses "$T/x0.safetensors" 1)" != "$(losses "$T/full.safetensors" 1)" ]'
"$P" generate -m "$T/x0.safetensors" "${CONFIGS[@]}" "${GEN[@]}" -o "$T/x0.png"
check "  ... and pigment generate -m samples with it" '[ -s "$T/x0.png" ] && "$P" png-info "$T/x0.png" >/dev/null'

echo "$fails failure(s)"
[ $fails -eq 0 ]
