#!/usr/bin/env bash
# pigment samplers lists A1111 labels (with their scheduler and schedule), schedule types and scheduler names.
set -euo pipefail
BIN="${PIGMENT_BIN_DIR:?}/pigment"
out=$("$BIN" samplers)
for want in "Euler a" "DPM++ 2M Karras" "EulerDiscreteScheduler" "KDPM2AncestralDiscreteScheduler" "SGM Uniform"; do
  if ! grep -qF -- "$want" <<<"$out"; then
    echo "FAIL: 'pigment samplers' does not list '$want':"
    echo "$out"
    exit 1
  fi
done
grep -qE '^  DPM\+\+ 2M Karras +dpmpp_2m, karras$' <<<"$out" || { echo "FAIL: DPM++ 2M Karras mapping"; echo "$out"; exit 1; }
echo "ok"
