# Shared set-up of the command-line tests (sourced, not run): where the binaries and the golden data are, a temporary
# folder removed at exit, `check NAME CONDITION` which prints ok/FAIL and counts failures, and the flags that load the
# tiny golden SD1 model.
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
# SHA-256 of a PNG's image data (its IDAT chunks), ignoring its text chunks: same pixels, same digest.
idat() { python3 -c 'import struct,sys
b=open(sys.argv[1],"rb").read(); i=8; out=b""
while i < len(b):
    n,t=struct.unpack(">I4s",b[i:i+8])
    if t==b"IDAT": out+=b[i+8:i+8+n]
    i+=12+n
sys.stdout.buffer.write(out)' "$1" | sha256sum; }
