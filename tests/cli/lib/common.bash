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
