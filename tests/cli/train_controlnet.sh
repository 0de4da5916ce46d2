#!/usr/bin/env bash
# pigment train --method controlnet on the tiny golden SD1 model through the public CLI: control maps from the
# conditioning/ folder or made by --control-preprocess canny, both save formats load in pigment generate
# --control-net and change its pixels, sample images, a run stopped and resumed gives the losses and bytes of an
# uninterrupted one, and a missing control map is a one-line error naming the image, before step 1.
# (The learning itself — loss, edges of the output — is measured in src/training/controlnet_test.cc.)
set -u
source "$(dirname "$0")/lib/common.bash"
requires python3
P=$BIN/pigment
# Four dark shapes on white, one caption for all; their outlines (white on black) in data/conditioning.
python3 - "$T/data" <<'PY'
import os, struct, sys, zlib
def png(path, rows):
    raw = b''.join(b'\x00' + bytes(r) for r in rows)
    def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    open(path, 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 64, 64, 8, 2, 0, 0, 0)) +
                           chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))
def inside(k, x, y):
    return [6 <= x < 30 and 14 <= y < 38, (x - 44) ** 2 + (y - 32) ** 2 < 225,
            8 <= x < 56 and 44 <= y < 58, 40 <= x < 54 and 4 <= y < 40][k]
d = sys.argv[1]
os.makedirs(d + '/conditioning')
for k in range(4):
    png(f'{d}/shape{k}.png', [sum(([40, 30, 120] if inside(k, x, y) else [255] * 3 for x in range(64)), [])
                              for y in range(64)])
    edge = lambda x, y: inside(k, x, y) and not all(inside(k, x + a, y + b) for a in (-1, 1) for b in (-1, 1))
    png(f'{d}/conditioning/shape{k}.png', [sum(([255] * 3 if edge(x, y) else [0] * 3 for x in range(64)), [])
                                           for y in range(64)])
    open(f'{d}/shape{k}.txt', 'w').write('a shape')
PY
ARGS=("${TINY_SD1[@]}" --method controlnet --data "$T/data" --resolution 64 --no-buckets --threads 1 --seed 3
      --learning-rate 1e-3)
train() { "$P" train "${ARGS[@]}" "$@"; }
losses() { cut -d, -f1,2 "$1"; }
gen() { "$P" generate "${TINY_SD1[@]}" -q -W 64 -H 64 --steps 3 -s 5 -p "a shape" "$@"; }

"$P" train --help > "$T/help.txt"
check "train --help documents the ControlNet flags" \
  'grep -q -- "--conditioning-data-dir" "$T/help.txt" && grep -q -- "--control-preprocess" "$T/help.txt" &&
   grep -q -- "--save-format" "$T/help.txt" && grep -q -- "--controlnet-conditioning-scale" "$T/help.txt" &&
   grep -q "DATA/conditioning" "$T/help.txt"'

train --output "$T/cn.safetensors" --max-train-steps 6 --sample-every-n-steps 3 --sample-prompt "a shape" \
  > "$T/cn.out" 2>&1
check "a 6-step run writes a ControlNet, its log, sample images and a loss curve" \
  '[ -s "$T/cn.safetensors" ] && grep -q "trained 6 steps" "$T/cn.out" &&
   [ "$(wc -l < "$T/cn.safetensors.run/log.csv")" -eq 7 ] && [ -s "$T/cn.safetensors.run/loss.png" ] &&
   [ -s "$T/cn.safetensors.run/samples/step-000003-0.png" ] && [ -s "$T/cn.safetensors.run/samples/step-000006-0.png" ]'
"$P" inspect "$T/cn.safetensors" > "$T/inspect.txt"
check "the original layout: control_model.* keys in f16" \
  'grep -q "dtype F16" "$T/inspect.txt" && python3 - "$T/cn.safetensors" <<PY
import json, struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
keys = [k for k in h if k != "__metadata__"]
sys.exit(0 if keys and all(k.startswith("control_model.") for k in keys) and
         "control_model.input_hint_block.14.weight" in h and "control_model.middle_block_out.0.weight" in h else 1)
