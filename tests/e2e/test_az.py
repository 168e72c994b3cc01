"""The real Azure CLI (`azure-cli` 2.91.0 from PyPI, in a venv cached under ~/.cache/wid by scripts/az.sh) running the AKS
walkthrough's az commands verbatim against `wid serve --azure-hostnames`, by both routes:

- Azure's own names: the default cloud `AzureCloud` and no az configuration at all, only the CA
  bundle (`REQUESTS_CA_BUNDLE`, wid's CA) and names that resolve to wid (tests/e2e/hosts.py), as in
  an air-gapped cluster whose DNS sends them to wid;
- a cloud registered with wid's URL (`az cloud register --endpoint-resource-manager URL/`, the
  trailing slash as users type it), every endpoint read from wid's /metadata/endpoints.

Telemetry is off (`AZURE_CORE_COLLECT_TELEMETRY`), so that nothing leaves loopback. The admin signs
in with its secret, the workload identity with a service-account token of the cluster's wid-hosted
issuer (`az login --federated-token`); `az aks get-credentials` gives AKS's Entra kubeconfig, which
kubelogin (built from its module) turns into az's sign-in, and kubectl reaches a kube-apiserver that
trusts wid's tokens for AKS's server app as an Entra-integrated AKS cluster does. az's flags for
flexible (claims-matching) federated credentials are tried too.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from conftest import AUD, KUBE_SH, REPO, Kube, Wid, running_kube

VAULT = "kv-az"  # its Azure name is listed in tests/e2e/hosts.py
# AKS's Entra server app: the audience of the tokens kubelogin gets for the cluster.
AKS_SERVER_APP = "6dae42f8-4368-4678-94ff-3960e28e3630"


@pytest.fixture(scope="module")
def az_bin() -> Path:
    """az from PyPI in a venv of its own (scripts/az.sh: installed once per version)."""
    out = subprocess.run(["bash", str(REPO / "scripts" / "az.sh")], capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stderr
    return Path(out.stdout.strip())


@dataclass
class Az:
    bin: Path
    wid: Wid
    home: Path
    extra_path: tuple = ()

    def env(self, config: str = "admin") -> dict:
        path = [*map(str, self.extra_path), str(self.bin.parent), os.environ.get("PATH", "/usr/bin:/bin")]
        return {
            "PATH": os.pathsep.join(path),
            "HOME": str(self.home),
            "AZURE_CONFIG_DIR": str(self.home / f"azure-{config}"),
            "REQUESTS_CA_BUNDLE": str(self.wid.ca),
            "AZURE_CORE_COLLECT_TELEMETRY": "false",
        }

    def run(self, *args: str, config: str = "admin") -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin), *args], env=self.env(config), capture_output=True, text=True,
                              timeout=300)

    def __call__(self, *args: str, config: str = "admin") -> str:
        proc = self.run(*args, config=config)
        assert proc.returncode == 0, f"az {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
        return proc.stdout.strip()


@pytest.fixture(scope="module")
def kubelogin() -> Path:
    """kubelogin (module proxy, scripts/kube.sh tool kubelogin): az aks get-credentials converts AKS's
    kubeconfig to az's sign-in with it, and kubectl runs it for tokens."""
    out = subprocess.run(["bash", str(KUBE_SH), "tool", "kubelogin"], capture_output=True, text=True,
                         timeout=900, check=True)
    return Path(out.stdout.strip())


