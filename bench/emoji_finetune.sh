#!/usr/bin/env bash
# emoji_finetune: fine-tuning on top of pigment's own model, end to end through the public CLI, measured with
# bench/emoji_quality's retrieval (docs/emoji_quality.md). Two experiments on emoji the model never trained on:
#
#   textual inversion  5 renderings of one held-out emoji (`pigment dataset emoji --renderings 5`: the centred one
#                      and 4 slightly smaller, off-centre ones) train a new word; pictures prompted with the word are
#                      compared with pictures prompted with the emoji's name alone (same seeds, same model).
#   LoRA               the held-out emoji of one subgroup (default: country flags) train a LoRA with their captions;
#                      pictures of those emoji prompted by name, with and without the LoRA.
#
# Each condition draws --seeds pictures per emoji (seed + i) and scores them against all 3655 real emoji: top-1 /
# top-5 retrieval of the prompted emoji. Writes OUT/summary.txt and each run's results.json.
#
#   bench/emoji_finetune.sh [--model FILE] [--data DIR] [--out DIR] [--ti-emoji HEX] [--lora-subgroup NAME]
#                           [--seeds N] [--ti-steps N] [--ti-lr X] [--ti-vectors N] [--ti-init TEXT]
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
ti_emoji="1f52e"            # crystal ball (held out with the default split; its name alone draws something else)
lora_subgroup="country-flag"
seeds=8
ti_steps=400
ti_lr=5e-3
ti_vectors=2
ti_init=""                  # default: the last word of the emoji's name ("ball")
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
print(f'{sys.argv[2]:<24} {g["n"]:>4} pictures   top-1 {100*g["top1"]:5.1f}%   top-5 {100*g["top5"]:5.1f}%')
EOF
}

summary="$out/summary.txt"
{
  echo "model $model"
  echo "cpu $(lscpu | sed -n 's/^Model name: *//p'), load $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$summary"

# --- textual inversion on 5 renderings of one held-out emoji -----------------------------------------------------
if [ "$only" != lora ]; then
IFS=$'\t' read -r split name cps < <(meta stem "$ti_emoji")
[ -n "${split:-}" ] || { echo "emoji_finetune: $ti_emoji is not in $data" >&2; exit 1; }
[ "$split" = heldout ] || echo "emoji_finetune: warning: $ti_emoji ($name) is in the training split" >&2
ti="$out/ti"
rm -rf "$ti"
mkdir -p "$ti/images"
"$BIN/pigment" dataset emoji --only "$cps" --renderings 5 --heldout-fraction 0 --out "$ti/rendered" > /dev/null
for f in "$ti/rendered/train/"*.png; do
  cp "$f" "$ti/images/"
  : > "$ti/images/$(basename "${f%.png}").txt"  # empty caption: the new word alone
done
word="emj-$ti_emoji"
"$BIN/pigment" train -m "$model" --method textual-inversion --data "$ti/images" --resolution 64 --no-buckets \
  --token-string "$word" --init-word "${ti_init:-${name##* }}" --num-vectors-per-token "$ti_vectors" --learning-rate "$ti_lr" \
  --train-batch-size 5 --max-train-steps "$ti_steps" --min-snr-gamma 5 --min-timestep "$ti_min_timestep" --seed 1 \
  "${thr[@]}" \
  --output "$ti/emb/$word.safetensors" --run-dir "$ti/run" > "$ti/train.log" 2>&1
: > "$ti/by_name.txt"; : > "$ti/by_word.txt"
for ((i = 0; i < seeds; ++i)); do
  printf '%s\t%s\n' "$ti_emoji" "$name" >> "$ti/by_name.txt"
  printf '%s\t%s\n' "$ti_emoji" "$word" >> "$ti/by_word.txt"
done
{
  echo
  echo "textual inversion: $ti_emoji ($name, $split), 5 renderings, $ti_vectors vectors from "${ti_init:-${name##* }}", lr $ti_lr, $ti_steps steps, timesteps >= $ti_min_timestep"
  tail -n 1 "$ti/run/log.csv" | awk -F, '{print "  last logged step " $1 ", loss " $2}'
  quality ti-name "$ti/by_name.txt"
  quality ti-word "$ti/by_word.txt" --embedding "$ti/emb/$word.safetensors"
} >> "$summary"
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
