"""The real Azure CLI (`azure-cli` 2.91.0 from PyPI, in a venv cached under ~/.cache/wid) against wid
under Azure's own host names, with the default cloud `AzureCloud` and no az configuration at all: only
the CA bundle (`REQUESTS_CA_BUNDLE`, wid's CA) and names that resolve to wid (tests/e2e/hosts.py), as
in an air-gapped cluster whose DNS sends them to wid. Telemetry is switched off
(`AZURE_CORE_COLLECT_TELEMETRY`), so that nothing leaves loopback.

The other route is tried too: `az cloud register` with wid's URL (with and without the trailing
slash users type), then az with that cloud.

The walkthrough's az commands run verbatim, in order, as the admin principal signed in with its
secret — Graph-backed ones (`az ad signed-in-user show`, `az role assignment create --assignee`)
included — then as the workload identity signed in with a service-account token of the cluster's
wid-hosted issuer (`az login --federated-token`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import AUD, Wid

AZ_VERSION = "2.91.0"
CACHE = Path(os.environ.get("WID_CACHE", Path.home() / ".cache" / "wid"))
VAULT = "kv-az"  # its Azure name is listed in tests/e2e/hosts.py


@pytest.fixture(scope="module")
def az_bin() -> Path:
    """az from PyPI in a venv of its own, installed once per version (a stamp marks it complete)."""
    venv = CACHE / f"az-{AZ_VERSION}"
    stamp = venv / ".installed"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
        proc = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
             f"azure-cli=={AZ_VERSION}"],
            capture_output=True, text=True, timeout=1200,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        stamp.write_text(AZ_VERSION)
    return venv / "bin" / "az"


@dataclass
class Az:
    bin: Path
    wid: Wid
    home: Path

    def run(self, *args: str, config: str = "admin") -> subprocess.CompletedProcess:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "AZURE_CONFIG_DIR": str(self.home / f"azure-{config}"),
            "REQUESTS_CA_BUNDLE": str(self.wid.ca),
            "AZURE_CORE_COLLECT_TELEMETRY": "false",
        }
        return subprocess.run([str(self.bin), *args], env=env, capture_output=True, text=True, timeout=300)

    def __call__(self, *args: str, config: str = "admin") -> str:
        proc = self.run(*args, config=config)
        assert proc.returncode == 0, f"az {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
        return proc.stdout.strip()


@pytest.fixture(scope="module")
def az(az_bin: Path, azure_wid: Wid, tmp_path_factory: pytest.TempPathFactory) -> Az:
    a = Az(bin=az_bin, wid=azure_wid, home=tmp_path_factory.mktemp("az"))
    p = azure_wid.profile
    a("login", "--service-principal", "-u", p["clientId"], "-p", p["clientSecret"], "--tenant", p["tenantId"],
      "-o", "none")
    return a


def test_account_show_after_login_with_a_secret(az: Az):
    account = json.loads(az("account", "show", "-o", "json"))
    p = az.wid.profile
    assert account["environmentName"] == "AzureCloud"
    assert (account["tenantId"], account["id"]) == (p["tenantId"], p["subscriptionId"])
    assert account["user"] == {"name": p["clientId"], "type": "servicePrincipal"}


def test_the_walkthrough_then_a_federated_token_login_reads_the_secret(az: Az):
    """The AKS walkthrough's az commands, verbatim, in order (names of the walkthrough's variables)."""
    rg, cluster, identity, sa, ns = "myResourceGroup", "myAKSCluster", "myIdentity", "workload-identity-sa", "default"
    az("group", "create", "--name", rg, "--location", "eastus", "-o", "none")
    az("aks", "create", "--resource-group", rg, "--name", cluster, "--enable-oidc-issuer",
       "--enable-workload-identity", "--generate-ssh-keys", "-o", "none")
    issuer = az("aks", "show", "--name", cluster, "--resource-group", rg, "--query",
                "oidcIssuerProfile.issuerUrl", "--output", "tsv")
    assert issuer.startswith("https://localhost/oidc/"), issuer
    az("identity", "create", "--name", identity, "--resource-group", rg, "--location", "eastus",
       "--subscription", az.wid.profile["subscriptionId"], "-o", "none")
    client_id = az("identity", "show", "--resource-group", rg, "--name", identity, "--query", "clientId",
                   "--output", "tsv")
    az("identity", "federated-credential", "create", "--name", "myFedIdentity", "--identity-name", identity,
       "--resource-group", rg, "--issuer", issuer, "--subject", f"system:serviceaccount:{ns}:{sa}",
       "--audience", AUD, "-o", "none")
    az("keyvault", "create", "--name", VAULT, "--resource-group", rg, "--location", "eastus",
       "--enable-purge-protection", "--enable-rbac-authorization", "-o", "none")
    vault_id = az("keyvault", "show", "--resource-group", rg, "--name", VAULT, "--query", "id", "--output", "tsv")
    vault_url = az("keyvault", "show", "--resource-group", rg, "--name", VAULT, "--query", "properties.vaultUri",
                   "--output", "tsv")
    assert vault_url == f"https://{VAULT}.vault.azure.net/"
    # Who am I (Graph /me: for a service principal, wid answers its service principal).
    me = az("ad", "signed-in-user", "show", "--query", "id", "-o", "tsv")
    assert me == az.wid.profile["principalId"]
    az("role", "assignment", "create", "--assignee", me, "--role", "Key Vault Secrets Officer", "--scope", vault_id,
       "-o", "none")
    az("keyvault", "secret", "set", "--vault-name", VAULT, "--name", "my-secret", "--value", "Hello!", "-o", "none")
    assert az("keyvault", "secret", "show", "--vault-name", VAULT, "--name", "my-secret", "--query", "value",
              "-o", "tsv") == "Hello!"
    principal_id = az("identity", "show", "--resource-group", rg, "--name", identity, "--query", "principalId",
                      "--output", "tsv")
    az("role", "assignment", "create", "--role", "Key Vault Secrets User", "--assignee-object-id", principal_id,
       "--assignee-principal-type", "ServicePrincipal", "--scope", vault_id, "-o", "none")
    # The assignee named by its app id (az resolves it through Graph).
    assigned = json.loads(az("role", "assignment", "create", "--role", "Key Vault Reader", "--assignee",
                             client_id, "--scope", vault_id, "-o", "json"))
    assert assigned["principalId"] == principal_id and assigned["principalType"] == "ServicePrincipal", assigned

    # The workload identity signs in with a token of the cluster's issuer (as a pod would hand az its
    # projected token), then reads the secret through its role on the vault.
    token = az.wid.tsv("aks", "get-token", "-n", cluster, "-g", rg, "--namespace", ns, "--service-account", sa,
                       "--query", "token")
    tenant = az.wid.profile["tenantId"]
    # Its only role is on a vault: wid lists no subscription for it, so az needs
    # --allow-no-subscriptions (whether Azure lists the subscription then is still to be checked).
    az("login", "--service-principal", "-u", client_id, "--tenant", tenant, "--federated-token", token,
       "--allow-no-subscriptions", "-o", "none", config="workload")
    assert az("keyvault", "secret", "show", "--vault-name", VAULT, "--name", "my-secret", "--query", "value",
              "-o", "tsv", config="workload") == "Hello!"
    refused = az.run("keyvault", "secret", "set", "--vault-name", VAULT, "--name", "my-secret", "--value", "x",
                     config="workload")
    assert refused.returncode != 0 and "ForbiddenByRbac" in refused.stderr, refused.stderr


@pytest.mark.parametrize("url", ["https://localhost", "https://localhost/"], ids=["no-slash", "slash"])
def test_a_registered_cloud_pointing_at_wid(az_bin: Path, azure_wid: Wid, tmp_path: Path, url: str):
    """The other route: `az cloud register` with wid's own URL (as users type it, with or without the
    trailing slash), then az with that cloud — the endpoints all come from wid's /metadata/endpoints."""
    a = Az(bin=az_bin, wid=azure_wid, home=tmp_path)
    a("cloud", "register", "--name", "wid", "--endpoint-resource-manager", url)
    a("cloud", "set", "--name", "wid")
    p = azure_wid.profile
    a("login", "--service-principal", "-u", p["clientId"], "-p", p["clientSecret"], "--tenant", p["tenantId"],
      "-o", "none")
    account = json.loads(a("account", "show", "-o", "json"))
    assert (account["environmentName"], account["id"]) == ("wid", p["subscriptionId"])
    assert a("ad", "signed-in-user", "show", "--query", "id", "-o", "tsv") == p["principalId"]
    a("group", "create", "--name", "rg-cloud", "--location", "eastus", "-o", "none")
    assert a("group", "show", "--name", "rg-cloud", "--query", "name", "-o", "tsv") == "rg-cloud"

