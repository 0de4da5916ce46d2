#!/usr/bin/env bash
# pigment generate --precision: fast writes an image (the bf16 path where the CPU has AMX, else the fp32 one),
# the same bytes at 1 and 2 threads, and an unknown precision is a one-line error.
set -u
source "$(dirname "$0")/lib/common.bash"
gen() { "$BIN/pigment" generate "${TINY_SD1[@]}" -q \
  -p "a cat" -W 32 -H 32 --steps 3 -s 7 "$@"; }

gen --precision fp32 -o "$T/fp32.png"
gen --precision fast -t 1 -o "$T/fast1.png"
gen --precision fast -t 2 -o "$T/fast2.png"
check "fp32 and fast both write a PNG" '[ -s "$T/fp32.png" ] && [ -s "$T/fast1.png" ]'
check "fast gives the same bytes at 1 and 2 threads" 'cmp -s "$T/fast1.png" "$T/fast2.png"'
check "fp32 is the default" 'gen -o "$T/default.png" && cmp -s "$T/fp32.png" "$T/default.png"'
out=$(gen --precision half -o "$T/bad.png" 2>&1); rc=$?
check "unknown precision: exit 1, one line, no file" '[ $rc -ne 0 ] && [ $(wc -l <<<"$out") -eq 1 ] && [ ! -e "$T/bad.png" ]'
exit $((fails > 0))
