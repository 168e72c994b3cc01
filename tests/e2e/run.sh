#!/usr/bin/env bash
# End-to-end tests of wid against a real Kubernetes API server (tests/e2e): the admission webhook
# registered with the shipped MutatingWebhookConfiguration, the token exchange of real TokenRequest
# tokens at `wid serve` (issuer discovery and JWKS fetched from the apiserver), the Key Vault read by
# the seed's Python application, server-side dry runs of deploy/manifests and the chart with the real
# Helm (lint, template, install/upgrade/uninstall), the Go, Java, JavaScript and Python clients and
# the real az CLI against `wid serve --azure-hostnames` (port 443: run as root), azure-workload-identity
# v1.6.0 as the webhook's oracle (tests/webhook-oracle), and scripts/walkthrough.sh.
#
# Beyond the apiserver build, the first run builds or fetches into ~/.cache/wid: Helm and a CoreDNS of
# a few plugins (tests/e2e/coredns), both from the module proxy, the oracle and azwi, the Go clients'
# modules, the Java clients' Maven artifacts, the JavaScript clients' npm packages, and azure-cli
# (PyPI) in a venv of its own.
#
#   tests/e2e/run.sh [PYTEST ARGS...]
#
# Needs: the Rust toolchain, Python >= 3.9 with venv and pip, and access to Debian's source and binary
# packages and to PyPI. scripts/kube.sh builds kube-apiserver and kubectl from Debian's `kubernetes`
# source package on the first run (about 4 minutes on 2 cores) and caches them in
# ${WID_KUBE_CACHE:-~/.cache/wid/kube}; if that is impossible this script fails (exit 2), it never
# skips. WID_BIN names the wid binary to test; unset, target/debug/wid is built. The exit code is
# pytest's.
#
# Vaults are served at https://{vault}.vault.localhost:PORT/. Unless those names already resolve to
# 127.0.0.1, pytest runs in a private mount namespace (`unshare -m` as root, else `unshare -rm`) where
# target/e2e-hosts (the machine's /etc/hosts plus the names of tests/e2e/hosts.py) is bind-mounted over
# /etc/hosts; the machine's own file is untouched.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tests="$root/tests/e2e"

t0=$SECONDS
echo "e2e: kube-apiserver, kubectl, etcd and Go (scripts/kube.sh build)" >&2
bash "$root/scripts/kube.sh" build >/dev/null
bash "$root/scripts/kube.sh" tool certgen >/dev/null
bash "$root/scripts/kube.sh" tool helm >/dev/null
bash "$root/scripts/kube.sh" tool kubelogin >/dev/null
bash "$root/scripts/kube.sh" tool coredns >/dev/null
echo "e2e: tools ready in $((SECONDS - t0))s" >&2

python="$(bash "$tests/venv.sh")"
export E2E_PYTHON="$python"

if [[ -z "${WID_BIN:-}" ]]; then
    (cd "$root" && cargo build --locked --quiet -p wid)
    export WID_BIN="$root/target/debug/wid"
fi

export PYTHONDONTWRITEBYTECODE=1
cd "$tests"
pytest=("$python" -m pytest -q -rA --durations=10 "$@")

if "$python" hosts.py --check; then
    exec "${pytest[@]}"
fi
hosts="$root/target/e2e-hosts"
mkdir -p "$root/target"
"$python" hosts.py --hosts-file >"$hosts"
# `sh -c SCRIPT HOSTS CMD...`: inside the new namespace, mount the file, then become CMD.
in_namespace='mount --bind "$0" /etc/hosts && exec "$@"'
for flags in -m -rm; do
    if unshare "$flags" -- sh -c "$in_namespace" "$hosts" "$python" hosts.py --check 2>/dev/null; then
        exec unshare "$flags" -- sh -c "$in_namespace" "$hosts" "${pytest[@]}"
    fi
done
echo "e2e: *.vault.localhost does not resolve to 127.0.0.1, and a private /etc/hosts could not be mounted" \
    "('unshare -m' and 'unshare -rm' failed); the e2e suite needs one of them" >&2
exit 2
