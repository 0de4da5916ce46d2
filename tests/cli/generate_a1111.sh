#!/usr/bin/env bash
# pigment generate's A1111 extras on the tiny golden models: hires fix (latent and image upscalers, resize to a
# target, its infotext keys and --from-png), inpaint "only masked" and masked content, SDXL micro-conditioning
# flags, progress output, and a one-line error for each bad value. Pixel-level checks are in
# src/pipelines/stable_diffusion_test.cc.
set -u
source "$(dirname "$0")/lib/common.bash"
requires python3 script
gen() { "$BIN/pigment" generate "${TINY_SD1[@]}" -q "$@"; }
genxl() { "$BIN/pigment" generate -m "$M/sdxl_single_file_fp16.safetensors" --tokenizer "$SHARED/clip-tokenizer" \
  --model-config unet=$M/unet_sdxl --model-config vae=$M/vae --model-config text_encoder=$M/clip_sd1 \
  --model-config text_encoder_2=$M/clip_proj -q "$@"; }
size() { od -An -t u1 -j16 -N8 "$1" | awk '{print $3*256+$4 "x" $7*256+$8}'; }  # PNG IHDR width x height

# ---- hires fix ----
gen -p "a cat" -n "blurry" -W 32 -H 32 --steps 3 -s 5 --hires-fix --hr-scale 2 --hr-steps 2 \
  --hr-denoising-strength 0.55 --hr-prompt "a dog, painted" -o "$T/h.png"
info=$("$BIN/pigment" png-info --fields "$T/h.png")
check "hires: the output has the upscaled size" '[ "$(size "$T/h.png")" = "64x64" ]'
check "hires: Size is the first pass's" 'grep -qx "Size: 32x32" <<<"$info"'
check "hires: Denoising strength" 'grep -qx "Denoising strength: 0.55" <<<"$info"'
check "hires: Hires upscale" 'grep -qx "Hires upscale: 2" <<<"$info"'
check "hires: Hires steps" 'grep -qx "Hires steps: 2" <<<"$info"'
check "hires: Hires upscaler" 'grep -qx "Hires upscaler: Latent" <<<"$info"'
check "hires: Hires prompt" 'grep -qx "Hires prompt: a dog, painted" <<<"$info"'
gen --from-png "$T/h.png" -o "$T/h2.png"
check "hires: --from-png reproduces the same file" 'cmp -s "$T/h.png" "$T/h2.png"'

gen -p "a cat" -W 32 -H 32 --steps 2 -s 5 --hires --hires-upscaler lanczos --hires-width 64 --hires-height 48 \
  --denoising-strength 0.5 -o "$T/r.png"
info=$("$BIN/pigment" png-info --fields "$T/r.png")
check "hires resize: crops to the target size" '[ "$(size "$T/r.png")" = "64x48" ]'
check "hires resize: Hires resize key, no Hires upscale" \
  'grep -qx "Hires resize: 64x48" <<<"$info" && ! grep -q "^Hires upscale:" <<<"$info"'
check "hires resize: upscaler name as A1111 spells it" 'grep -qx "Hires upscaler: Lanczos" <<<"$info"'
check "hires resize: --denoising-strength sets the hires strength" 'grep -qx "Denoising strength: 0.5" <<<"$info"'
gen --from-png "$T/r.png" -o "$T/r2.png"
check "hires resize: --from-png reproduces the same file" 'cmp -s "$T/r.png" "$T/r2.png"'

gen -p "a cat" -W 32 -H 32 --steps 2 -s 5 --hires-fix --hr-scale 1.5 --hr-upscaler "Latent (bicubic antialiased)" \
  --hr-sampler "DPM++ 2M" --hr-schedule Karras -o "$T/b.png"
info=$("$BIN/pigment" png-info --fields "$T/b.png")
check "hires: 1.5x with bicubic antialiased latents" '[ "$(size "$T/b.png")" = "48x48" ]'
check "hires: Hires sampler and schedule type" \
  'grep -qx "Hires sampler: DPM++ 2M" <<<"$info" && grep -qx "Hires schedule type: Karras" <<<"$info"'

