#!/usr/bin/env bash
# Builds the webhook oracle (this directory) and upstream's azwi (cmd/azwi of
# github.com/Azure/azure-workload-identity v1.6.0, from the same go.mod) once per hash of go.mod,
# go.sum and the sources, into ~/.cache/wid/webhook-oracle-v1.6.0-<hash>/, and prints
#
#   ORACLE=<dir>/webhook-oracle
#   AZWI=<dir>/azwi
#
# Modules come from the Go module proxy (go.sum pins them; -mod=readonly), except monis.app/mlog,
# whose host the proxy reachable here refuses: mlogshim/ stands in for it (see mlogshim/mlog.go).
# Caches: GOMODCACHE=~/.cache/wid/go/mod, GOCACHE=~/.cache/wid/go/build. A cold build (empty build
# cache) takes about 6 minutes on 2 cores, almost all of it azwi (msgraph-sdk-go); a warm one is a
# hash check. Go: $GO, else /usr/local/go/bin/go, else go on the PATH.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${WID_CACHE:-$HOME/.cache/wid}"
go="${GO:-/usr/local/go/bin/go}"
[[ -x "$go" ]] || go="$(command -v go)" || { echo "build.sh: no Go toolchain" >&2; exit 2; }

hash="$(cd "$here" && cat go.mod go.sum build.sh ./*.go mlogshim/go.mod mlogshim/*.go | sha256sum | cut -c1-16)"
out="$cache/webhook-oracle-v1.6.0-$hash"

if [[ ! -x "$out/webhook-oracle" || ! -x "$out/azwi" ]]; then
    export GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build" GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0
    mkdir -p "$cache"
    tmp="$(mktemp -d "$out.tmp.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    t0=$SECONDS
    echo "build.sh: building the webhook oracle and azwi v1.6.0 with $("$go" version)" >&2
    (cd "$here" && "$go" build -trimpath -o "$tmp/webhook-oracle" .)
    (cd "$here" && "$go" build -trimpath -o "$tmp/azwi" github.com/Azure/azure-workload-identity/cmd/azwi)
    rm -rf "$out"
    mv "$tmp" "$out"
    trap - EXIT
    # Builds of older sources are of no further use.
    for old in "$cache"/webhook-oracle-v1.6.0-*; do
        [[ "$old" == "$out" || "$old" == *.tmp.* ]] || rm -rf "$old"
    done
    echo "build.sh: built in $((SECONDS - t0))s into $out" >&2
fi
echo "ORACLE=$out/webhook-oracle"
echo "AZWI=$out/azwi"
