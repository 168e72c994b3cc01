#!/usr/bin/env bash
# The long variants of the hardening tests against a real `wid serve`, with their figures appended to
# FIGURES (default target/hardening-figures.txt; copy them into fuzz/RESULTS.md):
#   scripts/soak.sh soak [SECONDS]              mixed traffic for SECONDS (default 600), the external
#                                               issuer killed at half time, then the secrets-hygiene
#                                               grep (crates/wid/tests/soak.rs)
#   scripts/soak.sh crash [ROUNDS] [WRITES]     ROUNDS SIGKILLs (default 200) at random points, each
#                                               after about WRITES acknowledged writes (default 200)
#                                               (crates/wid/tests/crash_safety.rs)
#   scripts/soak.sh all                         both with their defaults
# CI runs the same tests with their short defaults (5 s, 20 rounds) inside `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
figures="${FIGURES:-$PWD/target/hardening-figures.txt}"
mkdir -p "$(dirname "$figures")"

soak() {
  echo "== soak for ${1:-600}s (figures: $figures)"
  WID_SOAK_SECS="${1:-600}" WID_FIGURES_FILE="$figures" \
    cargo test --locked -p wid --test soak -- --nocapture 2>&1 | grep -E -A3 '^(soak|secrets hygiene)|test result|panicked'
}

crash() {
  echo "== crash safety: ${1:-200} rounds of ~${2:-200} writes (figures: $figures)"
  WID_CRASH_ITERATIONS="${1:-200}" WID_CRASH_WRITES="${2:-200}" WID_FIGURES_FILE="$figures" \
    cargo test --locked -p wid --test crash_safety acknowledged_writes -- --nocapture 2>&1 |
    grep -E -A3 '^crash safety|test result|panicked'
}

case "${1:-all}" in
  soak) soak "${2:-600}" ;;
  crash) crash "${2:-200}" "${3:-200}" ;;
  all)
    soak 600
    crash 200 200
    ;;
  *)
    echo "usage: $0 soak [SECONDS] | crash [ROUNDS] [WRITES] | all" >&2
    exit 2
    ;;
esac
