#!/usr/bin/env bash
# pigment tokenizer train / encode: a BPE learned from a tiny caption folder (several captions per file, as the
# emoji data set writes them, in a sub-folder, beside a picture and a metadata.jsonl that are not read) and from a
# captions file; the merges load as a tokenizer whose encode/decode round-trips English and Chinese; frequent words
# are one token; training twice gives the same bytes; bad input is refused with one line.
set -uo pipefail
source "$(dirname "$0")/lib/common.bash"
D="$T/data"
mkdir -p "$D/train/sub"
for i in 1 2 3; do
  printf 'red apple\n红苹果\napple, fruit, red\n' >"$D/train/apple$i.txt"
  printf 'green apple\n青苹果\napple, fruit, green\n' >"$D/train/sub/green$i.txt"
  printf 'woman technologist: medium skin tone\n女技术员: 中等肤色\n' >"$D/train/tech$i.txt"
done
printf 'not an image' >"$D/train/apple1.png"
echo '{"name": "ignored"}' >"$D/metadata.jsonl"

"$BIN/pigment" tokenizer train --data "$D" --merges 500 --out "$T/merges.txt" >"$T/out" 2>&1
check "train runs" "grep -q 'read 24 captions' '$T/out' && grep -q 'wrote $T/merges.txt' '$T/out'"
check "stops early" "grep -q 'stopped early' '$T/out'"
check "header" "[ \"\$(head -1 '$T/merges.txt')\" = '#version: 0.2' ]"
check "merge lines" "[ \$(grep -vc '^#' '$T/merges.txt') -gt 20 ] && ! grep -v '^#' '$T/merges.txt' | grep -qv '^[^ ]* [^ ]*\$'"

enc() { "$BIN/pigment" tokenizer encode --merges "$T/merges.txt" "$@"; }
enc "red apple" "红苹果" "woman technologist: medium skin tone" "Green APPLE" >"$T/enc" 2>&1
check "english round trip" "grep -qx 'decoded: red apple' '$T/enc'"
check "chinese round trip" "grep -qx 'decoded: 红苹果' '$T/enc'"
check "punctuation round trip" "grep -qx 'decoded: woman technologist : medium skin tone' '$T/enc'"
check "lower case" "grep -qx 'decoded: green apple' '$T/enc'"
check "frequent words one token each" "grep -qx 'tokens:  red</w> apple</w>' '$T/enc'"
check "chinese in few tokens" "grep -q 'count:   1 tokens, 9 bytes' '$T/enc'"

"$BIN/pigment" tokenizer train --data "$D" --merges 500 --out "$T/again.txt" >/dev/null 2>&1
check "deterministic" "cmp -s '$T/merges.txt' '$T/again.txt'"
printf 'red apple\nred apple\n红苹果\n红苹果\n' >"$T/captions.txt"
"$BIN/pigment" tokenizer train --captions "$T/captions.txt" --merges 3 --out "$T/three.txt" >"$T/out3" 2>&1
check "captions file, merge count" "[ \$(wc -l <'$T/three.txt') = 4 ] && grep -q 'wrote .*: 3 merges' '$T/out3'"
enc "red" >"$T/enc2" 2>&1
check "encode shows ids" "grep -q '^ids:     [0-9]' '$T/enc2'"
"$BIN/pigment" tokenizer encode "red apple" >"$T/clip" 2>&1
check "built-in CLIP ids" "grep -qx 'ids:     736 3055' '$T/clip'"

check "no source" "! '$BIN/pigment' tokenizer train --out '$T/x.txt' 2>'$T/err' && grep -q 'give --data DIR or --captions FILE' '$T/err'"
mkdir -p "$T/empty"
check "no captions" "! '$BIN/pigment' tokenizer train --data '$T/empty' --out '$T/x.txt' 2>'$T/err' && grep -q 'no caption (.txt) files' '$T/err'"
check "too many merges" "! '$BIN/pigment' tokenizer train --data '$D' --merges 60000 --out '$T/x.txt' 2>'$T/err' && grep -q 'from 1 to 48894' '$T/err'"
printf '#version: 0.2\na b c\n' >"$T/bad.txt"
check "bad merges" "! '$BIN/pigment' tokenizer encode --merges '$T/bad.txt' x 2>'$T/err' && grep -q 'expected two symbols' '$T/err'"
check "nothing written on error" "[ ! -e '$T/x.txt' ]"
echo "$fails failure(s)"
[ "$fails" -eq 0 ]
