#!/usr/bin/env bash
# Runs the op microbenchmarks and prints a table: time, GFLOP/s (or GB/s), % of the fp32 FMA peak and % of the bf16
# dot-product peak (where the CPU has AVX-512 BF16), both peaks measured in the same process.
#   bench/ops.sh [build-dir] [extra flags, e.g. --benchmark_filter=conv]
# Shared machines are noisy: the default is 5 repetitions (REPS), reported as medians, or with STAT=best as the
# fastest repetition (on a machine loaded by other work, other processes can only slow a run down). On a busy machine
# wall-clock rates mean little; OMP_NUM_THREADS=1 bench/ops.sh <build> --cpu_time gives per-core rates by CPU time.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-$here/../build}"
shift || true
bin="$build/bin/ops_bench"
[[ -x "$bin" ]] || { echo "ops.sh: $bin not found; build it with: cmake --build $build --target ops_bench" >&2; exit 1; }
json="$(mktemp)"
trap 'rm -f "$json"' EXIT
"$bin" --benchmark_repetitions="${REPS:-5}" --benchmark_out="$json" --benchmark_out_format=json "$@" > /dev/null
STAT="${STAT:-median}" python3 - "$json" <<'PY'
import json, os, sys
d = json.load(open(sys.argv[1]))
ctx = d["context"]
stat = os.environ["STAT"]
cpu = ctx.get("timing") == "process CPU time"
runs = {}
for b in d["benchmarks"]:
    if b.get("run_type") == "aggregate":
        continue
    runs.setdefault(b["run_name"], []).append(b)
reps = max((len(v) for v in runs.values()), default=0)
lscpu = os.popen("lscpu 2>/dev/null | sed -n 's/^Model name: *//p'").read().strip() or "?"
print(f"# {lscpu}: {ctx.get('num_cpus')} CPUs @ {ctx.get('mhz_per_cpu')} MHz, {ctx.get('threads')} threads, timed by "
      f"{ctx.get('timing')}, load average {ctx.get('load_avg', ['?'])[0]:.1f}; fp32 FMA peak "
      f"{float(ctx.get('fp32_fma_peak_gflops', 0)):.1f} GFLOP/s ({ctx.get('fp32_fma_peak_isa')}), bf16 peak "
      f"{float(ctx.get('bf16_peak_gflops', 0)):.1f} GFLOP/s; oneDNN ISA {ctx.get('onednn_isa')}, fast path "
      f"{ctx.get('fast_path')}; {'best' if stat == 'best' else 'median'} of {reps} runs")
print(f"| {'benchmark':<48} | {'time':>10} | {'rate':>14} | {'% fp32':>6} | {'% bf16':>6} |")
print(f"| {'-'*48} | {'-'*10}:| {'-'*14}:| {'-'*6}:| {'-'*6}:|")
for name, rs in runs.items():
    rs = sorted(rs, key=lambda b: b["cpu_time" if cpu else "real_time"])
    b = rs[0] if stat == "best" else rs[len(rs) // 2]
    name = name.replace("/real_time", "").replace("/process_time", "")
    t = f"{b['cpu_time'] if cpu else b['real_time']:.2f} {b['time_unit']}"
    if "GFLOP/s" in b:
        rate, peak = f"{b['GFLOP/s']:.1f} GFLOP/s", f"{b.get('%peak', 0):.0f}"
        bpeak = f"{b['%bf16peak']:.0f}" if "%bf16peak" in b else ""
    else:
        rate, peak, bpeak = f"{b.get('GB/s', 0):.1f} GB/s", "", ""
    print(f"| {name:<48} | {t:>10} | {rate:>14} | {peak:>6} | {bpeak:>6} |")
PY
