#!/usr/bin/env bash
# pigment init writes full-size random checkpoints with the real key sets (tensor and parameter counts of the
# published SD1.5 and SDXL models), in the single-file layout and as a diffusers folder, and inspect detects their
# family. float16 keeps the files small (SD1.5 ~2 GB, SDXL ~7 GB); every file is deleted at the end.
set -euo pipefail
BIN="${PIGMENT_BIN_DIR:?}/pigment"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# pigment generate with nothing but the model: no --tokenizer, HOME and every Hugging Face cache variable pointing at
# empty folders (the built-in CLIP table, issue 19); a 64x64 image in 2 steps.
generate_alone() {  # generate_alone MODEL OUT.png
  mkdir -p "$tmp/home" "$tmp/hf" "$tmp/hub" "$tmp/xdg"
  env $(env | sed -n 's/^\(HF_[A-Za-z0-9_]*\)=.*/-u \1/p') HOME="$tmp/home" HF_HOME="$tmp/hf" HF_HUB_CACHE="$tmp/hub" \
    HUGGINGFACE_HUB_CACHE="$tmp/hub" XDG_CACHE_HOME="$tmp/xdg" \
    "$BIN" generate -m "$1" -p "a red fox in the snow" -W 64 -H 64 --steps 2 -s 1 -q -o "$2" >"$tmp/gen.out" 2>&1 ||
    { echo "FAIL: generate -m $1 without --tokenizer:"; cat "$tmp/gen.out"; exit 1; }
  test -s "$2" || { echo "FAIL: generate -m $1 wrote no image"; exit 1; }
}

expect() {  # expect FILE LINE: FILE has the exact line LINE
  if ! grep -qxF -- "$2" "$1"; then
    echo "FAIL: expected the line '$2' in:"
    cat "$1"
    exit 1
  fi
}

# SD1.5, original LDM layout.
"$BIN" init --family sd15 --seed 7 --out "$tmp/sd15.safetensors" >"$tmp/out"
"$BIN" inspect "$tmp/sd15.safetensors" >"$tmp/out"
expect "$tmp/out" "family: sd1"
expect "$tmp/out" "prediction: epsilon"
expect "$tmp/out" "tensors: 1130"
expect "$tmp/out" "component unet: 686 tensors, 859520964 parameters"
expect "$tmp/out" "component vae: 248 tensors, 83653863 parameters"
expect "$tmp/out" "component text_encoder: 196 tensors, 123060480 parameters"
expect "$tmp/out" "dtype F16: 1130 tensors, 2132470614 bytes"
expect "$tmp/out" "metadata modelspec.architecture: stable-diffusion-v1"
generate_alone "$tmp/sd15.safetensors" "$tmp/sd15.png"
rm "$tmp/sd15.safetensors"

# SDXL base, SGM layout: CLIP-L and OpenCLIP bigG (fused q/k/v, text_projection as x @ P).
"$BIN" init --family sdxl --seed 7 --out "$tmp/sdxl.safetensors" >"$tmp/out"
"$BIN" inspect "$tmp/sdxl.safetensors" >"$tmp/out"
expect "$tmp/out" "family: sdxl"
expect "$tmp/out" "component unet: 1680 tensors, 2567463684 parameters"
expect "$tmp/out" "component vae: 248 tensors, 83653863 parameters"
expect "$tmp/out" "component text_encoder: 196 tensors, 123060480 parameters"
expect "$tmp/out" "component text_encoder_2: 389 tensors, 694659840 parameters"
generate_alone "$tmp/sdxl.safetensors" "$tmp/sdxl.png"  # both encoders on the built-in table
rm "$tmp/sdxl.safetensors"

# SD2.1-v as a diffusers folder: diffusers keeps 23 of OpenCLIP-H's 24 layers and no projection.
"$BIN" init --family sd21-v --seed 7 --diffusers "$tmp/sd21v" >"$tmp/out"
expect "$tmp/out" "component unet: 686 tensors, 865910724 parameters"
expect "$tmp/out" "component text_encoder: 372 tensors, 340387840 parameters"
# Every file diffusers' StableDiffusionPipeline.from_pretrained reads: the index, the scheduler config, each
# model's config and weights, and the CLIPTokenizer files (vocab.json + merges.txt, its two configs).
for f in model_index.json scheduler/scheduler_config.json \
         unet/config.json unet/diffusion_pytorch_model.safetensors vae/config.json vae/diffusion_pytorch_model.safetensors \
         text_encoder/config.json text_encoder/model.safetensors \
         tokenizer/vocab.json tokenizer/merges.txt tokenizer/tokenizer_config.json tokenizer/special_tokens_map.json; do
  test -s "$tmp/sd21v/$f" || { echo "FAIL: init --diffusers wrote no $f"; exit 1; }
done
grep -q '"prediction_type": "v_prediction"' "$tmp/sd21v/scheduler/scheduler_config.json"
tr -d ' \n' <"$tmp/sd21v/model_index.json" | grep -q '"tokenizer":\["transformers","CLIPTokenizer"\]' ||
  { echo "FAIL: model_index.json does not name tokenizer/ as a CLIPTokenizer"; cat "$tmp/sd21v/model_index.json"; exit 1; }
tr -d ' \n' <"$tmp/sd21v/tokenizer/special_tokens_map.json" | grep -q '"pad_token":"!"' ||
  { echo "FAIL: the SD2 tokenizer does not pad with !"; exit 1; }
"$BIN" inspect "$tmp/sd21v" >"$tmp/out"
expect "$tmp/out" "family: sd2"
generate_alone "$tmp/sd21v" "$tmp/sd21v.png"
# Read back by pigment, the folder's tokenizer/ is the built-in table: the same image with it and without it.
bang() { "$BIN" generate -m "$tmp/sd21v" -p "a fox!! in the snow, 8k" -W 64 -H 64 --steps 1 -s 3 -q -o "$1"; }
bang "$tmp/with_tokenizer.png"
mv "$tmp/sd21v/tokenizer" "$tmp/tokenizer_aside"
bang "$tmp/builtin.png"
cmp -s "$tmp/with_tokenizer.png" "$tmp/builtin.png" ||
  { echo "FAIL: the written tokenizer/ and the built-in table give different images"; exit 1; }
rm -rf "$tmp/sd21v" "$tmp/tokenizer_aside"

# Bad arguments are one clear error line and exit status 1.
for args in "--family sd3 --out $tmp/x.safetensors" "--family sd15" "--family sd15 --dtype f8 --out $tmp/x.safetensors"; do
  if "$BIN" init $args >"$tmp/out" 2>&1; then
    echo "FAIL: init $args succeeded"
    exit 1
  fi
  grep -q "^error: " "$tmp/out" || { echo "FAIL: init $args:"; cat "$tmp/out"; exit 1; }
done
test ! -e "$tmp/x.safetensors"
echo "init: all checks passed"
