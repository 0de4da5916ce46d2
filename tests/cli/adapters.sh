#!/usr/bin/env bash
# pigment generate with adapters on the tiny golden SD1 single file: LoRA by flag and by <lora:> tag (merged and at
# run time), textual-inversion embeddings by name, <hypernet:> tags, a ControlNet; bad adapter input is a one-line
# error with exit 1, and LoRA keys that match nothing are a warning.
set -u
source "$(dirname "$0")/lib/common.bash"
requires python3
gen() { "$BIN/pigment" generate "${TINY_SD1[@]}" -q \
  -W 64 -H 32 --steps 3 -s 5 --sampler Euler "$@"; }
LORA=$G/lora/kohya/lora_kohya.safetensors
mkdir -p "$T/loras" && cp "$LORA" "$T/loras/tiny.safetensors"

gen -p "a cat" -o "$T/base.png"
gen -p "a cat" --lora "$LORA:0.6" -o "$T/flag.png"
check "a LoRA changes the image" '[ -s "$T/flag.png" ] && ! cmp -s "$T/base.png" "$T/flag.png"'
gen -p "a cat <lora:tiny:0.6>" --lora-dir "$T/loras" -o "$T/tag.png"
check "<lora:NAME:W> from --lora-dir changes the image" '[ -s "$T/tag.png" ] && ! cmp -s "$T/base.png" "$T/tag.png"'
gen -p "a cat" --lora "$LORA:0.6" --lora-apply runtime -o "$T/rt.png"
check "merge and runtime give a PNG each" '[ -s "$T/rt.png" ]'
info=$("$BIN/pigment" png-info --fields "$T/flag.png")
# A1111's LoRA hash of a .safetensors file: SHA-256 of the bytes after the 8-byte length and the JSON header.
n=$(od -An -t u8 -N8 "$LORA" | tr -d ' ')
want=$(tail -c +$((n + 9)) "$LORA" | sha256sum | cut -c1-12)
check "infotext has Lora hashes (data after the header)" 'grep -qx "Lora hashes: lora_kohya: $want" <<<"$info"'
raw=$("$BIN/pigment" png-info "$T/flag.png")
check "the PNG text quotes the list once, as A1111" 'grep -q "Lora hashes: \"lora_kohya: $want\"" <<<"$raw" && ! grep -qF "\\\"" <<<"$raw"'
# <lora:NAME:TE:UNET>: separate weights; zero for both is the base image, each half alone changes it.
gen -p "a cat <lora:tiny:te=0:unet=0>" --lora-dir "$T/loras" -o "$T/zero.png"
check "<lora:NAME:te=0:unet=0> gives the base pixels" '[ "$(idat "$T/zero.png")" = "$(idat "$T/base.png")" ]'
gen -p "a cat <lora:tiny:0.6:0>" --lora-dir "$T/loras" -o "$T/te.png"
gen -p "a cat <lora:tiny:0:0.6>" --lora-dir "$T/loras" -o "$T/unet.png"
check "TE-only and UNet-only weights each change the image" \
  '[ "$(idat "$T/te.png")" != "$(idat "$T/base.png")" ] && [ "$(idat "$T/unet.png")" != "$(idat "$T/base.png")" ] && [ "$(idat "$T/te.png")" != "$(idat "$T/unet.png")" ]'
gen -p "a cat <lora:tiny:0.6:0.6>" --lora-dir "$T/loras" -o "$T/both.png"
check "<lora:NAME:W:W> equals <lora:NAME:W>" '[ "$(idat "$T/both.png")" = "$(idat "$T/tag.png")" ]'
out=$(gen -p "a cat <lora:tiny:1:1:8>" --lora-dir "$T/loras" -o "$T/dyn.png" 2>&1)
check "dyn= is ignored with a warning" '[ -s "$T/dyn.png" ] && grep -q "^warning: <lora:tiny:1:1:8>: dyn=8" <<<"$out"'
out=$(gen -p "a cat" -n "blurry <lora:tiny:1>" --lora-dir "$T/loras" -o "$T/neg.png" 2>&1)
info=$("$BIN/pigment" png-info --fields "$T/neg.png")
check "a <lora:> tag in the negative prompt is dropped with a warning, not applied" \
  'grep -q "^warning: <lora:tiny:1> in the negative prompt is ignored" <<<"$out" && ! grep -q "^Lora hashes" <<<"$info"'

