#!/usr/bin/env bash
# pigment serve's API over loopback with the tiny golden SD1 (tests/serve/api_test.py): every endpoint, round trips,
# bad input and its status codes, HTTP Basic auth, --timeout, SIGTERM. First, bad command lines: one error line, exit 1.
set -u
source "$(dirname "$0")/lib/common.bash"
requires python3
bad() {
  local name=$1; shift
  out=$("$BIN/pigment" serve "$@" 2>&1 >/dev/null); rc=$?
  check "$name" '[ $rc -eq 1 ] && [ $(wc -l <<<"$out") -eq 1 ] && grep -q "^error: " <<<"$out"'
}
bad "serve: a model that is not there" -m "$T/nosuch.safetensors" --listen 127.0.0.1:0
bad "serve: --listen without a port" "${TINY_SD1[@]}" --listen nonsense
bad "serve: --listen with port 99999" "${TINY_SD1[@]}" --listen 127.0.0.1:99999
bad "serve: --api-auth without a password" "${TINY_SD1[@]}" --api-auth alice
bad "serve: --lora-dir that is no folder" "${TINY_SD1[@]}" --lora-dir "$T/nosuch"
python3 "$(dirname "$0")/../serve/api_test.py" "$BIN/pigment" "$T" "$G" -- "${TINY_SD1[@]}"
rc=$?
[ $rc -ne 0 ] && { echo "--- server log (tail)"; tail -20 "$T/server.log" "$T/server2.log" 2>/dev/null; }
[ $rc -eq 0 ] && [ $fails -eq 0 ]
