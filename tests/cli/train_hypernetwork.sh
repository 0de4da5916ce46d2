#!/usr/bin/env bash
# pigment train --method hypernetwork on the tiny golden SD1 model through the CLI: A1111's .pt and .optim are
# written, `pigment generate` uses the result as <hypernet:NAME:1> from --hypernetwork-dir, a run killed with
# SIGKILL and resumed gives the losses and bytes of an uninterrupted one, sample images and the log are written,
# Python's pickle reads the .pt as torch.load would, `--help` documents the method, bad options are one-line errors.
# The loss fall and the move toward the data are measured in src/training/hypernetwork_test.cc.
set -u
source "$(dirname "$0")/lib/common.bash"
requires python3
P=$BIN/pigment
mkdir -p "$T/data"
"$P" generate "${TINY_SD1[@]}" -q -W 64 -H 64 --steps 2 -s 1 -p "a" -o "$T/data/one.png"
echo "a red thing" > "$T/data/one.txt"
ARGS=("${TINY_SD1[@]}" --method hypernetwork --data "$T/data" --resolution 64 --no-buckets --threads 1 --seed 3
      --activation-func relu --add-layer-norm --learning-rate 1e-3)
train() { "$P" train "${ARGS[@]}" "$@"; }
losses() { cut -d, -f1,2 "$1"; }

check "train --help documents the method and A1111's options" \
  '"$P" train --help | grep -q "hypernetwork" && "$P" train --help | grep -q -- "--layer-structure" &&
   "$P" train --help | grep -q -- "--weight-init" && "$P" train --help | grep -q -- "--dropout-structure"'

train --output "$T/hn/full.pt" --max-train-steps 12 --sample-every-n-steps 12 --sample-prompt "a red thing" \
  > "$T/full.out" 2>&1
check "a 12-step run writes the .pt, the .optim, log.csv, a sample and the loss curve" \
  '[ -s "$T/hn/full.pt" ] && [ -s "$T/hn/full.pt.optim" ] && [ "$(wc -l < "$T/hn/full.pt.run/log.csv")" -eq 13 ] &&
   [ -s "$T/hn/full.pt.run/samples/step-000012-0.png" ] && [ -s "$T/hn/full.pt.run/loss.png" ]'

# Python reads both files with only the globals torch.load resolves for them (no torch here: a stand-in rebuilds
# tensors as shapes), and finds A1111's layout.
cat > "$T/read.py" <<'PY'
import collections, pickle, sys, zipfile
class T:
    def __init__(self, shape): self.shape = tuple(shape)
def rebuild(storage, offset, size, stride, requires_grad, hooks): return T(size)
class U(pickle.Unpickler):
    def find_class(self, m, n):
        if (m, n) == ("collections", "OrderedDict"): return collections.OrderedDict
        if (m, n) == ("torch._utils", "_rebuild_tensor_v2"): return rebuild
        if m == "torch" and n.endswith("Storage"): return n
        raise pickle.UnpicklingError(f"{m}.{n}")
    def persistent_load(self, pid): return pid
def load(path):
    z = zipfile.ZipFile(path)
    return U(z.open([n for n in z.namelist() if n.endswith("/data.pkl")][0])).load()
hn, optim = load(sys.argv[1]), load(sys.argv[1] + ".optim")
widths = sorted(k for k in hn if isinstance(k, int))
k_sd, v_sd = hn[32]
print("widths", widths, "name", hn["name"], "step", hn["step"], "act", hn["activation_func"],
      "ln", hn["is_layer_norm"], "ls", hn["layer_structure"], "keys", list(k_sd)[:4], "w0", k_sd["linear.0.weight"].shape,
      "optim", optim["optimizer_name"], len(optim["optimizer_state_dict"]["state"]),
      len(optim["optimizer_state_dict"]["param_groups"][0]["params"]))
PY
python3 "$T/read.py" "$T/hn/full.pt" > "$T/py.out" 2>&1
check "Python's pickle reads the .pt and .optim in A1111's layout" \
  'grep -q "widths \[32\] name full step 12 act relu ln True ls \[1, 2, 1\] keys \[.linear.0.weight., .linear.0.bias., .linear.2.weight., .linear.2.bias.\] w0 (64, 32) optim AdamW 16 16" "$T/py.out"'
grep -q "optim AdamW" "$T/py.out" || cat "$T/py.out"

"$P" generate "${TINY_SD1[@]}" -q -W 64 -H 64 --steps 3 -s 5 -p "a red thing" -o "$T/base.png"
"$P" generate "${TINY_SD1[@]}" -q -W 64 -H 64 --steps 3 -s 5 -p "a red thing <hypernet:full:1>" \
  --hypernetwork-dir "$T/hn" -o "$T/hn.png" 2> "$T/gen.err"
check "pigment generate loads <hypernet:full:1> and it changes the pixels" \
  '[ -s "$T/hn.png" ] && [ "$(idat "$T/hn.png")" != "$(idat "$T/base.png")" ]'

# SIGKILL in the middle, resume: the same losses and the same file as the uninterrupted run.
"$P" train "${ARGS[@]}" --output "$T/hn/k.pt" --max-train-steps 12 --save-every-n-steps 3 > /dev/null 2>&1 &
pid=$!
for _ in $(seq 1 1200); do
  [ -f "$T/hn/k.pt.run/log.csv" ] && [ "$(wc -l < "$T/hn/k.pt.run/log.csv")" -ge 8 ] && break
  sleep 0.05
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
check "the killed run left a checkpoint and no output" '[ -d "$T/hn/k.pt.run/checkpoint" ] && [ ! -e "$T/hn/k.pt" ]'
train --output "$T/hn/k.pt" --max-train-steps 12 --save-every-n-steps 3 --resume > "$T/k.out" 2>&1
check "resumed losses equal the uninterrupted run's" \
  'grep -q "resumed from" "$T/k.out" && [ "$(losses "$T/hn/k.pt.run/log.csv")" = "$(losses "$T/hn/full.pt.run/log.csv")" ]'
check "the resumed .pt holds the same tensors" \
  'python3 -c "import zipfile,sys; a,b=(zipfile.ZipFile(p) for p in sys.argv[1:]); \
na=sorted(n.split(\"/\",1)[1] for n in a.namelist() if \"/data/\" in n); \
assert na==sorted(n.split(\"/\",1)[1] for n in b.namelist() if \"/data/\" in n); \
assert all(a.read(\"full/\"+n)==b.read(\"k/\"+n) for n in na)" "$T/hn/full.pt" "$T/hn/k.pt"'

err() {
  local what=$1; shift
  train "$@" > "$T/err.out" 2> "$T/err.txt"; local rc=$?
  check "$what: exit 1, one line" '[ $rc -eq 1 ] && [ "$(wc -l < "$T/err.txt")" -eq 1 ] && grep -q "^error: " "$T/err.txt"'
}
err "unknown activation" --output "$T/hn/x.pt" --activation-func prelu
err "bad layer structure" --output "$T/hn/x.pt" --layer-structure "1, 2"
err "width the model does not have" --output "$T/hn/x.pt" --hypernetwork-sizes "768"
err "unknown weight init" --output "$T/hn/x.pt" --weight-init Zeros
check "no output file from the failed runs" '[ ! -e "$T/hn/x.pt" ]'

echo "$fails failure(s)"
[ $fails -eq 0 ]
