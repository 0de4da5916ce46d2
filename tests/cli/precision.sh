#!/usr/bin/env bash
# pigment generate --precision: fast writes an image (the bf16 path where the CPU has AMX or AVX-512 BF16, else the
# exact one) within a PSNR threshold of exact's, the same bytes at 1 and 2 threads, a one-line note on stderr where
# the CPU has no fast path, and an unknown precision is a one-line error. The default (auto) is fast where the CPU
# has a fast path and exact elsewhere; the infotext records which ran, and --from-png re-runs with it.
set -u
source "$(dirname "$0")/lib/common.bash"
requires python3
gen() { "$BIN/pigment" generate "${TINY_SD1[@]}" -q \
  -p "a cat" -W 32 -H 32 --steps 3 -s "${SEED:-7}" "$@"; }

gen --precision exact -o "$T/fp32.png"
gen --precision fast -t 1 -o "$T/fast1.png"
gen --precision fast -t 2 -o "$T/fast2.png"
check "fp32 and fast both write a PNG" '[ -s "$T/fp32.png" ] && [ -s "$T/fast1.png" ]'
check "fast gives the same bytes at 1 and 2 threads" 'cmp -s "$T/fast1.png" "$T/fast2.png"'
precision_of() { "$BIN/pigment" png-info --fields "$1" | sed -n 's/^Precision: //p'; }
check "the infotext records exact and fast" '[ "$(precision_of "$T/fp32.png")" = exact ] &&
  case "$(precision_of "$T/fast1.png")" in exact|fast) true;; *) false;; esac'
has_fast=$([ "$(precision_of "$T/fast1.png")" = fast ] && echo yes || echo no)
echo "this CPU has a fast path: $has_fast"
gen -o "$T/default.png"
check "the default is fast where the CPU has a fast path, else exact (pixels and infotext)" '
  if [ $has_fast = yes ]; then want=fast1; else want=fp32; fi
  [ "$(idat "$T/default.png")" = "$(idat "$T/$want.png")" ] && [ "$(precision_of "$T/default.png")" = "$(precision_of "$T/$want.png")" ]'
gen --low-memory -o "$T/low.png"
check "--low-memory makes auto exact" '[ "$(precision_of "$T/low.png")" = exact ]'
gen --precision fp32 -o "$T/fp32-alias.png"
check "fp32 is exact" 'cmp -s "$T/fp32.png" "$T/fp32-alias.png"'
"$BIN/pigment" generate "${TINY_SD1[@]}" -q --from-png "$T/fp32.png" -o "$T/again-exact.png"
check "--from-png of an exact picture re-runs exact under a fast default" 'cmp -s "$T/fp32.png" "$T/again-exact.png"'
"$BIN/pigment" generate "${TINY_SD1[@]}" -q --from-png "$T/fp32.png" --precision fast -t 1 -o "$T/again-fast.png"
check "... unless --precision is given" '[ "$(idat "$T/again-fast.png")" = "$(idat "$T/fast1.png")" ]'
# fast against fp32 after the same steps: close (bf16 products where the CPU has them; the same pixels where it has
# none), with a threshold that a broken fast path fails: another seed's image is far below it.
MEASURE=$BIN/pigment-measure
psnr=$("$MEASURE" psnr "$T/fp32.png" "$T/fast1.png")
echo "fast vs fp32 after 3 steps at 32x32: PSNR $psnr dB"
check "fast has a PSNR of at least 25 dB against fp32" '[ "$psnr" = inf ] || awk -v p="$psnr" "BEGIN { exit !(p >= 25) }"'
SEED=8 gen --precision fp32 -o "$T/other.png"
other=$("$MEASURE" psnr "$T/fp32.png" "$T/other.png")
check "the threshold fails another image ($other dB)" '[ -n "$other" ] && awk -v p="$other" "BEGIN { exit !(p < 25) }"'
# Where fast has no fast path (no AMX, no AVX-512 BF16: forced here with the ISA cap) it says so in one line on
# stderr, and runs exact; the default there is exact, silently.
err32=$(PIGMENT_MAX_ISA=avx512_vnni gen --precision fp32 -o "$T/capped32.png" 2>&1 >/dev/null)
check "fp32 says nothing about a fast path" '! grep -q "fast path" <<<"$err32"'
err=$(PIGMENT_MAX_ISA=avx512_vnni gen --precision fast -o "$T/capped.png" 2>&1 >/dev/null)
check "fast without bf16 arithmetic: one stderr line saying so" '[ "$(grep -c "no fast path" <<<"$err")" -eq 1 ] && [ $(wc -l <<<"$err") -eq 1 ]'
check "fast without bf16 arithmetic gives the exact pixels" '[ "$(idat "$T/capped.png")" = "$(idat "$T/capped32.png")" ] &&
  [ "$(precision_of "$T/capped.png")" = exact ]'
errd=$(PIGMENT_MAX_ISA=avx512_vnni gen -o "$T/capped-default.png" 2>&1 >/dev/null)
check "the default without bf16 arithmetic: exact, nothing said" '[ -z "$errd" ] && cmp -s "$T/capped-default.png" "$T/capped32.png"'
# int8 (linear layers and 3x3 convolutions in 8-bit integers where the CPU has VNNI or AMX; the rest as fast): a PNG that says so, or,
# without VNNI (capped), one stderr line and the pixels of what it runs instead.
e8=$(gen --precision int8 -o "$T/int8.png" 2>&1 >/dev/null)
check "int8 writes a PNG whose infotext says int8 (or, on a CPU without VNNI, what ran)" '[ -s "$T/int8.png" ] &&
  if grep -q "no int8 path" <<<"$e8"; then [ "$(precision_of "$T/int8.png")" != int8 ]; else
  [ -z "$e8" ] && [ "$(precision_of "$T/int8.png")" = int8 ]; fi'
err8=$(PIGMENT_MAX_ISA=avx2 gen --precision int8 -o "$T/int8-capped.png" 2>&1 >/dev/null)
PIGMENT_MAX_ISA=avx2 gen --precision exact -o "$T/exact-capped.png"
check "int8 without VNNI: one stderr line, the exact pixels" '[ "$(grep -c "no int8 path" <<<"$err8")" -eq 1 ] &&
  [ $(wc -l <<<"$err8") -eq 1 ] && cmp -s "$T/int8-capped.png" "$T/exact-capped.png"'
out=$(gen --precision half -o "$T/bad.png" 2>&1); rc=$?
check "unknown precision: exit 1, one line, no file" '[ $rc -ne 0 ] && [ $(wc -l <<<"$out") -eq 1 ] && [ ! -e "$T/bad.png" ]'
exit $((fails > 0))
