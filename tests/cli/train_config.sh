#!/usr/bin/env bash
# pigment train --config FILE.toml: kohya-style keys (underscores, in [sections]) set the same options as the flags,
# a flag on the command line wins over the file, and an unknown key or a malformed file is an error before training.
set -u
source "$(dirname "$0")/lib/common.bash"
P=$BIN/pigment
mkdir -p "$T/data"
"$P" generate "${TINY_SD1[@]}" -q -W 64 -H 64 --steps 2 -s 1 -p "a" -o "$T/data/one.png"
echo "a red thing" > "$T/data/one.txt"
cat > "$T/c.toml" <<TOML
# as kohya's train_network.py config files group them
[training_arguments]
learning_rate = 0.00123
max_train_steps = 2
train_batch_size = 1
seed = 4
[dataset_arguments]
resolution = 64
no_buckets = true
TOML
"$P" train "${TINY_SD1[@]}" --data "$T/data" --threads 1 --config "$T/c.toml" --output "$T/a.safetensors" \
  > "$T/a.out" 2>&1
check "a kohya-style config trains" 'grep -q "trained 2 steps" "$T/a.out" && [ -s "$T/a.safetensors" ]'
check "its learning rate is used" 'grep -q "lr 0.00123" "$T/a.out"'
"$P" train "${TINY_SD1[@]}" --data "$T/data" --threads 1 --config "$T/c.toml" --max-train-steps 1 \
  --output "$T/b.safetensors" > "$T/b.out" 2>&1
check "the command line wins over the file" 'grep -q "trained 1 steps" "$T/b.out"'
# kohya's optimizer keys: optimizer_type and optimizer_args (a list of key=value), the type kept in the checkpoint.
cat > "$T/sgd.toml" <<TOML
[optimizer_arguments]
optimizer_type = "SGD"
optimizer_args = ["momentum=0.9", "weight_decay=0.01"]
learning_rate = 0.5
[training_arguments]
max_train_steps = 2
seed = 4
[dataset_arguments]
resolution = 64
no_buckets = true
TOML
"$P" train "${TINY_SD1[@]}" --data "$T/data" --threads 1 --config "$T/sgd.toml" --output "$T/s.safetensors" \
  > "$T/s.out" 2>&1
check "optimizer_type and optimizer_args from a config file" \
  'grep -q "trained 2 steps" "$T/s.out" && grep -aq "torch.optim.sgd.SGD(momentum=0.9,weight_decay=0.01)" "$T/s.safetensors" &&
   grep -q "\"optimizer\": \"SGD\"" "$T/s.safetensors.run/checkpoint/state.json" &&
   grep -aq "momentum_buffer" "$T/s.safetensors.run/checkpoint/optimizer.safetensors"'
printf 'optimizer_type = "SGD"\noptimizer_args = ["momentum=0.9", "nesterov_please=1"]\n' > "$T/badopt.toml"
"$P" train "${TINY_SD1[@]}" --data "$T/data" --config "$T/badopt.toml" --output "$T/o.safetensors" > "$T/o.out" 2>&1
rc=$?
check "an unknown optimizer argument in a config file is named" \
  '[ $rc -ne 0 ] && [ "$(wc -l < "$T/o.out")" -eq 1 ] && grep -q "unknown key .nesterov_please." "$T/o.out" && [ ! -e "$T/o.safetensors" ]'
printf 'learning_rate = 0.001\nnot_an_option = 3\n' > "$T/bad.toml"
"$P" train "${TINY_SD1[@]}" --data "$T/data" --config "$T/bad.toml" --output "$T/c.safetensors" > "$T/c.out" 2>&1
rc=$?
check "an unknown key is an error before training" '[ $rc -ne 0 ] && grep -q "not-an-option\|not_an_option" "$T/c.out" && [ ! -e "$T/c.safetensors" ]'
"$P" train "${TINY_SD1[@]}" --data "$T/data" --config "$T/missing.toml" --output "$T/d.safetensors" > "$T/d.out" 2>&1
rc=$?
check "a missing config file is an error" '[ $rc -ne 0 ] && [ ! -e "$T/d.safetensors" ]'
[ "$fails" -eq 0 ]