gen -p "a photo of my-concept" -n "(other-style:1.2)" --embedding-dir "$G/ti/embeddings" -o "$T/ti.png"
check "embeddings by name in prompt and negative prompt" '[ -s "$T/ti.png" ]'
info=$("$BIN/pigment" png-info --fields "$T/ti.png")
# A1111 hashes embeddings as whole files (no header skipping, .safetensors included).
h1=$(sha256sum "$G/ti/embeddings/my-concept.pt" | cut -c1-12)
h2=$(sha256sum "$G/ti/embeddings/other-style.safetensors" | cut -c1-12)
check "infotext has TI hashes (whole-file SHA-256)" 'grep -qx "TI hashes: my-concept: $h1, other-style: $h2" <<<"$info"'

gen -p "a cat <hypernet:tiny_hypernet:0.8>" --hypernetwork-dir "$G/hypernetwork/a1111" -o "$T/hn.png"
check "a hypernetwork changes the image" '[ -s "$T/hn.png" ] && ! cmp -s "$T/base.png" "$T/hn.png"'

gen -p "a cat" --control-net "$M/controlnet" --control-image "$T/base.png" --control-strength 0.8 \
  --control-start 0 --control-end 0.7 -o "$T/cn.png"
check "a ControlNet run" '[ -s "$T/cn.png" ]'
gen -p "a cat" --control-net "$M/controlnet" --control-image "$T/base.png" --control-net "$M/controlnet" \
  --control-image "$T/hn.png" --control-strength 0.5 --control-guess-mode -o "$T/cn2.png"
check "two ControlNets in guess mode" '[ -s "$T/cn2.png" ]'

# The tiny LoRA plus one key for a layer the model does not have.
python3 - "$LORA" "$T/extra.safetensors" <<'PY'
import json, struct, sys
src = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', src[:8])[0]
head = json.loads(src[8:8 + n]); data = src[8 + n:]
for part, shape in (('lora_down', [4, 32]), ('lora_up', [32, 4])):
    head['lora_unet_no_such_layer.%s.weight' % part] = {'dtype': 'F32', 'shape': shape,
                                                        'data_offsets': [len(data), len(data) + 512]}
    data += bytes(512)
h = json.dumps(head).encode()
open(sys.argv[2], 'wb').write(struct.pack('<Q', len(h)) + h + data)
# An SDXL-sized LoRA: its proj_in is a [640, 640] linear, the tiny SD1 model has a 1x1 conv of 32 channels.
head = {}; data = b''
for part, shape in (('lora_down', [4, 640]), ('lora_up', [640, 4])):
    size = 4 * shape[0] * shape[1]
    head['lora_unet_down_blocks_0_attentions_0_proj_in.%s.weight' % part] = {
        'dtype': 'F32', 'shape': shape, 'data_offsets': [len(data), len(data) + size]}
    data += bytes(size)
h = json.dumps(head).encode()
open(sys.argv[2].replace('extra', 'sdxl'), 'wb').write(struct.pack('<Q', len(h)) + h + data)
PY
# LyCORIS from the tiny LoRA's module list: LoHa on the linears, LoKr on the convs (w1 2x2 full, w2 factored), and a
# LoHa with a factor of the wrong shape.
python3 - "$LORA" "$T/loras" <<'PY'
import json, struct, sys, random
src = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', src[:8])[0]
mods = {k[:-len('.lora_down.weight')]: v['shape'] for k, v in json.loads(src[8:8 + n]).items()
        if k.endswith('.lora_down.weight') and k.startswith('lora_unet_')}
ups = {k[:-len('.lora_up.weight')]: v['shape'] for k, v in json.loads(src[8:8 + n]).items() if k.endswith('.lora_up.weight')}
rnd = random.Random(1)
def write(path, tensors):
    head, data = {}, b''
    for name, shape in tensors:
        count = 1
        for d in shape: count *= d
        head[name] = {'dtype': 'F32', 'shape': shape, 'data_offsets': [len(data), len(data) + 4 * count]}
        data += struct.pack('<%df' % count, *[rnd.uniform(-0.3, 0.3) for _ in range(count)])
    h = json.dumps(head).encode()
    open(path, 'wb').write(struct.pack('<Q', len(h)) + h + data)
