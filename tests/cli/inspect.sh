#!/usr/bin/env bash
# pigment inspect reads every weights file and model folder of the golden data, and its tensor count and total
# bytes agree with an independent reading (Python standard library only: safetensors headers, and PyTorch zips
# through pickle with stub classes).
set -euo pipefail
source "$(dirname "$0")/lib/requires.bash"
requires python3
BIN="${PIGMENT_BIN_DIR:?}/pigment"
GOLDEN="${PIGMENT_SHARED_DIR:?}/golden"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/expect.py" <<'PY'
import json, os, pickle, struct, sys, zipfile

SIZES = {"Float": 4, "Half": 2, "BFloat16": 2, "Double": 8, "Long": 8, "Int": 4, "Short": 2, "Char": 1,
         "Byte": 1, "Bool": 1}

def safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return len(header), sum(e["data_offsets"][1] - e["data_offsets"][0] for e in header.values())

class T:
    def __init__(self, nbytes): self.nbytes = nbytes

def rebuild(storage, offset, size, stride, *rest):
    n = 1
    for s in size: n *= s
    return T(n * storage[0])

class Stub:
    def __init__(self, *a, **k): pass
    def __setstate__(self, s): pass

class Reader(pickle.Unpickler):
    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2": return rebuild
        if module == "torch._utils" and name.startswith("_rebuild_parameter"): return lambda t, *r: t
        if module == "torch" and name.endswith("Storage"): return SIZES[name[:-len("Storage")]]
        if module == "collections" and name == "OrderedDict":
            import collections
            return collections.OrderedDict
        if module == "torch" and name == "Size": return tuple
        raise pickle.UnpicklingError("refused %s.%s" % (module, name))
    def persistent_load(self, pid):
        return (pid[1], pid[2])

def walk(v, out):
    if isinstance(v, T): out.append(v.nbytes)
    elif isinstance(v, dict):
        for x in v.values(): walk(x, out)
    elif isinstance(v, (list, tuple)):
        for x in v: walk(x, out)

def torch_zip(path):
    z = zipfile.ZipFile(path)
    name = next(n for n in z.namelist() if n.endswith("/data.pkl") and n.count("/") == 1)
    obj = Reader(z.open(name)).load()
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict): obj = obj["state_dict"]
    out = []
    walk(obj, out)
    return len(out), sum(out)

def folder(path):
    for n in ("diffusion_pytorch_model.safetensors", "model.safetensors"):
        if os.path.exists(os.path.join(path, n)): return safetensors(os.path.join(path, n))
    raise SystemExit("no weights in " + path)

for p in sys.argv[1:]:
    count, nbytes = folder(p) if os.path.isdir(p) else torch_zip(p) if p.endswith(".pt") else safetensors(p)
    print(count, nbytes)
PY

inputs=()
while IFS= read -r -d '' f; do inputs+=("$f"); done \
  < <(find "$GOLDEN" \( -name '*.safetensors' -o -name '*.pt' -o \( -type d -path '*/models/*' \) \) -print0 | sort -z)
mapfile -t wants < <(python3 "$tmp/expect.py" "${inputs[@]}")
[ ${#wants[@]} -eq ${#inputs[@]} ] || { echo "FAIL: the reference reader failed" >&2; exit 1; }
checked=0
for i in "${!inputs[@]}"; do
  f="${inputs[$i]}"
  out=$("$BIN" inspect "$f")
  got="$(sed -n 's/^tensors: //p' <<<"$out") $(sed -n 's/^bytes: //p' <<<"$out")"
  if [ "$got" != "${wants[$i]}" ]; then
    echo "FAIL $f: inspect says '$got' (tensors bytes), expected '${wants[$i]}'" >&2
    exit 1
  fi
  checked=$((checked + 1))
done

[ "$checked" -gt 10 ] || { echo "FAIL: only $checked inputs found under $GOLDEN" >&2; exit 1; }
# Folders and .pt files carry their format; the single-component folder exposes its config.
"$BIN" inspect "$GOLDEN/models/unet_sd1" | grep -qx "format: diffusers"
"$BIN" inspect "$GOLDEN/models/unet_sd1" | grep -qx "config .: [0-9]* bytes"
"$BIN" inspect "$GOLDEN/ti/embeddings/my-concept.pt" | grep -qx "format: pytorch"
"$BIN" inspect "$GOLDEN/hypernetwork/a1111/tiny_hypernet.pt" | grep -qx "metadata layer_structure: \[1, 2, 1\]"
echo "inspect: $checked inputs agree"
