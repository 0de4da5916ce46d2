#!/usr/bin/env bash
# Issue 18's per-CPU-kind table: SD1.5 at 256² and 512² and SDXL at 1024² (full-size random f16 checkpoints from
# `pigment init`), each in exact, fast (what `--precision auto` picks where the CPU has bf16) and int8, through
# bench/sd.sh (bench/sd_stages_bench: s/step, text encoder, VAE decode, peak RSS, GFLOP/s and % of the fp32 peak
# measured in the same process). Run it on a quiet machine; output in out/bench/cpu_table-<cpu>.md.
#   bench/cpu_table.sh [STEPS=4]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-4}
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
out="out/bench/cpu_table-$(tr -c 'A-Za-z0-9\n' - <<<"$cpu").md"
mkdir -p out/bench
{
  echo "# per-CPU table, $(date -u '+%Y-%m-%d %H:%M UTC'), $cpu, $(nproc) CPUs, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  grep -o -w -E 'avx512f|avx512_bf16|avx512_vnni|avx512_fp16|amx_bf16|amx_int8' /proc/cpuinfo | sort -u | tr '\n' ' '; echo
  row() {  # FAMILY SIZE STEPS PRECISION
    echo; echo "## $1 $2² $4"
    local mode=default; [ "$4" = fast ] && mode=fast
    if [ "$4" = int8 ]; then PIGMENT_PRECISION=int8 bench/sd.sh "$1" "$2" "$3" 1 default; else bench/sd.sh "$1" "$2" "$3" 1 "$mode"; fi
    echo "(load after: $(cut -d' ' -f1-3 /proc/loadavg))"
  }
  for p in exact fast int8; do row sd15 256 "$steps" $p; done
  for p in exact fast int8; do row sd15 512 "$steps" $p; done
  for p in exact fast int8; do row sdxl 1024 1 $p; done
} 2>&1 | tee "$out"