lyco = []
for m, down in sorted(mods.items()):
    out, inn = ups[m][0], down[1]
    taps = down[2] * down[3] if len(down) == 4 else 1
    if len(down) == 2:
        lyco += [(m + '.hada_w1_a', [out, 2]), (m + '.hada_w1_b', [2, inn]), (m + '.hada_w2_a', [out, 2]),
                 (m + '.hada_w2_b', [2, inn]), (m + '.alpha', [])]
    elif out % 2 == 0 and inn % 2 == 0:
        lyco += [(m + '.lokr_w1', [2, 2]), (m + '.lokr_w2_a', [out // 2, 2]), (m + '.lokr_w2_b', [2, inn // 2 * taps]),
                 (m + '.alpha', [])]
write(sys.argv[2] + '/lyco.safetensors', lyco)
bad = [(k, s) for k, s in lyco if k.endswith('.hada_w1_b')][:1]
name = bad[0][0][:-len('.hada_w1_b')]
write(sys.argv[2] + '/badloha.safetensors', [(name + '.hada_w1_a', [8, 2]), (name + '.hada_w1_b', [3, 5]),
                                             (name + '.hada_w2_a', [8, 2]), (name + '.hada_w2_b', [2, 5])])
PY
gen -p "a cat <lora:lyco:0.8>" --lora-dir "$T/loras" -o "$T/lyco.png"
gen -p "a cat <lora:lyco:0.8>" --lora-dir "$T/loras" --lora-apply runtime -o "$T/lyco-rt.png"
check "a LoHa+LoKr file changes the image, merged and at run time" \
  '[ -s "$T/lyco.png" ] && [ -s "$T/lyco-rt.png" ] && ! cmp -s "$T/base.png" "$T/lyco.png" && ! cmp -s "$T/base.png" "$T/lyco-rt.png"'

out=$(gen -p "a cat" --lora "$T/extra.safetensors:0.5" -o "$T/extra.png" 2>&1); rc=$?
check "unmatched LoRA key warns and generation continues" \
  '[ $rc -eq 0 ] && [ -s "$T/extra.png" ] && grep -q "^warning: LoRA key matches no layer: .*no_such_layer" <<<"$out"'

err() {  # expect exit 1 and exactly one line starting with "error:" on stderr, and no output file
  local name=$1; shift
  rm -f "$T/bad.png"
  out=$(gen "$@" -o "$T/bad.png" 2>&1 >/dev/null); rc=$?
  check "$name" '[ $rc -eq 1 ] && [ $(wc -l <<<"$out") -eq 1 ] && grep -q "^error: " <<<"$out" && [ ! -e "$T/bad.png" ]'
}
err "missing LoRA file" -p x --lora "$T/nope.safetensors:0.5"
err "unknown <lora:name>" -p "x <lora:nobody:1>" --lora-dir "$T/loras"
err "<lora:> without --lora-dir" -p "x <lora:tiny:1>"
printf 'garbage' > "$T/loras/junk.safetensors"
err "corrupt LoRA" -p x --lora "$T/loras/junk.safetensors"
mkdir -p "$T/emb" && printf 'garbage' > "$T/emb/broken.pt"
err "corrupt embedding" -p "a broken thing" --embedding-dir "$T/emb"
err "not a LoRA" -p x --lora "$M/vae/diffusion_pytorch_model.safetensors"
[ -e "$T/sdxl.safetensors" ] && err "LoRA of another family" -p x --lora "$T/sdxl.safetensors:1"
[ -e "$T/loras/badloha.safetensors" ] && err "LoHa factors that do not fit" -p "x <lora:badloha:1>" --lora-dir "$T/loras"
err "unknown hypernetwork" -p "x <hypernet:none:1>" --hypernetwork-dir "$T"
err "missing ControlNet" -p x --control-net "$T/nocn" --control-image "$T/base.png"
err "control image count" -p x --control-net "$M/controlnet"

echo "$fails failure(s)"
[ $fails -eq 0 ]