# ---- inpaint only masked ----
gen -p "a wall" -W 64 -H 48 --steps 2 -s 9 -o "$T/init.png"
python3 - "$T/mask.png" <<'PY'
import struct, sys, zlib
w, h = 64, 48
rows = b"".join(b"\0" + bytes(255 if 40 <= x < 52 and 8 <= y < 20 else 0 for x in range(w)) for y in range(h))
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY
gen -p "a window" -W 32 -H 32 --steps 2 -s 3 -i "$T/init.png" --mask "$T/mask.png" --strength 0.8 \
  --inpaint-area masked --inpaint-padding 6 --mask-blur 2 -o "$T/m.png"
info=$("$BIN/pigment" png-info --fields "$T/m.png")
check "only masked: the output has the init image's size" '[ "$(size "$T/m.png")" = "64x48" ]'
check "only masked: Inpaint area and Masked area padding" \
  'grep -qx "Inpaint area: Only masked" <<<"$info" && grep -qx "Masked area padding: 6" <<<"$info"'
check "only masked: Size is the generation size" 'grep -qx "Size: 32x32" <<<"$info"'
gen --from-png "$T/m.png" -i "$T/init.png" --mask "$T/mask.png" -o "$T/m2.png"
check "only masked: --from-png (with the images) reproduces the file" 'cmp -s "$T/m.png" "$T/m2.png"'
gen -p "a window" -W 32 -H 32 --steps 2 -s 3 -i "$T/init.png" --mask "$T/mask.png" --strength 0.8 \
  --inpaint-area "Only masked" --inpaint-padding 6 --mask-blur 2 -o "$T/m3.png"
check "only masked: A1111's label works too" '[ "$(idat "$T/m.png")" = "$(idat "$T/m3.png")" ]'
gen -p "a window" -W 64 -H 48 --steps 2 -s 3 -i "$T/init.png" --mask "$T/mask.png" --strength 0.8 \
  --masked-content "latent noise" -o "$T/ln.png"
info=$("$BIN/pigment" png-info --fields "$T/ln.png")
check "masked content: key written" 'grep -qx "Masked content: latent noise" <<<"$info"'
gen --from-png "$T/ln.png" -i "$T/init.png" --mask "$T/mask.png" -o "$T/ln2.png"
check "masked content: --from-png reproduces the file" 'cmp -s "$T/ln.png" "$T/ln2.png"'

# ---- SDXL micro-conditioning ----
genxl -p "a cat" -W 32 -H 32 --steps 2 -s 3 -o "$T/x0.png"
genxl -p "a cat" -W 32 -H 32 --steps 2 -s 3 --original-size 32x32 --crop-coords 0x0 --target-size 32x32 -o "$T/x1.png"
check "sdxl: the default sizes given explicitly change nothing" '[ "$(idat "$T/x0.png")" = "$(idat "$T/x1.png")" ]'
genxl -p "a cat" -W 32 -H 32 --steps 2 -s 3 --original-size 512x256 --crop-coords 16x8 --target-size 64x64 \
  -o "$T/x2.png"
info=$("$BIN/pigment" png-info --fields "$T/x2.png")
check "sdxl: other sizes change the image" '[ "$(idat "$T/x0.png")" != "$(idat "$T/x2.png")" ]'
check "sdxl: sizes in the infotext" 'grep -qx "SDXL original size: 512x256" <<<"$info" && \
  grep -qx "SDXL crop coords: 16x8" <<<"$info" && grep -qx "SDXL target size: 64x64" <<<"$info"'
genxl --from-png "$T/x2.png" -o "$T/x3.png"
check "sdxl: --from-png reproduces the file" 'cmp -s "$T/x2.png" "$T/x3.png"'

# ---- progress ----
out=$(gen -p "a cat" -W 32 -H 32 --steps 2 -s 5 --quiet -o "$T/q.png" 2>&1)
check "--quiet prints nothing" '[ -z "$out" ] && [ -s "$T/q.png" ]'
out=$("$BIN/pigment" generate -m "$M/sd1_single_file.safetensors" --tokenizer "$SHARED/clip-tokenizer" \
  --model-config unet=$M/unet_sd1 --model-config vae=$M/vae --model-config text_encoder=$M/clip_sd1 \
  -p "a cat" -W 32 -H 32 --steps 2 -s 5 -b 2 -o "$T/p.png" 2>&1 >/dev/null)
