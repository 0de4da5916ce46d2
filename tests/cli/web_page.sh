#!/usr/bin/env bash
# pigment serve's web page (web/) in a real browser: Debian's Chromium, headless, driven by Playwright's library
# (playwright-core in tests/web/node_modules, pointed at the system browser; nothing downloads a browser), against a
# server with the tiny golden SD1 on a free loopback port (tests/web/page_test.mjs). Screenshots: build/web-screenshots/.
set -u
source "$(dirname "$0")/lib/common.bash"
requires node
SRC=${PIGMENT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
CHROMIUM=${PIGMENT_CHROMIUM:-}
if [ -z "$CHROMIUM" ]; then
  # Debian's /usr/bin/chromium is a shell wrapper; its binary is /usr/lib/chromium/chromium.
  for c in /usr/lib/chromium/chromium "$(command -v chromium 2>/dev/null)" "$(command -v chromium-browser 2>/dev/null)"; do
    if [ -n "$c" ] && [ -x "$c" ]; then CHROMIUM=$c; break; fi
  done
fi
[ -n "$CHROMIUM" ] || missing_requirement "chromium (Debian package chromium)"
[ -f "$SRC/tests/web/node_modules/playwright-core/package.json" ] ||
  missing_requirement "playwright-core in tests/web/node_modules (cd tests/web && npm ci)"
SHOTS=$(cd "$BIN/.." && pwd)/web-screenshots
node "$SRC/tests/web/page_test.mjs" "$BIN/pigment" "$CHROMIUM" "$T" "$G" "$SRC/web" "$SHOTS" -- "${TINY_SD1[@]}"
rc=$?
[ $rc -ne 0 ] && { echo "--- server log (tail)"; tail -20 "$T/server.log" 2>/dev/null; }
exit $rc
