#!/usr/bin/env bash
# A bounded load test of pigment serve (tests/serve/load_test.py): 8 clients x 25 requests with the tiny golden SD1,
# every image the CLI's, none lost, 503 beyond --max-queue, RSS before/after/peak printed, SIGTERM exits 0.
set -u
source "$(dirname "$0")/lib/common.bash"
requires python3
python3 "$(dirname "$0")/../serve/load_test.py" "$BIN/pigment" "$T" -- "${TINY_SD1[@]}"
