"""Host names the e2e tests need on loopback, and a hosts file that provides them.

wid serves vault `V` at `https://V.vault.localhost:PORT/`. Machines rarely resolve `*.vault.localhost`,
and tests must not edit the machine's /etc/hosts, so tests/e2e/run.sh runs pytest in a private mount
namespace (`unshare -m`) with a hosts file from this module bind-mounted over /etc/hosts (as
scripts/sdk-python.sh does). scripts/walkthrough.sh does the same for its own, random, vault name.

    python hosts.py --check        exit 0 if every name already resolves to 127.0.0.1
    python hosts.py --hosts-file   print /etc/hosts plus a line for the names
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

SUFFIX = "vault.localhost"

# The vaults of tests/e2e/test_token_flow.py, test_clients.py and the registered-cloud route of
# test_az.py.
VAULTS = ["kv-e2e", "kv-clients", "kv-reg"]

# Azure's host names, answered by conftest's `azure_wid` (`wid serve --azure-hostnames`): the sign-in
# host (Go, Java and Node MSAL ask it for instance discovery), Resource Manager, Microsoft Graph, and
# the Azure names of the vaults of test_clients.py and test_az.py.
AZURE_HOSTS = ["login.microsoftonline.com", "management.azure.com", "graph.microsoft.com",
               "kv-clients.vault.azure.net", "kv-az.vault.azure.net"]


def host_names() -> list[str]:
    return ["localhost", SUFFIX] + [f"{name}.{SUFFIX}" for name in VAULTS] + AZURE_HOSTS


def unresolved(names: list[str]) -> list[str]:
    missing = []
    for name in names:
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(name, 443, proto=socket.IPPROTO_TCP)}
        except OSError:
            addresses = set()
        if "127.0.0.1" not in addresses:
            missing.append(name)
    return missing


def hosts_file(names: list[str]) -> str:
    try:
        current = Path("/etc/hosts").read_text(encoding="utf-8")
    except OSError:
        current = ""
    if current and not current.endswith("\n"):
        current += "\n"
    return f"{current}# wid e2e tests\n127.0.0.1 {' '.join(names)}\n"


if __name__ == "__main__":
    extra = sys.argv[2:]
    if sys.argv[1:2] == ["--check"]:
        sys.exit(1 if unresolved(host_names() + extra) else 0)
    if sys.argv[1:2] == ["--hosts-file"]:
        sys.stdout.write(hosts_file(host_names() + extra))
        sys.exit(0)
    sys.exit(__doc__)
