#!/usr/bin/env bash
# pigment generate end to end on the tiny golden SD1 single file: PNG recipe round trip, --from-png reproduces the
# pixels, 1 and 2 threads give the same image, files are never overwritten, and bad input is a one-line error.
set -u
source "$(dirname "$0")/lib/common.bash"
gen() { "$BIN/pigment" generate "${TINY_SD1[@]}" -q "$@"; }

gen -p "a (red:1.2) cat [in|on] a [box:bag:0.5]" -n "blurry" -W 64 -H 32 --steps 4 -s 42 --sampler "DPM++ 2M" \
  --schedule Karras --cfg-scale 7.5 -o "$T/a.png"
check "generate writes a PNG" '[ -s "$T/a.png" ]'
info=$("$BIN/pigment" png-info --fields "$T/a.png")
check "prompt round-trips" 'grep -qx "Prompt: a (red:1.2) cat \[in|on\] a \[box:bag:0.5\]" <<<"$info"'
check "negative prompt round-trips" 'grep -qx "Negative prompt: blurry" <<<"$info"'
check "steps" 'grep -qx "Steps: 4" <<<"$info"'
check "sampler" 'grep -qx "Sampler: DPM++ 2M" <<<"$info"'
check "schedule type" 'grep -qx "Schedule type: Karras" <<<"$info"'
check "cfg scale" 'grep -qx "CFG scale: 7.5" <<<"$info"'
check "seed" 'grep -qx "Seed: 42" <<<"$info"'
check "size" 'grep -qx "Size: 64x32" <<<"$info"'
check "model hash" 'grep -qE "^Model hash: [0-9a-f]{10}$" <<<"$info"'

gen --from-png "$T/a.png" -o "$T/b.png"
check "--from-png reproduces the same file" 'cmp -s "$T/a.png" "$T/b.png"'

gen -p "a cat" -W 32 -H 32 --steps 3 -s 7 --sampler "Euler a" -t 1 -o "$T/t1.png"
gen -p "a cat" -W 32 -H 32 --steps 3 -s 7 --sampler "Euler a" -t 2 -o "$T/t2.png"
check "1 and 2 threads give the same image" 'cmp -s "$T/t1.png" "$T/t2.png"'

gen -p "a cat" -W 32 -H 32 --steps 2 -s 7 -o "$T/t1.png"
check "existing file kept, new one numbered" '[ -s "$T/t1-1.png" ] && cmp -s "$T/t1.png" "$T/t2.png"'

gen -p "x" -W 32 -H 32 --steps 2 -s 1 -i "$T/a.png" --strength 0.5 -o "$T/i2i.png" 2>/dev/null
check "img2img with a different-size init image is resized" '[ -s "$T/i2i.png" ]'

err() {  # expect exit 1 and exactly one line starting with "error:" on stderr, and no output file
  local name=$1; shift
  rm -f "$T/bad.png"
  out=$(gen "$@" -o "$T/bad.png" 2>&1 >/dev/null); rc=$?
  check "$name" '[ $rc -eq 1 ] && [ $(wc -l <<<"$out") -eq 1 ] && grep -q "^error: " <<<"$out" && [ ! -e "$T/bad.png" ]'
}
err "width not a multiple of 8" -p x -W 65 -H 64
err "steps below 1" -p x --steps 0
err "strength above 1" -p x -i "$T/a.png" --strength 1.5
err "unknown sampler" -p x --sampler "Bogus 3000"
err "unknown schedule" -p x --schedule wobbly
err "absurd size" -p x -W 65536 -H 65536
err "unreadable init image" -p x -i /etc/passwd
err "mask of another size" -p x -W 64 -H 32 -i "$T/a.png" --mask "$T/t1.png"
err "mask without init image" -p x --mask "$T/a.png"
# --from-png reads the recipe's numbers strictly: one error line naming the field and the value.
"$BIN/pigment" qr x --code-only -W 64 -H 32 -o "$T/plain.png" >/dev/null
for bad in "Seed: abc" "Size: 32xfoo" "Steps: 3abc"; do
  field=${bad%%:*} value=${bad#*: }
  params="Steps: 3, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 64x32"
  params=$(sed -E "s/$field: [^,]*/$bad/" <<<"$params")
  png_with_parameters "$T/plain.png" "$T/recipe.png" "a cat
$params"
  err "--from-png with '$bad'" --from-png "$T/recipe.png"
  check "  ... the error names $field and $value" 'grep -q "field .$field.: .$value. is not" <<<"$out"'
done
out=$("$BIN/pigment" generate -m "$T/missing.safetensors" -p x 2>&1); rc=$?
check "missing model" '[ $rc -eq 1 ] && grep -q "^error: .*missing.safetensors" <<<"$out"'
out=$("$BIN/pigment" generate -m "$M/sd1_single_file.safetensors" --tokenizer "$T" -p x 2>&1); rc=$?
check "missing tokenizer" '[ $rc -eq 1 ] && [ $(wc -l <<<"$out") -eq 1 ]'

echo "$fails failed"
[ "$fails" -eq 0 ]
