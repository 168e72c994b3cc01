#!/usr/bin/env bash
# Python SDK compatibility tests: the official azure-identity and azure-keyvault-secrets packages
# against a real `wid serve` (tests/sdk/python). Needs Python >= 3.9 with venv and pip, and the Rust
# toolchain.
#
#   scripts/sdk-python.sh [PYTEST ARGS...]
#   scripts/sdk-python.sh --prepare      only create/update the venv (Rust tests drive it too)
#
# The venv lives in target/sdk-venv and is rebuilt only when tests/sdk/python/requirements.txt (or
# the Python version) changes. WID_BIN names the wid binary to test; unset, target/debug/wid is built.
# PYTHON picks the interpreter (default python3). The exit code is pytest's.
#
# Vaults are served at https://{vault}.vault.localhost:PORT/. Unless those names already resolve to
# 127.0.0.1, pytest runs in a private mount namespace (`unshare -m` as root, else `unshare -rm`, which
# needs unprivileged user namespaces) where target/sdk-hosts (the machine's /etc/hosts plus the names of
# tests/sdk/python/kvhosts.py) is bind-mounted over /etc/hosts; the machine's own file is untouched.
# If that is impossible the Key Vault tests are skipped, with a message saying why (in CI, with CI set, it
# is a failure instead).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tests="$root/tests/sdk/python"
requirements="$tests/requirements.txt"
venv="$root/target/sdk-venv"
python="${PYTHON:-python3}"

stamp="$({ "$python" -c 'import sys; print(sys.version)'; cat "$requirements"; } | sha256sum | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$stamp" ]]; then
    echo "sdk-python: creating $venv" >&2
    rm -rf "$venv"
    if ! "$python" -m venv "$venv"; then
        echo "sdk-python: '$python -m venv' failed (on Debian/Ubuntu install python3-venv)" >&2
        exit 2
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$requirements"
    # Written last: an interrupted install is redone on the next run.
    echo "$stamp" >"$venv/.requirements.sha256"
fi

if [[ "${1:-}" == "--prepare" ]]; then
    exit 0
fi

if [[ -z "${WID_BIN:-}" ]]; then
    (cd "$root" && cargo build --locked --quiet -p wid)
    export WID_BIN="$root/target/debug/wid"
fi

export PYTHONDONTWRITEBYTECODE=1
cd "$tests"
pytest=("$venv/bin/python" -m pytest -q "$@")

if "$venv/bin/python" kvhosts.py --check; then
    exec "${pytest[@]}"
fi
hosts="$root/target/sdk-hosts"
"$venv/bin/python" kvhosts.py --hosts-file >"$hosts"
# `sh -c SCRIPT HOSTS CMD...`: inside the new namespace, mount the file, then become CMD.
in_namespace='mount --bind "$0" /etc/hosts && exec "$@"'
# As root a mount namespace is enough; otherwise try one inside a user namespace (mapped to root).
for flags in -m -rm; do
    if unshare "$flags" -- sh -c "$in_namespace" "$hosts" "$venv/bin/python" kvhosts.py --check 2>/dev/null; then
        exec unshare "$flags" -- sh -c "$in_namespace" "$hosts" "${pytest[@]}"
    fi
done
echo "sdk-python: *.vault.localhost does not resolve to 127.0.0.1, and a private /etc/hosts could not be" \
    "mounted ('unshare -m' and 'unshare -rm' failed); the Key Vault tests will be SKIPPED" >&2
if [[ -n "${CI:-}" ]]; then
    echo "sdk-python: in CI the Key Vault tests are required; failing" >&2
    exit 2
fi
exec "${pytest[@]}"