@pytest.fixture(scope="module")
def entra_kube(azure_wid: Wid, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    """A kube-apiserver that signs users in as an AKS cluster with Entra ID integration does: tokens
    of wid's tenant for AKS's server app, the user named by `oid`."""
    tenant = azure_wid.profile["tenantId"]
    flags = [f"--oidc-issuer-url={azure_wid.server}/{tenant}/", f"--oidc-client-id={AKS_SERVER_APP}",
             f"--oidc-ca-file={azure_wid.ca}", "--oidc-username-claim=oid", "--oidc-username-prefix=-"]
    with running_kube(tmp_path_factory.mktemp("entra-kube"), flags) as k:
        yield k


@dataclass
class Route:
    """How az reaches wid: Azure's own names (the default cloud, no az configuration) or a cloud
    registered with wid's URL (as users type it, with the trailing slash)."""

    name: str
    vault: str
    vault_url: str

    def setup(self, az: Az) -> None:
        if self.name == "registered":
            for config in ("admin", "workload"):
                az("cloud", "register", "--name", "wid", "--endpoint-resource-manager", f"{az.wid.server}/",
                   config=config)
                az("cloud", "set", "--name", "wid", config=config)


ROUTES = [
    Route("azure-names", VAULT, f"https://{VAULT}.vault.azure.net/"),
    Route("registered", "kv-reg", "https://kv-reg.vault.localhost/"),
]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_the_walkthrough_verbatim(route: Route, az_bin: Path, azure_wid: Wid, kubelogin: Path, entra_kube: Kube,
                                  tmp_path: Path):
    """The AKS walkthrough's az commands, verbatim and in order (names of the walkthrough's variables),
    as the admin signed in with its secret, then as the workload identity signed in with a token of
    the cluster's wid-hosted issuer; then `az aks get-credentials` + kubectl, and
    `az aks update --disable-workload-identity`."""
    az = Az(bin=az_bin, wid=azure_wid, home=tmp_path, extra_path=(kubelogin.parent,))
    route.setup(az)
    p = azure_wid.profile
    az("login", "--service-principal", "-u", p["clientId"], "-p", p["clientSecret"], "--tenant", p["tenantId"],
       "-o", "none")
    account = json.loads(az("account", "show", "-o", "json"))
    assert (account["tenantId"], account["id"]) == (p["tenantId"], p["subscriptionId"])
    assert account["environmentName"] == ("AzureCloud" if route.name == "azure-names" else "wid")
    assert account["user"] == {"name": p["clientId"], "type": "servicePrincipal"}

    rg, cluster, identity = f"myResourceGroup-{route.name}", "myAKSCluster", "myIdentity"
    sa, ns, vault = "workload-identity-sa", "default", route.vault
    az("group", "create", "--name", rg, "--location", "eastus", "-o", "none")
    az("aks", "create", "--resource-group", rg, "--name", cluster, "--enable-oidc-issuer",
       "--enable-workload-identity", "--generate-ssh-keys", "-o", "none")
    issuer = az("aks", "show", "--name", cluster, "--resource-group", rg, "--query",
                "oidcIssuerProfile.issuerUrl", "--output", "tsv")
    assert issuer.startswith("https://localhost/oidc/"), issuer
    az("identity", "create", "--name", identity, "--resource-group", rg, "--location", "eastus",
       "--subscription", p["subscriptionId"], "-o", "none")
    client_id = az("identity", "show", "--resource-group", rg, "--name", identity, "--query", "clientId",
                   "--output", "tsv")
    az("identity", "federated-credential", "create", "--name", "myFedIdentity", "--identity-name", identity,
       "--resource-group", rg, "--issuer", issuer, "--subject", f"system:serviceaccount:{ns}:{sa}",
       "--audience", AUD, "-o", "none")
    az("keyvault", "create", "--name", vault, "--resource-group", rg, "--location", "eastus",
       "--enable-purge-protection", "--enable-rbac-authorization", "-o", "none")
    vault_id = az("keyvault", "show", "--resource-group", rg, "--name", vault, "--query", "id", "--output", "tsv")
    vault_url = az("keyvault", "show", "--resource-group", rg, "--name", vault, "--query", "properties.vaultUri",
                   "--output", "tsv")
    assert vault_url == route.vault_url
    # Who am I (Graph /me: for a service principal, wid answers its service principal).
    me = az("ad", "signed-in-user", "show", "--query", "id", "-o", "tsv")
    assert me == p["principalId"]
    az("role", "assignment", "create", "--assignee", me, "--role", "Key Vault Secrets Officer", "--scope", vault_id,
       "-o", "none")
    az("keyvault", "secret", "set", "--vault-name", vault, "--name", "my-secret", "--value", "Hello!", "-o", "none")
    assert az("keyvault", "secret", "show", "--vault-name", vault, "--name", "my-secret", "--query", "value",
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
    # projected token), then reads the secret through its role on the vault. Its only roles are on
    # the vault, and the subscription is listed to it as Azure lists it (no --allow-no-subscriptions).
    token = azure_wid.tsv("aks", "get-token", "-n", cluster, "-g", rg, "--namespace", ns, "--service-account", sa,
                          "--query", "token")
    az("login", "--service-principal", "-u", client_id, "--tenant", p["tenantId"], "--federated-token", token,
       "-o", "none", config="workload")
    assert az("account", "show", "--query", "id", "-o", "tsv", config="workload") == p["subscriptionId"]
    assert az("keyvault", "secret", "show", "--vault-name", vault, "--name", "my-secret", "--query", "value",
              "-o", "tsv", config="workload") == "Hello!"
    refused = az.run("keyvault", "secret", "set", "--vault-name", vault, "--name", "my-secret", "--value", "x",
                     config="workload")
    assert refused.returncode != 0 and "ForbiddenByRbac" in refused.stderr, refused.stderr

    # az aks get-credentials: the registration names the cluster's API server (on AKS, AKS knows it),
    # az writes AKS's Entra kubeconfig and converts it to its own sign-in with kubelogin; kubectl
    # then reaches the API server as the signed-in principal (its object id), whom RBAC governs.
    azure_wid.cli("aks", "update", "-n", cluster, "-g", rg, "--api-server", entra_kube.server,
                  "--api-server-ca-file", str(entra_kube.ca), "-o", "none")
    az("aks", "get-credentials", "--name", cluster, "--resource-group", rg)
    kubeconfig = yaml.safe_load((tmp_path / ".kube" / "config").read_text())
    user = kubeconfig["users"][0]["user"]["exec"]
    assert (user["command"], user["args"][user["args"].index("--login") + 1]) == ("kubelogin", "azurecli"), user
    kubectl = [entra_kube.kubectl_bin, "get", "ns", "-o", "name"]
    entra_kube.kubectl("delete", "clusterrolebinding", "az-admin", "--ignore-not-found")  # the other route's
    denied = run_until(lambda: subprocess.run(kubectl, env=az.env(), capture_output=True, text=True, timeout=120),
                       lambda r: "Forbidden" in r.stderr)
    assert f'User "{p["principalId"]}" cannot list resource "namespaces"' in denied.stderr, denied.stderr
    # (A role of its own: the built-in `view` is aggregated by kube-controller-manager, not run here.)
    if "namespace-reader" not in entra_kube.kubectl("get", "clusterroles", "-o", "name"):
        entra_kube.kubectl("create", "clusterrole", "namespace-reader", "--verb=get,list", "--resource=namespaces")
    entra_kube.kubectl("create", "clusterrolebinding", "az-admin", "--clusterrole=namespace-reader",
                       f"--user={p['principalId']}")
    listed = run_until(lambda: subprocess.run(kubectl, env=az.env(), capture_output=True, text=True, timeout=120),
                       lambda r: r.returncode == 0)
    assert "namespace/default" in listed.stdout.split(), listed.stdout

    # az aks update round-trips what az aks create sent.
    az("aks", "update", "--resource-group", rg, "--name", cluster, "--disable-workload-identity", "-o", "none")
    shown = json.loads(az("aks", "show", "--resource-group", rg, "--name", cluster, "-o", "json"))
    assert shown["securityProfile"]["workloadIdentity"]["enabled"] is False, shown["securityProfile"]
    assert shown["agentPoolProfiles"][0]["name"] == "nodepool1", shown["agentPoolProfiles"]
    assert shown["oidcIssuerProfile"]["issuerUrl"] == issuer


def run_until(attempt, done, seconds: float = 30):
    """Repeats `attempt` until `done(result)` (the apiserver reads wid's OIDC discovery in the background
    after it starts); returns the last result."""
    deadline = time.monotonic() + seconds
    while True:
        result = attempt()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(1)


def test_a_registered_cloud_without_the_trailing_slash(az_bin: Path, azure_wid: Wid, tmp_path: Path):
    """The walkthrough above registers wid's URL with the trailing slash users type; without it, az
    asks for the same metadata and reaches the same endpoints."""
    az = Az(bin=az_bin, wid=azure_wid, home=tmp_path)
    az("cloud", "register", "--name", "wid", "--endpoint-resource-manager", azure_wid.server)
    az("cloud", "set", "--name", "wid")
    p = azure_wid.profile
    az("login", "--service-principal", "-u", p["clientId"], "-p", p["clientSecret"], "--tenant", p["tenantId"],
       "-o", "none")
    account = json.loads(az("account", "show", "-o", "json"))
    assert (account["environmentName"], account["id"]) == ("wid", p["subscriptionId"])
    assert az("ad", "signed-in-user", "show", "--query", "id", "-o", "tsv") == p["principalId"]
    az("group", "create", "--name", "rg-cloud", "--location", "eastus", "-o", "none")
    assert az("group", "show", "--name", "rg-cloud", "--query", "name", "-o", "tsv") == "rg-cloud"


def test_a_claims_matching_credential_through_az(az_bin: Path, azure_wid: Wid, tmp_path: Path):
    """az's flags for flexible credentials (api-version 2025-01-31-preview) create a claims-matching
    credential on wid, for a Kubernetes issuer (Entra would refuse that issuer); az shows it back;
    a subject together with an expression is refused in ARM's format."""
    az = Az(bin=az_bin, wid=azure_wid, home=tmp_path)
    p = azure_wid.profile
    az("login", "--service-principal", "-u", p["clientId"], "-p", p["clientSecret"], "--tenant", p["tenantId"],
       "-o", "none")
    az("group", "create", "--name", "rg-cme", "--location", "eastus", "-o", "none")
    az("identity", "create", "--name", "id-cme", "--resource-group", "rg-cme", "-o", "none")
    expression = ("claims['sub'] matches 'system:serviceaccount:apps:*' and "
                  "claims['kubernetes.io']['namespace'] eq 'apps'")
    created = json.loads(az("identity", "federated-credential", "create", "--name", "apps-any", "--identity-name",
                            "id-cme", "--resource-group", "rg-cme", "--issuer", "https://cluster.example/issuer/",
                            "--claims-matching-expression-value", expression,
                            "--claims-matching-expression-version", "1", "-o", "json"))
    assert created["claimsMatchingExpression"] == {"value": expression, "languageVersion": 1}, created
    assert created.get("subject") is None and created["audiences"] == [AUD], created
    shown = json.loads(az("identity", "federated-credential", "show", "--name", "apps-any", "--identity-name",
                          "id-cme", "--resource-group", "rg-cme", "-o", "json"))
    assert shown["claimsMatchingExpression"]["value"] == expression
    refused = az.run("identity", "federated-credential", "create", "--name", "both", "--identity-name", "id-cme",
                     "--resource-group", "rg-cme", "--issuer", "https://cluster.example/issuer/", "--subject", "s",
                     "--claims-matching-expression-value", expression, "--claims-matching-expression-version", "1")
    assert refused.returncode != 0 and "Exactly one of subject and claimsMatchingExpression" in refused.stderr, \
        refused.stderr
    bad = az.run("identity", "federated-credential", "create", "--name", "bad", "--identity-name", "id-cme",
                 "--resource-group", "rg-cme", "--issuer", "https://cluster.example/issuer/",
                 "--claims-matching-expression-value", "claims['sub'] == 'x'",
                 "--claims-matching-expression-version", "1")
    assert bad.returncode != 0 and "expected ' eq ' or ' matches '" in bad.stderr, bad.stderr
