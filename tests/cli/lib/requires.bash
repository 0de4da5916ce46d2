# requires TOOL...: the calling CLI test needs these programs (sourced, not run). Without one the test does not run
# a shortened version of itself: it exits 77, which ctest (SKIP_RETURN_CODE) reports as skipped, counted and listed
# in its summary; with PIGMENT_TESTS_REQUIRE_ALL=1 (scripts/test sets it, after scripts/setup installed them) it
# fails instead. The Debian packages: python3 (standard library only), bsdutils (`script`), openmpi-bin (`mpirun`);
# the web page test also needs chromium, nodejs/npm and tests/web/node_modules (npm ci there).
requires() {
  local t missing=()
  for t in "$@"; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  missing_requirement "${missing[*]}"
}
# missing_requirement WHAT: the same for a need that is not a program on PATH (a browser, an npm package): exit 77,
# or fail under PIGMENT_TESTS_REQUIRE_ALL=1.
missing_requirement() {
  if [ "${PIGMENT_TESTS_REQUIRE_ALL:-0}" = 1 ]; then
    echo "FAIL $(basename "$0"): needs $1 (run scripts/setup)"
    exit 1
  fi
  echo "SKIP $(basename "$0"): needs $1 (scripts/setup installs it); reported as skipped by ctest"
  exit 77
}
