#!/usr/bin/env bash
# Creates (or reuses) the Python venv of the e2e suite and the walkthrough in target/e2e-venv and
# prints its interpreter. The venv is rebuilt only when tests/e2e/requirements.txt, the file it
# includes (tests/sdk/python/requirements.txt) or the Python version changes. PYTHON picks the
# interpreter (default python3).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/target/e2e-venv"
python="${PYTHON:-python3}"
stamp="$({ "$python" -c 'import sys; print(sys.version)'; cat "$root/tests/e2e/requirements.txt" \
    "$root/tests/sdk/python/requirements.txt"; } | sha256sum | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$stamp" ]]; then
    echo "e2e: creating $venv" >&2
    rm -rf "$venv"
    if ! "$python" -m venv "$venv"; then
        echo "e2e: '$python -m venv' failed (on Debian/Ubuntu install python3-venv)" >&2
        exit 2
    fi
    (cd "$root/tests/e2e" && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        -r requirements.txt) >&2
    # Written last: an interrupted install is redone on the next run.
    echo "$stamp" >"$venv/.requirements.sha256"
fi
echo "$venv/bin/python"
