#!/usr/bin/env bash
# bench/emoji_quality end to end on a handful of emoji and the tiny golden SD1 (random weights, so the figures are
# near chance; this checks the plumbing, not a model): every group writes its pictures, results.json holds the
# retrieval and Fréchet figures beside the unconditional baseline, the degraded real pictures find themselves, and
# bad input is refused with one line.
set -uo pipefail
source "$(dirname "$0")/lib/common.bash"
D="$T/emoji"
"$BIN/pigment" dataset emoji --out "$D" --only 1F34E --only 1F34F --only 1F600 --only 1F1EF-1F1F5 \
  --only 2764-FE0F --only 1F436 >/dev/null 2>&1
printf '1f34e\tred apple\n🍏\tgreen apple\n' >"$T/prompts.txt"
"$BIN/emoji_quality" "${TINY_SD1[@]}" --data "$D" --out "$T/out" --n-train 2 --n-chinese 1 --steps 1 \
  --prompts "$T/prompts.txt" >"$T/stdout" 2>"$T/stderr"
check "runs" "grep -q 'wrote $T/out/results.json' '$T/stdout'"
check "table" "grep -q '^train  *2 ' '$T/stdout' && grep -q '^chinese  *1 ' '$T/stdout' && grep -q '^custom  *2 ' '$T/stdout'"
check "pictures" "[ \$(ls '$T/out/train' | wc -l) = 2 ] && [ \$(ls '$T/out/unconditional' | wc -l) = 2 ] && [ -f '$T/out/custom/0000_1f34e.png' ]"
check "64x64" "python3 -c 'import struct,sys; b=open(sys.argv[1],\"rb\").read(); sys.exit(struct.unpack(\">II\", b[16:24]) != (64, 64))' '$T/out/custom/0001_1f34f.png'"
py() { python3 -c "import json,sys; j=json.load(open('$T/out/results.json')); $1"; }
check "figures" "py 'g=j[\"groups\"][\"train\"]; u=g[\"unconditional\"]; sys.exit(not (g[\"n\"]==2 and 0<=g[\"top5\"]<=1 and g[\"fd\"]>=0 and g[\"fd_all\"]>=0 and u[\"n\"]==2 and len(g[\"items\"])==2))'"
check "chinese prompts" "py 'sys.exit(not all(any(ord(c)>0x2e80 for c in i[\"prompt\"]) for i in j[\"groups\"][\"chinese\"][\"items\"]))'"
check "custom targets" "py 'sys.exit([i[\"target\"] for i in j[\"groups\"][\"custom\"][\"items\"]] != [\"1f34e\", \"1f34f\"])'"
check "degraded real finds itself" "py 'sys.exit(j[\"groups\"][\"real_degraded\"][\"top1\"] != 1.0)'"
check "vae oracle" "py 'sys.exit(j[\"groups\"][\"vae_oracle\"][\"n\"] != 2)'"
check "real_other at chance" "py 'sys.exit(j[\"groups\"][\"real_other\"][\"top1\"] != 0.0)'"
"$BIN/emoji_quality" --references-only --data "$D" --out "$T/ref" --n-train 3 >"$T/ref.out" 2>&1
check "references only" "grep -q '^real_degraded  *3 ' '$T/ref.out' && ! grep -q '^train ' '$T/ref.out' && [ ! -d '$T/ref/train' ]"
check "model needed" "! '$BIN/emoji_quality' --data '$D' --out '$T/x' 2>'$T/err' && grep -q 'give the model' '$T/err'"
check "no metadata" "! '$BIN/emoji_quality' ${TINY_SD1[*]} --data '$T' --out '$T/x' 2>'$T/err' && grep -q 'metadata.jsonl: cannot open' '$T/err'"
printf 'nope\tx\n' >"$T/bad.txt"
check "unknown target" "! '$BIN/emoji_quality' ${TINY_SD1[*]} --data '$D' --out '$T/x' --prompts '$T/bad.txt' 2>'$T/err' && grep -q \"'nope' is no emoji\" '$T/err'"
echo "$fails failure(s)"
[ "$fails" -eq 0 ]
