#!/usr/bin/env bash
# emoji_finetune: fine-tuning on top of pigment's own model, end to end through the public CLI, measured with
# bench/emoji_quality's retrieval (docs/emoji_quality.md). Two experiments on emoji the model never trained on:
#
#   textual inversion  5 renderings of one held-out emoji (`pigment dataset emoji --renderings 5`: the centred one
#                      and 4 slightly smaller, off-centre ones) train a new word; pictures prompted with the word are
#                      compared with pictures prompted with the emoji's name alone (same seeds, same model).
#                      --ti-emoji takes a comma-separated list: one word per emoji, each reported on its own.
#                      --ti-init name starts the word at the emoji's whole name and --ti-vectors auto gives it one
#                      vector per token of the init text, so that before training the word *is* the name.
#   LoRA               the held-out emoji of one subgroup (default: country flags) train a LoRA with their captions;
#                      pictures of those emoji prompted by name, with and without the LoRA.
#
# Each condition draws --seeds pictures per emoji (seed + i) and scores them against all 3655 real emoji: top-1 /
# top-5 retrieval of the prompted emoji. Writes OUT/summary.txt and each run's results.json.
#
#   bench/emoji_finetune.sh [--model FILE] [--data DIR] [--out DIR] [--ti-emoji HEX] [--lora-subgroup NAME]
#                           [--seeds N] [--ti-steps N] [--ti-lr X] [--ti-vectors N|auto] [--ti-init TEXT|name]
#                           [--ti-min-timestep T]
#                           [--lora-steps N]
#                           [--only ti|lora] [--threads N]
# DIR: a data set from `pigment dataset emoji` (default: out/emoji/data, written if missing).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${BIN:-$here/build/bin}"
model="$here/models/pigment-emoji.safetensors"
data="$here/out/emoji/data"
out="$here/out/emoji-finetune"
# Eight held-out emoji of different kinds (the default split), chosen before any was trained: crystal ball, cactus,
# purple heart, cloud, game die, orange square, droplet, spouting whale.
ti_emoji="1f52e,1f335,1f49c,2601-fe0f,1f3b2,1f7e7,1f4a7,1f433"
lora_subgroup="country-flag"
seeds=8
ti_steps=400
ti_lr=5e-3
ti_vectors=auto             # one vector per token of the init text
ti_init=name                # the word starts as the emoji's whole name (any other text: that text)
ti_min_timestep=0           # train the word on timesteps >= this only (the low-noise ones carry no text signal)
only=""
lora_steps=400
threads=""
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --ti-emoji) ti_emoji="$2"; shift 2 ;;
    --lora-subgroup) lora_subgroup="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --ti-steps) ti_steps="$2"; shift 2 ;;
    --lora-steps) lora_steps="$2"; shift 2 ;;
    --ti-lr) ti_lr="$2"; shift 2 ;;
    --ti-vectors) ti_vectors="$2"; shift 2 ;;
    --ti-init) ti_init="$2"; shift 2 ;;
    --ti-min-timestep) ti_min_timestep="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    *) echo "emoji_finetune: unknown option $1" >&2; exit 2 ;;
  esac
done
thr=()
[ -n "$threads" ] && thr=(--threads "$threads")
[ -f "$model" ] || { echo "emoji_finetune: $model: no such model" >&2; exit 1; }
[ -f "$data/metadata.jsonl" ] || "$BIN/pigment" dataset emoji --out "$data"
mkdir -p "$out"
start=$(date +%s)

# The emoji of each experiment, from the data set's metadata (file stem, name, split, subgroup).
meta() { python3 - "$data/metadata.jsonl" "$@" <<'EOF'
import json, sys
path, what, arg = sys.argv[1], sys.argv[2], sys.argv[3]
for line in open(path, encoding="utf-8"):
    e = json.loads(line)
    stem = e["file"].split("/")[-1][:-4]
    if what == "stem" and stem == arg:
        print(f'{e["split"]}\t{e["name"]}\t{"-".join(e["code_points"])}')
    if what == "subgroup" and e["subgroup"] == arg and e["split"] == "heldout":
        print(f'{stem}\t{e["name"]}')
EOF
}

quality() {  # quality NAME PROMPTS [emoji_quality options...]
  local name="$1" prompts="$2"; shift 2
  "$BIN/emoji_quality" -m "$model" --data "$data" --out "$out/$name" --custom-only \
    --prompts "$prompts" --steps 12 --cfg 7 --no-baseline --no-vae-oracle "$@" > "$out/$name.log" 2>&1
  python3 - "$out/$name/results.json" "$name" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
g = r["groups"]["custom"]
print(f'{sys.argv[2]:<24} {g["n"]:>4} pictures   top-1 {100*g["top1"]:5.1f}%   top-5 {100*g["top5"]:5.1f}%'
      f'   rank mean {g["mean_rank"]:7.1f} median {g["median_rank"]:6.1f}')
EOF
}

