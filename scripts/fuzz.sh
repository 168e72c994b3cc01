#!/usr/bin/env bash
# Fuzzing of wid's parsers of untrusted input with cargo-fuzz (libFuzzer).
#   scripts/fuzz.sh build            build every target (what CI does)
#   scripts/fuzz.sh run [SECONDS]    run each target for SECONDS (default 60), seeds from fuzz/corpus
# New inputs go to target/fuzz-corpus/TARGET, so the committed seeds stay as they are.
# cargo-fuzz needs nightly-only rustc flags; the pinned stable toolchain provides them with
# RUSTC_BOOTSTRAP=1, so no second toolchain is needed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "installing cargo-fuzz (once)"
  cargo install cargo-fuzz --locked --quiet
fi
export RUSTC_BOOTSTRAP=1
targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^wid-fuzz$')

case "${1:-build}" in
  build)
    cargo fuzz build --dev --fuzz-dir fuzz
    ;;
  run)
    secs="${2:-60}"
    for t in $targets; do
      mkdir -p "target/fuzz-corpus/$t"
      echo "== fuzz $t for ${secs}s"
      cargo fuzz run --fuzz-dir fuzz "$t" "target/fuzz-corpus/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -max_len=65536 -print_final_stats=1 2>&1 | grep -E '^(#|stat::|==|INFO: (Loaded|seed))|ERROR|panicked' || true
    done
    ;;
  *)
    echo "usage: $0 build | run [SECONDS]" >&2
    exit 2
    ;;
esac
