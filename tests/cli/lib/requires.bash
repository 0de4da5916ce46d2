# requires TOOL...: the calling CLI test needs these programs (sourced, not run). Without one the test does not run
# a shortened version of itself: it exits 77, which ctest (SKIP_RETURN_CODE) reports as skipped, counted and listed
# in its summary; with PIGMENT_TESTS_REQUIRE_ALL=1 (scripts/test sets it, after scripts/setup installed them) it
# fails instead. The Debian packages: python3 (standard library only), bsdutils (`script`), openmpi-bin (`mpirun`).
requires() {
  local t missing=()
  for t in "$@"; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "${PIGMENT_TESTS_REQUIRE_ALL:-0}" = 1 ]; then
    echo "FAIL $(basename "$0"): needs ${missing[*]} (run scripts/setup)"
    exit 1
  fi
  echo "SKIP $(basename "$0"): needs ${missing[*]} (scripts/setup installs them); reported as skipped by ctest"
  exit 77
}