PY'

gen -o "$T/base.png"
gen --control-net "$T/cn.safetensors" --control-image "$T/data/conditioning/shape1.png" -o "$T/with.png" 2> "$T/gen.err"
check "pigment generate loads the trained ControlNet (original layout) and it changes the pixels" \
  '[ -s "$T/with.png" ] && [ "$(idat "$T/with.png")" != "$(idat "$T/base.png")" ]'

train --output "$T/cnd" --save-format diffusers --save-precision f32 --max-train-steps 6 > "$T/cnd.out" 2>&1
check "--save-format diffusers writes a folder with config.json and the weights" \
  '[ -s "$T/cnd/config.json" ] && [ -s "$T/cnd/diffusion_pytorch_model.safetensors" ] &&
   grep -q "\"_class_name\": \"ControlNetModel\"" "$T/cnd/config.json" &&
   grep -q "\"conditioning_embedding_out_channels\"" "$T/cnd/config.json"'
check "the same training gives the same losses whatever the save format" \
  '[ "$(losses "$T/cnd.run/log.csv")" = "$(losses "$T/cn.safetensors.run/log.csv")" ]'
gen --control-net "$T/cnd" --control-image "$T/data/conditioning/shape1.png" -o "$T/with_d.png"
check "pigment generate loads the diffusers folder and it changes the pixels" \
  '[ -s "$T/with_d.png" ] && [ "$(idat "$T/with_d.png")" != "$(idat "$T/base.png")" ]'

# Canny on the fly: no conditioning folder needed (a data folder without one).
mkdir -p "$T/plain"; cp "$T/data"/shape*.png "$T/data"/shape*.txt "$T/plain/"
"$P" train "${TINY_SD1[@]}" --method controlnet --control-preprocess canny --data "$T/plain" --resolution 64 \
  --no-buckets --threads 1 --output "$T/canny.safetensors" --max-train-steps 2 > "$T/canny.out" 2>&1
check "--control-preprocess canny trains without a conditioning folder" '[ -s "$T/canny.safetensors" ]'

# Stopped after 3 steps and resumed to 6: the losses and the file of the uninterrupted run.
train --output "$T/r.safetensors" --max-train-steps 3 > /dev/null 2>&1
train --output "$T/r.safetensors" --max-train-steps 6 --resume > "$T/r.out" 2>&1
check "resume gives the losses and the bytes of the uninterrupted run" \
  'grep -q "resumed from" "$T/r.out" && [ "$(losses "$T/r.safetensors.run/log.csv")" = "$(losses "$T/cn.safetensors.run/log.csv")" ] &&
   cmp -s "$T/r.safetensors" "$T/cn.safetensors"'

# Bad data: a missing control map.
rm "$T/data/conditioning/shape2.png"
train --output "$T/bad.safetensors" --max-train-steps 2 > "$T/bad.out" 2>&1; rc=$?
check "a missing control map is a one-line error naming the image, before step 1" \
  '[ $rc -eq 1 ] && [ "$(wc -l < "$T/bad.out")" -eq 1 ] && grep -q "no control map for .*shape2.png" "$T/bad.out" &&
   ! grep -q "step 1/" "$T/bad.out" && [ ! -e "$T/bad.safetensors" ]'
"$P" train "${TINY_SD1[@]}" --method lora --data "$T/data" --resolution 64 --control-preprocess canny --output "$T/l.safetensors" \
  --max-train-steps 1 > "$T/l.out" 2>&1; rc=$?
check "ControlNet flags with another method are refused" '[ $rc -eq 1 ] && grep -q "for --method controlnet" "$T/l.out"'
"$P" train "${TINY_SD1[@]}" --method controlnet --control-preprocess canny --data "$T/plain" --resolution 64 \
  --save-format onnx --output "$T/o.safetensors" --max-train-steps 1 > "$T/o.out" 2>&1; rc=$?
check "an unknown save format is refused" '[ $rc -eq 1 ] && grep -q "save-format" "$T/o.out"'

[ $fails -eq 0 ]
