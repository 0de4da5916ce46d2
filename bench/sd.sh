#!/usr/bin/env bash
# Stage benchmark of full-size random-weight models written by `pigment init` (no download needed):
#   bench/sd.sh [sd15|sdxl] [SIZE] [STEPS] [RUNS] [default|low-memory|fast] [--reference]
# (OMP_NUM_THREADS=1 for the one-thread figures; --reference adds the speed-up over the scalar reference path, which
# takes minutes at 256²).
# Prints the table of bench/sd_stages_bench.cc. Models are kept in out/bench/ between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
family=${1:-sd15}; size=${2:-512}; steps=${3:-4}; runs=${4:-3}; mode=${5:-default}
[ "$family" = sdxl ] && size=${2:-1024} && steps=${3:-1} && runs=${4:-1}
cmake --build build --target pigment sd_stages_bench >/dev/null
mkdir -p out/bench
model=out/bench/random-$family-f16.safetensors
[ -f "$model" ] || build/bin/pigment init --family "$family" --dtype f16 --out "$model"
build/bin/sd_stages_bench "$model" "${PIGMENT_TOKENIZER:-../shared/clip-tokenizer}" "$size" "$steps" "$runs" "$mode" "${@:6}"