check "not a terminal: one line per image (after the load line)" \
  '[ $(grep -c "^image [12]/2: seed [0-9]*, 32x32, 2 steps in .* s -> " <<<"$out") -eq 2 ] && [ $(wc -l <<<"$out") -eq 3 ]'
cmd="$BIN/pigment generate -m $M/sd1_single_file.safetensors --tokenizer $SHARED/clip-tokenizer \
--model-config unet=$M/unet_sd1 --model-config vae=$M/vae --model-config text_encoder=$M/clip_sd1 \
-p cat -W 32 -H 32 --steps 2 -s 5 --hires-fix --hr-steps 2 -o $T/tty.png"
out=$(script -qec "$cmd" /dev/null 2>&1 | tr '\r' '\n')
check "terminal: a bar with step, it/s and ETA for each pass" \
  'grep -q "\] 2/2  [0-9.]* it/s  ETA [0-9]* s" <<<"$out" && grep -q "^hires \[.*\] 2/2  [0-9.]* it/s  ETA" <<<"$out"'

# ---- errors: one line, exit 1, no file ----
err() {
  local name=$1; shift
  rm -f "$T/bad.png"
  out=$("$@" -o "$T/bad.png" 2>&1 >/dev/null); rc=$?
  check "$name" '[ $rc -eq 1 ] && [ $(wc -l <<<"$out") -eq 1 ] && grep -q "^error: " <<<"$out" && [ ! -e "$T/bad.png" ]'
}
err "hires scale 0" gen -p x -W 32 -H 32 --hires-fix --hr-scale 0
err "hires scale absurd" gen -p x -W 32 -H 32 --hires-fix --hr-scale 100
err "hires scale not a number" gen -p x -W 32 -H 32 --hires-fix --hr-scale big
err "hires size too large" gen -p x -W 2048 -H 2048 --hires-fix --hr-scale 4
err "unknown hires upscaler" gen -p x -W 32 -H 32 --hires-fix --hr-upscaler "R-ESRGAN 4x+"
err "hires steps negative" gen -p x -W 32 -H 32 --hires-fix --hr-steps -1
err "hires denoising 0" gen -p x -W 32 -H 32 --hires-fix --hr-denoising-strength 0
err "hires denoising above 1" gen -p x -W 32 -H 32 --hires-fix --denoising-strength 1.5
err "hires resize negative" gen -p x -W 32 -H 32 --hires-fix --hr-resize-x -64
err "unknown hires sampler" gen -p x -W 32 -H 32 --hires-fix --hr-sampler "Bogus 3000"
err "hires flags without --hires-fix" gen -p x -W 32 -H 32 --hr-scale 2
err "hires fix with an init image" gen -p x -W 32 -H 32 --hires-fix -i "$T/init.png"
err "masked area without a mask" gen -p x -W 32 -H 32 -i "$T/init.png" --inpaint-area masked
err "unknown inpaint area" gen -p x -W 32 -H 32 -i "$T/init.png" --mask "$T/mask.png" --inpaint-area everywhere
err "negative padding" gen -p x -W 32 -H 32 -i "$T/init.png" --mask "$T/mask.png" --inpaint-area masked \
  --inpaint-padding -4
err "negative mask blur" gen -p x -W 32 -H 32 -i "$T/init.png" --mask "$T/mask.png" --mask-blur -1
err "unknown masked content" gen -p x -W 32 -H 32 -i "$T/init.png" --mask "$T/mask.png" --masked-content mud
err "masked content without a mask" gen -p x -W 32 -H 32 --masked-content fill
python3 - "$T/black.png" <<'PY'
import struct, sys, zlib
w, h = 64, 48
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(b"".join(b"\0" + bytes(w) for _ in range(h)))) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY
err "only masked with an all-black mask" gen -p x -W 32 -H 32 --steps 1 -i "$T/init.png" --mask "$T/black.png" \
  --inpaint-area masked
err "original size not WxH" genxl -p x -W 32 -H 32 --original-size 1024
err "crop coords negative" genxl -p x -W 32 -H 32 --crop-coords -8x0
err "target size zero" genxl -p x -W 32 -H 32 --target-size 0x64
err "SDXL sizes on an SD1 model" gen -p x -W 32 -H 32 --original-size 64x64

echo "$fails failed"
[ "$fails" -eq 0 ]