summary="$out/summary.txt"
{
  echo "model $model"
  echo "cpu $(lscpu | sed -n 's/^Model name: *//p'), load $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$summary"

# --- textual inversion on 5 renderings of one held-out emoji -----------------------------------------------------
if [ "$only" != lora ]; then
# Token count of a text under the model's own tokenizer (its merges are in the file's metadata).
token_count() {
  python3 - "$model" > "$out/merges.txt" <<'EOF'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    sys.stdout.write(json.loads(f.read(n)).get("__metadata__", {}).get("pigment.tokenizer.merges", ""))
EOF
  if [ -s "$out/merges.txt" ]; then "$BIN/pigment" tokenizer encode --merges "$out/merges.txt" "$1"
  else "$BIN/pigment" tokenizer encode "$1"; fi | sed -n 's/^count: *\([0-9]*\) tokens.*/\1/p'
}
IFS=',' read -r -a ti_list <<< "$ti_emoji"
for one in "${ti_list[@]}"; do
IFS=$'\t' read -r split name cps < <(meta stem "$one")
[ -n "${split:-}" ] || { echo "emoji_finetune: $one is not in $data" >&2; exit 1; }
[ "$split" = heldout ] || echo "emoji_finetune: warning: $one ($name) is in the training split" >&2
init="${ti_init:-${name##* }}"
[ "$init" = name ] && init="$name"
vectors="$ti_vectors"
[ "$vectors" = auto ] && vectors=$(token_count "$init")
ti="$out/ti-$one"
rm -rf "$ti"
mkdir -p "$ti/images"
"$BIN/pigment" dataset emoji --only "$cps" --renderings 5 --heldout-fraction 0 --out "$ti/rendered" > /dev/null
for f in "$ti/rendered/train/"*.png; do
  cp "$f" "$ti/images/"
  : > "$ti/images/$(basename "${f%.png}").txt"  # empty caption: the new word alone
done
word="emj-$one"
"$BIN/pigment" train -m "$model" --method textual-inversion --data "$ti/images" --resolution 64 --no-buckets \
  --token-string "$word" --init-word "$init" --num-vectors-per-token "$vectors" --learning-rate "$ti_lr" \
  --train-batch-size 5 --max-train-steps "$ti_steps" --min-snr-gamma 5 --min-timestep "$ti_min_timestep" --seed 1 \
  "${thr[@]}" \
  --output "$ti/emb/$word.safetensors" --run-dir "$ti/run" > "$ti/train.log" 2>&1
: > "$ti/by_name.txt"; : > "$ti/by_word.txt"
for ((i = 0; i < seeds; ++i)); do
  printf '%s\t%s\n' "$one" "$name" >> "$ti/by_name.txt"
  printf '%s\t%s\n' "$one" "$word" >> "$ti/by_word.txt"
done
{
  echo
  echo "textual inversion: $one ($name, $split), 5 renderings, $vectors vectors from \"$init\", lr $ti_lr, $ti_steps steps, timesteps >= $ti_min_timestep"
  awk -F, 'NR == 2 {print "  first logged step " $1 ", loss " $2} END {print "  last logged step " $1 ", loss " $2}' "$ti/run/log.csv"
  quality "ti-$one-name" "$ti/by_name.txt"
  quality "ti-$one-word" "$ti/by_word.txt" --embedding "$ti/emb/$word.safetensors"
} >> "$summary"
done
fi

# --- LoRA on the held-out emoji of one subgroup --------------------------------------------------------------------
if [ "$only" != ti ]; then
lo="$out/lora"
rm -rf "$lo"
mkdir -p "$lo/images"
meta subgroup "$lora_subgroup" > "$lo/emoji.tsv"
n=$(wc -l < "$lo/emoji.tsv")
[ "$n" -gt 0 ] || { echo "emoji_finetune: no held-out emoji in subgroup $lora_subgroup" >&2; exit 1; }
: > "$lo/prompts.txt"
while IFS=$'\t' read -r stem ename; do
  cp "$data/heldout/$stem.png" "$data/heldout/$stem.txt" "$lo/images/"
  for ((i = 0; i < seeds; ++i)); do printf '%s\t%s\n' "$stem" "$ename" >> "$lo/prompts.txt"; done
done < "$lo/emoji.tsv"
"$BIN/pigment" train -m "$model" --method lora --data "$lo/images" --resolution 64 --no-buckets --caption-per-line \
  --network-dim 16 --network-alpha 16 --learning-rate 1e-3 --train-batch-size 8 --max-train-steps "$lora_steps" \
  --min-snr-gamma 5 --caption-dropout-rate 0.1 --seed 1 "${thr[@]}" \
  --output "$lo/flags.safetensors" --run-dir "$lo/run" > "$lo/train.log" 2>&1
{
  echo
  echo "LoRA: the $n held-out emoji of subgroup $lora_subgroup, rank 16, $lora_steps steps"
  tail -n 1 "$lo/run/log.csv" | awk -F, '{print "  last logged step " $1 ", loss " $2}'
  quality lora-without "$lo/prompts.txt"
  quality lora-with "$lo/prompts.txt" --lora "$lo/flags.safetensors"
} >> "$summary"
fi
echo "total $(( $(date +%s) - start )) s" >> "$summary"
cat "$summary"
