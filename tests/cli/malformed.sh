#!/usr/bin/env bash
# Every malformed or hostile input makes `pigment inspect` print exactly one line "error: <input>: <what>" on
# stderr, nothing on stdout, and exit with status 1: no crash, no hang, no runaway memory.
set -uo pipefail
source "$(dirname "$0")/lib/requires.bash"
requires python3
BIN="${PIGMENT_BIN_DIR:?}/pigment"
DATA="${PIGMENT_SOURCE_DIR:?}/tests/data/io/malformed"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# What the message must mention, for the inputs where it matters.
declare -A expect=(
  [os_system.pt]="refusing pickle global 'os.system'"
  [nested_eval.ckpt]="refusing pickle global 'builtins.eval'"
  [subprocess.pt]="refusing pickle global 'subprocess.Popen'"
  [no_data_pkl.pt]="no <folder>/data.pkl"
  [short_storage.pt]="is short"
  [missing_storage.pt]="has no record"
  [view_past_storage.pt]="runs past its storage"
  [absurd_size.pt]="is short"
  [deep_nesting.pt]="nested deeper than"
  [garbage_opcode.pt]="unsupported pickle opcode"
  [legacy.pt]="legacy"
  [huge_header.safetensors]="exceeds"
)

mkdir -p "$tmp/empty_dir" "$tmp/no_weights/unet" "$tmp/bad_index"
echo '{}' >"$tmp/no_weights/unet/config.json"
echo '{"unet": ["diffusers", "UNet2DConditionModel"]}' >"$tmp/no_weights/model_index.json"
echo '{"unet": ' >"$tmp/bad_index/model_index.json"
# Swapping data.pkl for random bytes inside an otherwise valid archive.
python3 - "$tmp/random_pickle.pt" <<'PY'
import random, sys, zipfile
random.seed(3)
with zipfile.ZipFile(sys.argv[1], "w") as z:
    z.writestr("archive/data.pkl", bytes([0x80, 2]) + bytes(random.randrange(256) for _ in range(500)))
PY

fails=0
check() {
  local input="$1" want="${2:-}"
  timeout 30 "$BIN" inspect "$input" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  local lines
  lines=$(wc -l <"$tmp/err")
  local msg
  msg=$(cat "$tmp/err")
  # The message names the input (or, inside a folder, the file or component it is about).
  if [ $rc -ne 1 ] || [ -s "$tmp/out" ] || [ "$lines" -ne 1 ] || [[ "$msg" != "error: $input"[:/]* ]] ||
     { [ -n "$want" ] && ! grep -qF -- "$want" "$tmp/err"; }; then
    echo "FAIL $input (exit $rc, $lines stderr lines, expected '$want'):" >&2
    head -c 600 "$tmp/err" >&2
    head -c 200 "$tmp/out" >&2
    fails=$((fails + 1))
  fi
}

n=0
for f in "$DATA"/*; do
  check "$f" "${expect[$(basename "$f")]:-}"
  n=$((n + 1))
done
check "$tmp/empty_dir" "not a diffusers folder"
check "$tmp/no_weights" "no weights"
check "$tmp/bad_index" "invalid JSON"
check "$tmp/random_pickle.pt"
check "$tmp/does_not_exist.ckpt" "no such file"
[ "$n" -ge 15 ] || { echo "FAIL: only $n malformed inputs in $DATA" >&2; exit 1; }
[ $fails -eq 0 ] || exit 1
echo "malformed: $((n + 5)) inputs refused cleanly"
