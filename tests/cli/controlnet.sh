#!/usr/bin/env bash
# ControlNet on the command line with the tiny golden SD1 model and ControlNet: the canny preprocessor (--canny is
# the same as --control-preprocess canny), resize modes, several ControlNets each with its own image, strength and
# start/end (a unit at strength 0, or whose window holds no step, changes nothing), the A1111 infotext, and
# pigment qr (code rendering that scans back, an honest scan report on a random-weight generation, --check), and
# pigment init --controlnet.
# Bad input is a one-line error with exit 1 and no output file.
set -u
source "$(dirname "$0")/lib/common.bash"
requires python3
MODEL=("${TINY_SD1[@]}")
gen() { "$BIN/pigment" generate "${MODEL[@]}" -q -W 64 -H 32 --steps 3 -s 5 --sampler Euler -p "a cat" "$@"; }
CN=(--control-net "$M/controlnet")
# Same pixels (the PNGs' recipes differ): the decompressed IDAT streams are equal.
same_pixels() {
  python3 - "$1" "$2" <<'PY'
import struct, sys, zlib
def pixels(path):
    data = open(path, 'rb').read()
    pos, idat = 8, b''
    while pos < len(data):
        n, kind = struct.unpack('>I4s', data[pos:pos + 8])
        if kind == b'IHDR': head = data[pos + 8:pos + 8 + n]
        if kind == b'IDAT': idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    return head, zlib.decompress(idat)
sys.exit(0 if pixels(sys.argv[1]) == pixels(sys.argv[2]) else 1)
PY
}

# Control images: a photo-like picture (the base output) and a 64x64 one of another aspect.
gen -o "$T/photo.png"
"$BIN/pigment" generate "${MODEL[@]}" -q -W 64 -H 64 --steps 2 -s 9 --sampler Euler -p "a dog" -o "$T/square.png"

gen "${CN[@]}" --control-image "$T/photo.png" -o "$T/none.png"
gen "${CN[@]}" --control-image "$T/photo.png" --control-preprocess canny -o "$T/canny.png"
gen "${CN[@]}" --control-image "$T/photo.png" --canny -o "$T/canny2.png"
gen "${CN[@]}" --control-image "$T/photo.png" --canny --canny-low 10 --canny-high 30 -o "$T/canny3.png"
check "canny preprocessing changes the image" '[ -s "$T/canny.png" ] && ! same_pixels "$T/none.png" "$T/canny.png"'
check "--canny is --control-preprocess canny" 'cmp -s "$T/canny.png" "$T/canny2.png"'
check "canny thresholds matter" '[ -s "$T/canny3.png" ] && ! same_pixels "$T/canny.png" "$T/canny3.png"'
info=$("$BIN/pigment" png-info --fields "$T/canny3.png")
check "infotext names the ControlNet unit" 'grep -qx "ControlNet 0: Module: canny, Model: controlnet, Weight: 1, Resize Mode: Crop and Resize, Threshold A: 10, Threshold B: 30, Guidance Start: 0, Guidance End: 1, Pixel Perfect: True, Control Mode: Balanced" <<<"$info"'

gen "${CN[@]}" --control-image "$T/square.png" -o "$T/crop.png"
gen "${CN[@]}" --control-image "$T/square.png" --control-resize just-resize -o "$T/just.png"
gen "${CN[@]}" --control-image "$T/square.png" --control-resize fill -o "$T/fill.png"
check "resize modes give different maps" '[ -s "$T/fill.png" ] && ! same_pixels "$T/crop.png" "$T/just.png" && ! same_pixels "$T/crop.png" "$T/fill.png"'
gen "${CN[@]}" --control-image "$T/square.png" --control-resize "Crop and Resize" -o "$T/crop2.png"
check "A1111 resize labels" 'cmp -s "$T/crop.png" "$T/crop2.png"'

# Several ControlNets: each flag per unit, in order.
gen "${CN[@]}" --control-image "$T/photo.png" "${CN[@]}" --control-image "$T/square.png" \
  --control-strength 1 --control-strength 0 -o "$T/two_off.png"
check "a second unit at strength 0 changes nothing" 'same_pixels "$T/none.png" "$T/two_off.png"'
gen "${CN[@]}" --control-image "$T/photo.png" "${CN[@]}" --control-image "$T/square.png" \
  --control-start 0 --control-start 0 --control-end 1 --control-end 0.3 -o "$T/two_early.png"
check "a second unit whose window holds no step changes nothing" 'same_pixels "$T/none.png" "$T/two_early.png"'
gen "${CN[@]}" --control-image "$T/photo.png" "${CN[@]}" --control-image "$T/square.png" \
  --control-start 0 --control-start 0.3 --control-end 1 --control-end 1 --control-preprocess none \
  --control-preprocess canny -o "$T/two_on.png"
