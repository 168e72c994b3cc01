#!/usr/bin/env bash
# Fuzzing of wid's parsers of untrusted input with cargo-fuzz (libFuzzer).
#   scripts/fuzz.sh build                      build every target
#   scripts/fuzz.sh run [SECONDS] [TARGET…]    run each target (default: all) for SECONDS (default 60),
#                                              optimised build (FUZZ_PROFILE=--dev: the debug build
#                                              of `build`, with debug assertions and no rebuild)
#   scripts/fuzz.sh ci [SECONDS]               build (debug, as `build`), then run every target for
#                                              SECONDS (default 10); fails on any crash, leak or
#                                              timeout (what CI does)
# Seeds come from fuzz/corpus/TARGET (committed); new inputs go to target/fuzz-corpus/TARGET, so the
# committed seeds stay as they are. Each run prints one summary line per target
# (`| target | seconds | executions | exec/s | corpus | result |`, the table of fuzz/RESULTS.md);
# the full libFuzzer output is in target/fuzz-logs/TARGET.log, a crashing input in
# fuzz/artifacts/TARGET/.
# cargo-fuzz needs nightly-only rustc flags; the pinned stable toolchain provides them with
# RUSTC_BOOTSTRAP=1, so no second toolchain is needed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "installing cargo-fuzz (once)"
  cargo install cargo-fuzz --locked --quiet
fi
export RUSTC_BOOTSTRAP=1
all_targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^wid-fuzz$')

build() {
  cargo fuzz build --dev --fuzz-dir fuzz
}

# run_one TARGET SECONDS: fuzzes one target; prints its summary line; returns non-zero on a finding.
# $PROFILE: --dev (ci) or -O (run).
run_one() {
  local t=$1 secs=$2 log status=0
  mkdir -p "target/fuzz-corpus/$t" target/fuzz-logs
  log="target/fuzz-logs/$t.log"
  cargo fuzz run "$PROFILE" --fuzz-dir fuzz "$t" "target/fuzz-corpus/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || status=$?
  local execs rate corpus result
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corpus=$(find "target/fuzz-corpus/$t" "fuzz/corpus/$t" -type f | wc -l)
  if [ "$status" -eq 0 ]; then
    result="no crash"
  else
    result="FAILED (exit $status, see $log)"
    grep -E 'ERROR|panicked|SUMMARY|Test unit written' "$log" | head -20 >&2 || true
  fi
  echo "| $t | $secs | ${execs:-?} | ${rate:-?} | $corpus | $result |"
  return "$status"
}

run_all() {
  local secs=$1
  shift
  local targets=("$@") failed=0
  [ ${#targets[@]} -gt 0 ] || read -r -a targets <<<"$(echo $all_targets)"
  echo "| target | seconds | executions | exec/s | corpus files | result |"
  echo "|---|---|---|---|---|---|"
  for t in "${targets[@]}"; do
    run_one "$t" "$secs" || failed=1
  done
  return "$failed"
}

case "${1:-build}" in
  build)
    build
    ;;
  run)
    secs="${2:-60}"
    shift $(($# < 2 ? $# : 2))
    PROFILE=${FUZZ_PROFILE:--O}
    run_all "$secs" "$@"
    ;;
  ci)
    build
    PROFILE=--dev
    run_all "${2:-10}"
    ;;
  *)
    echo "usage: $0 build | run [SECONDS] [TARGET…] | ci [SECONDS]" >&2
    exit 2
    ;;
esac
