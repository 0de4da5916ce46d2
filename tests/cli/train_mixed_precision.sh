#!/usr/bin/env bash
# pigment train --mixed-precision bf16 on the tiny golden SD1 model: a run killed with SIGKILL and resumed gives the
# losses and bytes of an uninterrupted one; without a fast bf16 path (PIGMENT_MAX_ISA=avx512_vnni) it prints one
# notice and computes the fp32 run's losses; fp16 and unknown values are one-line errors; the key works in --config
# and --help lists it.
set -u
source "$(dirname "$0")/lib/common.bash"
P=$BIN/pigment
mkdir -p "$T/data"
"$P" generate "${TINY_SD1[@]}" -q -W 64 -H 64 --steps 2 -s 1 -p "a" -o "$T/data/one.png"
"$P" generate "${TINY_SD1[@]}" -q -W 64 -H 64 --steps 2 -s 2 -p "b" -o "$T/data/two.png"
echo "a red thing" > "$T/data/one.txt"
ARGS=("${TINY_SD1[@]}" --data "$T/data" --resolution 64 --no-buckets --threads 1 --seed 3 --conv-dim 4)
train() { "$P" train "${ARGS[@]}" "$@"; }
losses() { cut -d, -f1,2 "$1"; }

train --mixed-precision bf16 --output "$T/full.safetensors" --max-train-steps 20 > "$T/full.out" 2>&1
check "a bf16 LoRA run writes its file" '[ -s "$T/full.safetensors" ] && grep -q "trained 20 steps" "$T/full.out"'
train --output "$T/fp32.safetensors" --max-train-steps 20 > /dev/null 2>&1
check "where the CPU has a fast bf16 path, its losses differ from fp32's (the bf16 kernels ran)" \
  '! grep -q "avx512_bf16\|amx" /proc/cpuinfo ||
   [ "$(losses "$T/full.safetensors.run/log.csv")" != "$(losses "$T/fp32.safetensors.run/log.csv")" ]'

# SIGKILL in the middle, resume: the same losses and bytes as the uninterrupted bf16 run.
"$P" train "${ARGS[@]}" --mixed-precision bf16 --output "$T/k.safetensors" --max-train-steps 20 \
  --save-every-n-steps 3 > /dev/null 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  [ -f "$T/k.safetensors.run/log.csv" ] && [ "$(wc -l < "$T/k.safetensors.run/log.csv")" -ge 9 ] && break
  sleep 0.05
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
check "the killed bf16 run left a checkpoint and no output" \
  '[ -d "$T/k.safetensors.run/checkpoint" ] && [ ! -e "$T/k.safetensors" ]'
train --mixed-precision no --output "$T/k.safetensors" --max-train-steps 20 --save-every-n-steps 3 --resume \
  > "$T/mismatch.out" 2>&1
rc=$?
check "resuming a bf16 checkpoint in fp32: exit 1, one error line naming both" \
  '[ $rc -eq 1 ] && [ "$(grep -c "^error:" "$T/mismatch.out")" -eq 1 ] &&
   grep -q -- "^error: .*--mixed-precision bf16, this run uses no" "$T/mismatch.out"'
train --mixed-precision bf16 --output "$T/k.safetensors" --max-train-steps 20 --save-every-n-steps 3 --resume \
  > "$T/k.out" 2>&1
check "bf16 resume after SIGKILL: the uninterrupted run's losses" \
  'grep -q "resumed from" "$T/k.out" && [ "$(losses "$T/k.safetensors.run/log.csv")" = "$(losses "$T/full.safetensors.run/log.csv")" ]'
check "bf16 resume after SIGKILL: the same bytes" 'cmp -s "$T/k.safetensors" "$T/full.safetensors"'

# No fast path: one notice, the fp32 losses.
PIGMENT_MAX_ISA=avx512_vnni "$P" train "${ARGS[@]}" --mixed-precision bf16 --output "$T/c.safetensors" \
  --max-train-steps 4 > /dev/null 2> "$T/c.err"
PIGMENT_MAX_ISA=avx512_vnni "$P" train "${ARGS[@]}" --output "$T/c32.safetensors" --max-train-steps 4 > /dev/null 2>&1
check "capped to avx512_vnni: one notice that it runs in fp32" \
  '[ "$(grep -c "no fast bf16 path.*runs in fp32" "$T/c.err")" -eq 1 ]'
check "capped to avx512_vnni: the fp32 run's losses" \
  '[ "$(losses "$T/c.safetensors.run/log.csv")" = "$(losses "$T/c32.safetensors.run/log.csv")" ]'

# --config and --help.
printf '[training_arguments]\nmixed_precision = "bf16"\nmax_train_steps = 20\n' > "$T/m.toml"
train --config "$T/m.toml" --output "$T/cfg.safetensors" > /dev/null 2>&1
check "mixed_precision in a --config file: the bf16 run's losses" \
  '[ "$(losses "$T/cfg.safetensors.run/log.csv")" = "$(losses "$T/full.safetensors.run/log.csv")" ]'
check "train --help lists --mixed-precision" '"$P" train --help | grep -q -- "--mixed-precision"'

# Bad values: one line on stderr, exit 1.
for v in fp16 fp8; do
  train --mixed-precision $v --output "$T/x.safetensors" > /dev/null 2> "$T/err.txt"; rc=$?
  check "--mixed-precision $v: exit 1, one line" \
    '[ $rc -eq 1 ] && [ "$(wc -l < "$T/err.txt")" -eq 1 ] && grep -q "^error: .*bf16" "$T/err.txt"'
done
check "no output file from the failed runs" '[ ! -e "$T/x.safetensors" ]'

echo "$fails failure(s)"
[ $fails -eq 0 ]
