#!/usr/bin/env bash
# pigment beside other engines, on the same random-weight SD1.5 (from `pigment init`, seed 0, f16), the same sizes,
# steps, sampler (Euler), CFG 7 and thread count, in the same minutes (issue 18). Nothing is downloaded: each peer is
# given as a path and is optional.
#   bench/peers.sh [--sdcpp PATH] [--python PATH] [--sizes "256 512"] [--steps N] [--threads N]
#     --sdcpp PATH    a stable-diffusion.cpp `sd` binary (its log's "sampling completed, taking …" and decode times)
#     --python PATH   a Python with torch and diffusers (timed by a step callback; loads the diffusers folder that
#                     `pigment init --diffusers` writes with the same weights; fp32 on the CPU)
# pigment's rows come from bench/sd_stages_bench (steady steps and decode, exact and the default precision). The ratio
# column is each row's s/step over pigment's default mode's at that size. Output: a Markdown table on stdout; the
# peers' own logs in out/bench/peers/.
set -euo pipefail
cd "$(dirname "$0")/.."
sdcpp="" py="" sizes="256 512" steps=6 threads=$(nproc)
die() { echo "peers.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --sdcpp) [ $# -ge 2 ] || die "--sdcpp needs a path"; sdcpp=$2; shift 2 ;;
    --python) [ $# -ge 2 ] || die "--python needs a path"; py=$2; shift 2 ;;
    --sizes) [ $# -ge 2 ] || die "--sizes needs a list"; sizes=$2; shift 2 ;;
    --steps) [ $# -ge 2 ] || die "--steps needs a number"; steps=$2; shift 2 ;;
    --threads) [ $# -ge 2 ] || die "--threads needs a number"; threads=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ "$steps" =~ ^[1-9][0-9]*$ ]] && [ "$steps" -ge 3 ] || die "--steps: a whole number of at least 3, got '$steps'"
[[ "$threads" =~ ^[1-9][0-9]*$ ]] || die "--threads: a positive whole number, got '$threads'"
for s in $sizes; do [[ "$s" =~ ^[1-9][0-9]*$ ]] && [ $((s % 64)) -eq 0 ] || die "--sizes: multiples of 64, got '$s'"; done
[ -z "$sdcpp" ] || [ -x "$sdcpp" ] || die "--sdcpp: $sdcpp is not an executable file"
if [ -n "$py" ]; then
  [ -x "$py" ] || command -v "$py" >/dev/null || die "--python: $py is not an executable"
  "$py" -c 'import torch, diffusers' 2>/dev/null || die "--python: $py cannot import torch and diffusers"
fi

cmake --build build --target pigment sd_stages_bench >/dev/null
mkdir -p out/bench/peers
model=out/bench/random-sd15-f16.safetensors folder=out/bench/random-sd15-diffusers
[ -f "$model" ] || build/bin/pigment init --family sd15 --dtype f16 --out "$model" >/dev/null
if [ -n "$py" ] && [ ! -d "$folder" ]; then build/bin/pigment init --family sd15 --dtype f16 --diffusers "$folder" >/dev/null; fi
tok=${PIGMENT_TOKENIZER:-../shared/clip-tokenizer}
prompt="a photograph of an astronaut riding a horse on the moon, highly detailed, 8k"

# What `pigment generate` picks by default on this CPU (auto: fast with AMX or AVX-512 BF16, else exact), from the
# infotext of a one-step picture of the built-in model.
build/bin/pigment generate -p probe -W 64 -H 64 --steps 1 -q --overwrite -o out/bench/peers/probe.png >/dev/null
auto=$(build/bin/pigment png-info --fields out/bench/peers/probe.png | sed -n 's/^Precision: //p')
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
echo "# peers, $(date -u '+%Y-%m-%d %H:%M UTC'), $cpu, $threads threads, $steps steps Euler CFG 7, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| engine | size | s/step | VAE decode s | s/step ÷ pigment default's |"
echo "|---|---|---|---|---|"
for size in $sizes; do
  declare -A step=() dec=()
  for mode in exact default; do
    bmode=default  # sd_stages_bench's "default" is the library's default, exact; "fast" what auto picks with bf16
    [ $mode = default ] && [ "$auto" = fast ] && bmode=fast
    log=out/bench/peers/pigment-$mode-$size.log
    OMP_NUM_THREADS=$threads build/bin/sd_stages_bench "$model" "$tok" "$size" "$steps" 1 "$bmode" >"$log" 2>&1 ||
      die "sd_stages_bench failed (log: $log)"
    step[$mode]=$(sed -n 's/^| sampling step 3+[^|]*| \([0-9.]*\) .*/\1/p' "$log")
    dec[$mode]=$(sed -n 's/^| VAE decode | \([0-9.]*\) .*/\1/p' "$log")
  done
  row() { printf '| %s | %s² | %.2f | %.2f | %.2f |\n' "$1" "$size" "$2" "$3" "$(awk -v a="$2" -v b="${step[default]}" 'BEGIN { print a / b }')"; }
  row "pigment (exact)" "${step[exact]}" "${dec[exact]}"
  row "pigment (default: $auto)" "${step[default]}" "${dec[default]}"
  if [ -n "$sdcpp" ]; then
    log=out/bench/peers/sdcpp-$size.log
    "$sdcpp" -m "$model" -p "$prompt" -n blurry -W "$size" -H "$size" --steps "$steps" --cfg-scale 7 \
      --sampling-method euler -t "$threads" -s 0 -o out/bench/peers/sdcpp-$size.png -v >"$log" 2>&1 ||
      die "$sdcpp failed (log: $log)"
    total=$(grep -o 'sampling completed, taking [0-9.]*' "$log" | tail -1 | grep -o '[0-9.]*$' || true)
    d=$(grep -oE '(decoded|decode_first_stage completed), taking [0-9.]*' "$log" | tail -1 | grep -o '[0-9.]*$' || true)
    [ -n "$total" ] || die "no 'sampling completed, taking' line in $log"
    row "stable-diffusion.cpp" "$(awk -v t="$total" -v n="$steps" 'BEGIN { print t / n }')" "${d:-0}"
  fi
  if [ -n "$py" ]; then
    log=out/bench/peers/diffusers-$size.log
    "$py" - "$folder" "$size" "$steps" "$threads" "$prompt" >"$log" 2>&1 <<'EOF' || die "diffusers failed (log: $log)"
import sys, time, torch
from diffusers import StableDiffusionPipeline, EulerDiscreteScheduler
folder, size, steps, threads, prompt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
torch.set_num_threads(threads)
pipe = StableDiffusionPipeline.from_pretrained(folder, torch_dtype=torch.float32, safety_checker=None)
pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
marks = []
def on_step(*args, **kwargs):
    marks.append(time.perf_counter())
    return kwargs.get("callback_kwargs", {})
with torch.no_grad():
    t0 = time.perf_counter()
    latents = pipe(prompt, negative_prompt="blurry", width=size, height=size, num_inference_steps=steps,
                   guidance_scale=7.0, generator=torch.Generator().manual_seed(0), output_type="latent",
                   callback_on_step_end=on_step).images
    t1 = time.perf_counter()
    pipe.vae.decode(latents / pipe.vae.config.scaling_factor)
    t2 = time.perf_counter()
steady = [b - a for a, b in zip(marks[1:], marks[2:])]  # steps 3 on, as pigment's rows
print("step %.4f" % (sum(steady) / len(steady)))
print("decode %.4f" % (t2 - t1))
EOF
    row "diffusers $("$py" -c 'import diffusers, torch; print(diffusers.__version__ + " / torch " + torch.__version__)') (fp32)" \
      "$(sed -n 's/^step //p' "$log")" "$(sed -n 's/^decode //p' "$log")"
  fi
  unset step dec
done
[ -n "$sdcpp" ] || echo "(no --sdcpp: stable-diffusion.cpp not run)"
[ -n "$py" ] || echo "(no --python: diffusers not run)"
echo "(load after: $(cut -d' ' -f1-3 /proc/loadavg))"
