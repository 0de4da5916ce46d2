# Shared set-up of the command-line tests (sourced, not run): where the binaries and the golden data are, a temporary
# folder removed at exit, `check NAME CONDITION` which prints ok/FAIL and counts failures, and the flags that load the
# tiny golden SD1 model.
source "$(dirname "${BASH_SOURCE[0]}")/requires.bash"
BIN=${PIGMENT_BIN_DIR:-build/bin}
SHARED=${PIGMENT_SHARED_DIR:-../shared}
G=$SHARED/golden
M=$G/models
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails+1)); fi; }
TINY_SD1=(-m "$M/sd1_single_file.safetensors" --tokenizer "$SHARED/clip-tokenizer" --model-config unet=$M/unet_sd1
          --model-config vae=$M/vae --model-config text_encoder=$M/clip_sd1)
# SHA-256 of a PNG's image data (its IDAT chunks), ignoring its text chunks: same pixels, same digest. Needs python3
# (a test that uses it says `requires python3`).
idat() { python3 -c 'import struct,sys
b=open(sys.argv[1],"rb").read(); i=8; out=b""
while i < len(b):
    n,t=struct.unpack(">I4s",b[i:i+8])
    if t==b"IDAT": out+=b[i+8:i+8+n]
    i+=12+n
sys.stdout.buffer.write(out)' "$1" | sha256sum; }
# CRC-32 (PNG's) of the bytes of file $1, as 8 hex digits; plain bash, no other tool.
crc32() {
  local crc=$((0xFFFFFFFF)) b k
  for b in $(od -An -v -tu1 "$1"); do
    crc=$((crc ^ b))
    for k in 0 1 2 3 4 5 6 7; do crc=$(((crc >> 1) ^ (0xEDB88320 & -(crc & 1)))); done
  done
  printf '%08x' $((crc ^ 0xFFFFFFFF))
}
# png_with_parameters SRC DST TEXT: SRC (a PNG without text chunks) with a tEXt "parameters" chunk holding TEXT
# (ASCII) right after its IHDR, as A1111 or another tool could have written it.
png_with_parameters() {
  local src=$1 dst=$2 body="$T/.text-chunk" n
  { printf 'tEXtparameters\0'; printf '%s' "$3"; } >"$body"
  n=$(($(stat -c %s "$body") - 4))
  { head -c 33 "$src"
    printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((n >> 24 & 255)) $((n >> 16 & 255)) $((n >> 8 & 255)) $((n & 255)))"
    cat "$body"
    printf "$(crc32 "$body" | sed 's/../\\x&/g')"
    tail -c +34 "$src"; } >"$dst"
}
