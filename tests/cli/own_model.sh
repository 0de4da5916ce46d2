#!/usr/bin/env bash
# The shipped model (models/pigment-emoji.safetensors, trained by `pigment train --recipe emoji`): `pigment generate`
# with no -m loads it, and 4 steps give a picture, not noise — a large share of white background and smooth areas
# (pigment-measure stats: uniform noise has white ~0.0002 and rough ~85) — that differs between two prompts and from
# the unconditional (--cfg-scale 0, empty prompt) picture of the same seed. Chinese prompts work too.
set -uo pipefail
source "$(dirname "$0")/lib/common.bash"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MODEL="$ROOT/models/pigment-emoji.safetensors"
check "the model is shipped" "[ -s '$MODEL' ]"
check "at most 50 MB" "[ \$(stat -c %s '$MODEL') -le 50000000 ]"
gen() { "$BIN/pigment" generate --steps 4 -s 7 --threads 1 "$@"; }
gen -p "red apple" -o "$T/apple.png" >"$T/gen" 2>&1
check "generate with no -m" "grep -q '64x64, 4 steps' '$T/gen' && [ -s '$T/apple.png' ]"
gen -p "grinning face" -o "$T/face.png" >/dev/null 2>&1
gen -p "红苹果" -o "$T/zh.png" >/dev/null 2>&1
gen -p "" --cfg-scale 0 -o "$T/uncond.png" >/dev/null 2>&1
for f in apple face zh uncond; do
  read -r _ size _ white _ rough < <("$BIN/pigment-measure" stats "$T/$f.png")
  echo "     $f: white $white rough $rough"
  check "$f is a picture, not noise" "awk 'BEGIN { exit !($white > 0.15 && $rough < 30) }'"
done
differs() { local p; p=$("$BIN/pigment-measure" psnr "$1" "$2"); echo "     psnr $(basename "$1") $(basename "$2"): $p"
            [ -n "$p" ] && awk -v p="$p" 'BEGIN { exit !(p != "inf" && p + 0 < 30) }'; }
check "two prompts give two pictures" "differs '$T/apple.png' '$T/face.png'"
check "the prompt matters (vs CFG 0)" "differs '$T/apple.png' '$T/uncond.png' && differs '$T/face.png' '$T/uncond.png'"
check "a Chinese prompt is read" "differs '$T/zh.png' '$T/uncond.png'"
gen -p "red apple" --upscale 4 -o "$T/big.png" >/dev/null 2>&1
check "--upscale 4 writes 256x256" "\"$BIN/pigment-measure\" stats '$T/big.png' | grep -q '^size 256x256 '"
exit $fails
