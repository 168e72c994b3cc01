#!/usr/bin/env bash
# The real Azure CLI for the tests and scripts/walkthrough.sh --az: azure-cli AZ_VERSION from PyPI in
# a venv of its own under ${WID_CACHE:-~/.cache/wid}/az-VERSION, installed once per version (a stamp
# marks it complete); prints the path of its `az`.
#
#   scripts/az.sh        install if needed, print the path
set -euo pipefail

AZ_VERSION="2.91.0"
venv="${WID_CACHE:-$HOME/.cache/wid}/az-$AZ_VERSION"
if [[ ! -f "$venv/.installed" ]]; then
    echo "az.sh: installing azure-cli $AZ_VERSION into $venv (once, a few minutes)" >&2
    python3 -m venv --clear "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "azure-cli==$AZ_VERSION" >&2 ||
        { echo "az.sh: installing azure-cli $AZ_VERSION failed" >&2; exit 1; }
    echo "$AZ_VERSION" >"$venv/.installed"
fi
echo "$venv/bin/az"