check "a second unit in its window adds its residuals" '[ -s "$T/two_on.png" ] && ! same_pixels "$T/none.png" "$T/two_on.png"'
info=$("$BIN/pigment" png-info --fields "$T/two_on.png")
check "infotext has one entry per unit" 'grep -q "^ControlNet 0: Module: none, .*Guidance Start: 0, Guidance End: 1," <<<"$info" && grep -q "^ControlNet 1: Module: canny, .*Guidance Start: 0.3, Guidance End: 1," <<<"$info"'

# pigment qr
"$BIN/pigment" qr "https://example.com/pigment" --code-only -W 256 -H 192 -o "$T/code.png" >/dev/null
out=$("$BIN/pigment" qr --check "$T/code.png"); rc=$?
check "the rendered code scans back to its text" '[ $rc -eq 0 ] && [ "$out" = "scans: yes (https://example.com/pigment)" ]'
out=$("$BIN/pigment" qr --check "$T/code.png" "other text"); rc=$?
check "--check with another text says no" '[ $rc -eq 2 ] && [ "$out" = "scans: no (reads \"https://example.com/pigment\", not the text)" ]'
out=$("$BIN/pigment" qr --check "$T/photo.png"); rc=$?
check "--check on a picture without a code says no" '[ $rc -eq 2 ] && [ "$out" = "scans: no" ]'
out=$("$BIN/pigment" qr "hello" "${MODEL[@]}" "${CN[@]}" -q -W 64 -H 64 --steps 2 -s 3 --sampler Euler -p "a garden" \
  -o "$T/qr.png"); rc=$?
check "qr generates and reports a scan line" '[ $rc -eq 0 ] && [ -s "$T/qr.png" ] && grep -qE "^$T/qr.png: scans: (yes \(hello\)|no.*)$" <<<"$out"'
check "the report is honest" 'if "$BIN/pigment" qr --check "$T/qr.png" hello >/dev/null; then grep -q "scans: yes" <<<"$out"; else grep -q "scans: no" <<<"$out"; fi'
info=$("$BIN/pigment" png-info --fields "$T/qr.png")
check "qr output carries the recipe" 'grep -q "^ControlNet 0: Module: none, Model: controlnet," <<<"$info"'

# pigment init --controlnet: a full-size random ControlNet in the original layout (SD1.5: 340 tensors, 361M
# parameters as lllyasviel's files; loading it is tested in controlnet_families_test).
"$BIN/pigment" init --family sd15 --controlnet --seed 3 --out "$T/cn15.safetensors" >"$T/init.out"
check "init --controlnet writes the SD1.5 ControlNet key set" \
  'grep -qx "component controlnet: 340 tensors, 361279120 parameters" "$T/init.out" && [ -s "$T/cn15.safetensors" ]'
rm -f "$T/cn15.safetensors"
out=$("$BIN/pigment" init --family sd15 --controlnet --diffusers "$T/cnd" 2>&1); rc=$?
check "init --controlnet wants one file" '[ $rc -eq 1 ] && [ "$out" = "error: init --controlnet: give --out FILE (a ControlNet is one file)" ] && [ ! -e "$T/cnd" ]'

err() {  # expect exit 1, one "error:" line on stderr, no output file
  local name=$1; shift
  rm -f "$T/bad.png"
  out=$("$@" -o "$T/bad.png" 2>&1 >/dev/null); rc=$?
  check "$name" '[ $rc -eq 1 ] && [ $(wc -l <<<"$out") -eq 1 ] && grep -q "^error: " <<<"$out" && [ ! -e "$T/bad.png" ]'
}
err "unknown preprocessor" gen "${CN[@]}" --control-image "$T/photo.png" --control-preprocess depth
err "unknown resize mode" gen "${CN[@]}" --control-image "$T/photo.png" --control-resize zoom
err "start after end" gen "${CN[@]}" --control-image "$T/photo.png" --control-start 0.6 --control-end 0.4
err "per-unit count" gen "${CN[@]}" --control-image "$T/photo.png" --control-end 1 --control-end 0.5
err "canny thresholds" gen "${CN[@]}" --control-image "$T/photo.png" --canny --canny-low 200 --canny-high 100
Q=("$BIN/pigment" qr "${MODEL[@]}" -q -W 64 -H 64 --steps 2 -p x)
err "qr: empty text" "${Q[@]}" "" "${CN[@]}"
err "qr: text too long" "${Q[@]}" "$(head -c 3000 /dev/zero | tr '\0' a)" "${CN[@]}"
err "qr: no --control-net" "${Q[@]}" "hello"
err "qr: no model (none given, none shipped)" env PIGMENT_MODEL="$T/none.safetensors" "$BIN/pigment" qr "hello" "${CN[@]}"
err "qr: image too small for the code" "${Q[@]}" "$(head -c 200 /dev/zero | tr '\0' a)" "${CN[@]}" -W 32 -H 32
err "qr: bad level" "${Q[@]}" "hello" "${CN[@]}" --qr-level Z
err "qr --check: missing file" "$BIN/pigment" qr --check "$T/nope.png"

echo "$fails failure(s)"
[ $fails -eq 0 ]
