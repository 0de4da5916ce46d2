#!/usr/bin/env bash
# pigment dataset emoji: a handful of emoji (the red apple, a ZWJ family, a flag, a skin tone, a keycap) written
# through the command line; the apple's PNG bytes are the same as the unit test pins (src/training/
# emoji_dataset_test.cc), the captions file starts with the name, and unknown kinds and emoji are refused.
set -uo pipefail
source "$(dirname "$0")/lib/common.bash"
D="$T/emoji"
"$BIN/pigment" dataset emoji --out "$D" --only 1F34E --only "1F468 200D 1F469 200D 1F466" --only 1F1EF-1F1F5 \
  --only 1f469-1f3fd-200d-1f4bb --only 0023-FE0F-20E3 >"$T/out" 2>&1
check "runs" "grep -q 'wrote $D: 5 emoji at 64x64 (5 train, 0 held out)' '$T/out'"
check "nothing skipped" "grep -q 'skipped 0 of 5' '$T/out'"
check "apple bytes" "[ \"\$(sha256sum '$D/train/1f34e.png' | cut -d' ' -f1)\" = e25c32737f16c3fb389d936f9b53d8e8438d23fba07fb7d05d724744144fbb29 ]"
check "apple caption" "[ \"\$(head -1 '$D/train/1f34e.txt')\" = 'red apple' ] && grep -qx '红苹果' '$D/train/1f34e.txt'"
check "keycap caption" "[ \"\$(head -1 '$D/train/0023-fe0f-20e3.txt')\" = 'keycap: #' ]"
check "metadata" "[ \$(wc -l <'$D/metadata.jsonl') = 5 ] && grep -q '\"split\":\"train\"' '$D/metadata.jsonl'"
check "unknown kind" "! '$BIN/pigment' dataset faces --out '$T/x' 2>'$T/err' && grep -q 'unknown data set' '$T/err'"
check "not an emoji" "! '$BIN/pigment' dataset emoji --out '$T/y' --only 1F34E-1F34E 2>'$T/err' && grep -q '1F34E 1F34E' '$T/err'"
echo "$fails failure(s)"
[ "$fails" -eq 0 ]
