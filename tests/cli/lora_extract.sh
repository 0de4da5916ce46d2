#!/usr/bin/env bash
# pigment lora extract BASE TUNED: the difference of a fine-tuned tiny SD1 to its base as a kohya LoRA that pigment
# generate loads; with it the base draws nearer to the tuned model than without, and more so at a higher rank.
set -u
source "$(dirname "$0")/lib/common.bash"
requires python3
P=$BIN/pigment
MEASURE=$BIN/pigment-measure
CFG=(--model-config unet=$M/unet_sd1 --model-config vae=$M/vae --model-config text_encoder=$M/clip_sd1)
BASE=$M/sd1_single_file.safetensors
mkdir -p "$T/data"
"$P" generate "${TINY_SD1[@]}" -q -W 64 -H 64 --steps 2 -s 1 -p "a" -o "$T/data/one.png"
echo "a red thing" > "$T/data/one.txt"
# The tuned model: a short full fine-tuning of UNet and text encoder.
"$P" train "${TINY_SD1[@]}" --method full --train-text-encoder --data "$T/data" --resolution 64 --threads 1 \
  --max-train-steps 3 --learning-rate 1e-3 --save-precision f32 --output "$T/tuned.safetensors" > /dev/null 2>&1
[ -s "$T/tuned.safetensors" ] || { echo "FAIL could not make the tuned model"; exit 1; }

"$P" lora extract "$BASE" "$T/tuned.safetensors" "${CFG[@]}" --rank 4 --min-diff 1e-4 -o "$T/r4.safetensors" \
  > "$T/r4.out" 2>&1; rc=$?
check "extract writes a LoRA with UNet and text-encoder modules" \
  '[ $rc -eq 0 ] && [ -s "$T/r4.safetensors" ] && grep -q "text-encoder modules" "$T/r4.out" && ! grep -q " 0 text-encoder" "$T/r4.out"'
# The header of the file: its tensor names and metadata.
python3 -c 'import json,struct,sys
f=open(sys.argv[1],"rb"); n=struct.unpack("<Q",f.read(8))[0]; h=json.loads(f.read(n))
print("\n".join(sorted(h))); print(json.dumps(h["__metadata__"]))' "$T/r4.safetensors" > "$T/inspect.txt"
check "kohya key names and metadata" \
  'grep -q "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight" "$T/inspect.txt" &&
   grep -q "lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha" "$T/inspect.txt" && grep -q "ss_network_dim" "$T/inspect.txt"'
"$P" lora extract "$BASE" "$T/tuned.safetensors" "${CFG[@]}" --rank 32 --conv-rank 32 --clamp-quantile 1 --min-diff 0 \
  -o "$T/r32.safetensors" > /dev/null 2>&1
"$P" lora extract "$BASE" "$T/tuned.safetensors" "${CFG[@]}" --rank 1 --min-diff 1000 -o "$T/r1.safetensors" \
  > "$T/r1.out" 2>&1
check "a text encoder within --min-diff is left out" 'grep -q "text encoder is the same" "$T/r1.out"'

gen() { "$P" generate "$@" -q -W 64 -H 64 --steps 6 -s 5 -p "a red thing"; }
gen "${TINY_SD1[@]}" -o "$T/base.png"
gen -m "$T/tuned.safetensors" --tokenizer "$SHARED/clip-tokenizer" "${CFG[@]}" -o "$T/tuned.png"
gen "${TINY_SD1[@]}" --lora "$T/r1.safetensors:1" -o "$T/with-r1.png" 2> "$T/g1.err"
gen "${TINY_SD1[@]}" --lora "$T/r32.safetensors:1" -o "$T/with-r32.png" 2> "$T/g32.err"
p_base=$("$MEASURE" psnr "$T/base.png" "$T/tuned.png")
p_r1=$("$MEASURE" psnr "$T/with-r1.png" "$T/tuned.png")
p_r32=$("$MEASURE" psnr "$T/with-r32.png" "$T/tuned.png")
echo "PSNR to the tuned model's image: base $p_base dB, base + rank-1 LoRA $p_r1 dB, base + rank-32 LoRA $p_r32 dB"
check "the LoRAs load with no unmatched key" '! grep -qi "match" "$T/g1.err" "$T/g32.err"'
check "base + LoRA draws nearer to the tuned model, more so at rank 32" \
  'python3 -c "import sys; b,r1,r32=(float(x) for x in sys.argv[1:]); sys.exit(0 if b < r1 < r32 else 1)" \
     "$p_base" "$p_r1" "$p_r32"'

err() {
  local what=$1; shift
  "$P" lora extract "$@" > "$T/err.out" 2> "$T/err.txt"; local rc=$?
  check "$what: exit 1, one line" '[ $rc -eq 1 ] && [ "$(wc -l < "$T/err.txt")" -eq 1 ] && grep -q "^error: " "$T/err.txt"'
}
err "rank 0" "$BASE" "$T/tuned.safetensors" "${CFG[@]}" --rank 0 -o "$T/x.safetensors"
err "clamp quantile above 1" "$BASE" "$T/tuned.safetensors" "${CFG[@]}" --rank 4 --clamp-quantile 2 -o "$T/x.safetensors"
err "a missing model" "$BASE" "$T/nowhere.safetensors" "${CFG[@]}" --rank 4 -o "$T/x.safetensors"
err "SDXL" "$M/sdxl_single_file_fp16.safetensors" "$M/sdxl_single_file_fp16.safetensors" --rank 4 -o "$T/x.safetensors"
check "no output from the failed runs" '[ ! -e "$T/x.safetensors" ]'

echo "$fails failure(s)"
[ $fails -eq 0 ]
