#!/usr/bin/env bash
# Runs the op microbenchmarks and prints a table of medians: time, GFLOP/s (or GB/s) and % of the fp32 FMA peak
# measured in the same process.
#   bench/ops.sh [build-dir] [extra flags, e.g. --benchmark_filter=conv]
# Shared machines are noisy: the default is 5 repetitions, reported as medians. On a busy machine, wall-clock rates
# mean little; OMP_NUM_THREADS=1 bench/ops.sh <build> --cpu_time gives per-core rates by CPU time instead.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-$here/../build}"
shift || true
bin="$build/bin/ops_bench"
[[ -x "$bin" ]] || { echo "ops.sh: $bin not found; build it with: cmake --build $build --target ops_bench" >&2; exit 1; }
json="$(mktemp)"
trap 'rm -f "$json"' EXIT
"$bin" --benchmark_repetitions="${REPS:-5}" --benchmark_report_aggregates_only=true \
  --benchmark_out="$json" --benchmark_out_format=json "$@" > /dev/null
python3 - "$json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
ctx = d["context"]
print(f"# {ctx.get('num_cpus')} CPUs @ {ctx.get('mhz_per_cpu')} MHz, {ctx.get('threads')} threads, timed by "
      f"{ctx.get('timing')}, load average {ctx.get('load_avg', ['?'])[0]:.1f}; fp32 FMA peak "
      f"{float(ctx.get('fp32_fma_peak_gflops', 0)):.1f} GFLOP/s ({ctx.get('fp32_fma_peak_isa')}); medians of "
      f"{d['benchmarks'][0].get('repetitions', 1) if d['benchmarks'] else 0} runs")
print(f"| {'benchmark':<48} | {'time':>10} | {'rate':>14} | {'% peak':>6} |")
print(f"| {'-'*48} | {'-'*10}:| {'-'*14}:| {'-'*6}:|")
for b in d["benchmarks"]:
    if b.get("aggregate_name") != "median":
        continue
    name = b["run_name"].replace("/real_time", "").replace("/process_time", "")
    t = f"{b['cpu_time'] if ctx.get('timing') == 'process CPU time' else b['real_time']:.2f} {b['time_unit']}"
    if "GFLOP/s" in b:
        rate, peak = f"{b['GFLOP/s']:.1f} GFLOP/s", f"{b.get('%peak', 0):.0f}"
    else:
        rate, peak = f"{b.get('GB/s', 0):.1f} GB/s", ""
    print(f"| {name:<48} | {t:>10} | {rate:>14} | {peak:>6} |")
PY
