#!/usr/bin/env bash
# pigment serve's API over loopback with the tiny golden SD1 (tests/serve/api_test.py): every endpoint, round trips,
# bad input and its status codes, HTTP Basic auth, --timeout, SIGTERM.
set -u
source "$(dirname "$0")/lib/common.bash"
requires python3
python3 "$(dirname "$0")/../serve/api_test.py" "$BIN/pigment" "$T" "$G/lora/kohya/lora_kohya.safetensors" -- \
  "${TINY_SD1[@]}"
rc=$?
[ $rc -ne 0 ] && { echo "--- server log (tail)"; tail -20 "$T/server.log" "$T/server2.log" 2>/dev/null; }
exit $rc
