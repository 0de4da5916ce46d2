#!/usr/bin/env bash
# pigment generate --low-memory on the tiny golden SD1 single file: it writes the image, the same bytes at 1 and 2
# threads, and the flag is listed in --help.
set -u
source "$(dirname "$0")/lib/common.bash"
gen() { "$BIN/pigment" generate "${TINY_SD1[@]}" -q "$@"; }

gen --low-memory -p "a cat" -n "blurry" -W 64 -H 64 --steps 3 -s 7 -t 1 -o "$T/l1.png"
check "--low-memory writes a PNG" '[ -s "$T/l1.png" ]'
gen --low-memory -p "a cat" -n "blurry" -W 64 -H 64 --steps 3 -s 7 -t 2 -o "$T/l2.png"
check "--low-memory: 1 and 2 threads give the same image" 'cmp -s "$T/l1.png" "$T/l2.png"'
gen -p "a cat" -n "blurry" -W 64 -H 64 --steps 3 -s 7 -o "$T/d.png"
check "default mode writes a PNG too" '[ -s "$T/d.png" ]'
check "--help lists --low-memory" '"$BIN/pigment" generate --help | grep -q -- "--low-memory"'

echo "$fails failed"
[ "$fails" -eq 0 ]
