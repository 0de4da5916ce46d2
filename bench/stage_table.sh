#!/usr/bin/env bash
# The whole-model stage table of docs/performance.md (issue 7), every row from bench/sd.sh on random-weight full-size
# f16 checkpoints: SD1.5 at 512² in the default, low-memory and fast (bf16 on AMX) modes, at 256² in the default and
# low-memory modes, on one thread (the 1 → 2 thread scaling) and against the scalar reference path, and SDXL at
# 1024² (one step) in both modes. About 20 minutes on a quiet 2-core machine; run nothing else meanwhile.
# Output: out/bench/stage_table.md
set -euo pipefail
cd "$(dirname "$0")/.."
out=out/bench/stage_table.md
mkdir -p out/bench
{
  echo "# stage table, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  run() { echo; echo "## $*"; bench/sd.sh "$@"; echo "(load after: $(cut -d' ' -f1-3 /proc/loadavg))"; }
  run sd15 512 6 2 default
  run sd15 512 4 1 low-memory
  run sd15 512 4 1 fast
  run sd15 256 5 2 default --reference
  run sd15 256 4 1 low-memory
  echo; echo "## one thread"; OMP_NUM_THREADS=1 bench/sd.sh sd15 256 4 1 default
  run sdxl 1024 1 1 default
  run sdxl 1024 1 1 low-memory
} 2>&1 | tee "$out"
