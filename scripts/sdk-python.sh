#!/usr/bin/env bash
# Python SDK compatibility tests: the official azure-identity package against a real `wid serve`
# (tests/sdk/python). Needs Python >= 3.9 with venv and pip, and the Rust toolchain.
#
#   scripts/sdk-python.sh [PYTEST ARGS...]
#
# The venv lives in target/sdk-venv and is rebuilt only when tests/sdk/python/requirements.txt (or
# the Python version) changes. WID_BIN names the wid binary to test; unset, target/debug/wid is built.
# PYTHON picks the interpreter (default python3). The exit code is pytest's.
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

if [[ -z "${WID_BIN:-}" ]]; then
    (cd "$root" && cargo build --locked --quiet -p wid)
    export WID_BIN="$root/target/debug/wid"
fi

export PYTHONDONTWRITEBYTECODE=1
cd "$tests"
exec "$venv/bin/python" -m pytest -q "$@"
