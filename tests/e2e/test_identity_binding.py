"""Identity bindings through the token proxy, decided by the cluster's own Kubernetes RBAC.

The real kube-apiserver of the suite is the cluster (registered with wid by its issuer and its API
server); the identity is bound to it (`managedClusters/identityBindings`); pods reach wid's token
proxy through azure-identity's `WorkloadIdentityCredential(enable_azure_proxy=True)`, unmodified,
with the variables AKS's webhook injects (`AZURE_KUBERNETES_TOKEN_PROXY`, `…_SNI_NAME`,
`…_CA_FILE`) and a TokenRequest token for `api://AKSIdentityBinding`. wid asks the API server, with
the pod's own token, whether the service account may `use-managed-identity` on
`cid.wi.aks.azure.com/<client id>`: a ClusterRole + RoleBinding allows, removing the binding denies
at once, another service account is denied.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import Kube, Wid, start_wid, stop_process

BINDING_AUDIENCE = "api://AKSIdentityBinding"
SA = "bound-sa"

SCRIPT = """
import json, sys
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import WorkloadIdentityCredential
try:
    token = WorkloadIdentityCredential(enable_azure_proxy=True).get_token(sys.argv[1])
    print(json.dumps({"token": token.token}))
except ClientAuthenticationError as e:
    print(json.dumps({"error": str(e)}))
"""


def arm(wid: Wid, method: str, path: str, body: dict) -> tuple[int, dict]:
    """One management call as the admin of the profile."""
    ctx = ssl.create_default_context(cafile=str(wid.ca))
    p = wid.profile
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": p["clientId"],
                                   "client_secret": p["clientSecret"], "scope": f"{wid.server}/.default"}).encode()
    with urllib.request.urlopen(f"{wid.server}/{p['tenantId']}/oauth2/v2.0/token", form, context=ctx) as r:
        token = json.load(r)["access_token"]
    req = urllib.request.Request(f"{wid.server}{path}", json.dumps(body).encode(), method=method,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.fixture(scope="module")
def wid(kube: Kube, tmp_path_factory: pytest.TempPathFactory):
    """A `wid serve` of its own: the suite's shared one registers the same cluster issuer elsewhere,
    and an issuer belongs to one cluster registration."""
    root = tmp_path_factory.mktemp("ib-wid")
    w = start_wid(root, ["--data-dir", str(root / "data"), "--listen", "127.0.0.1:0", "--host", "localhost",
                         "--issuer-ca-file", str(kube.ca)])
    try:
        yield w
    finally:
        stop_process(w.proc)


@pytest.fixture(scope="module")
def bound(kube: Kube, wid: Wid):
    ns = kube.namespace("ib")
    wid.cli("group", "create", "-n", "rg-ib", "-l", "eastus", "-o", "none")
    wid.cli("identity", "create", "-n", "id-ib", "-g", "rg-ib", "-o", "none")
    client_id = wid.tsv("identity", "show", "-n", "id-ib", "-g", "rg-ib", "--query", "clientId")
    identity_id = wid.tsv("identity", "show", "-n", "id-ib", "-g", "rg-ib", "--query", "id")
    wid.cli("aks", "create", "-n", "kube-ib", "-g", "rg-ib", "--issuer-url", kube.issuer, "-o", "none")
    wid.cli("aks", "update", "-n", "kube-ib", "-g", "rg-ib", "--api-server", kube.server, "--api-server-ca-file",
            str(kube.ca), "-o", "none")
    sub = wid.profile["subscriptionId"]
    path = (f"/subscriptions/{sub}/resourceGroups/rg-ib/providers/Microsoft.ContainerService/managedClusters/"
            f"kube-ib/identityBindings/web?api-version=2026-06-01")
    status, body = arm(wid, "PUT", path, {"properties": {"managedIdentity": {"resourceId": identity_id}}})
    assert status == 201, body
    for sa in (SA, "other-sa"):
        kube.service_account(ns, sa, {"azure.workload.identity/client-id": client_id})
    return ns, client_id


def get_token(wid: Wid, kube: Kube, ns: str, sa: str, client_id: str, tmp_path: Path,
              audience: str = BINDING_AUDIENCE) -> dict:
    token_file = tmp_path / f"{sa}-token"
    token_file.write_text(kube.token_request(ns, sa, audience=audience))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "MSAL_"))}
    env.update({
        "AZURE_CLIENT_ID": client_id,
        "AZURE_TENANT_ID": wid.tenant,
        "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
        "AZURE_AUTHORITY_HOST": wid.server,
        # What AKS's webhook injects for a pod that uses an identity binding, naming wid's proxy.
        "AZURE_KUBERNETES_TOKEN_PROXY": f"{wid.server}/identitybinding",
        "AZURE_KUBERNETES_SNI_NAME": "localhost",
        "AZURE_KUBERNETES_CA_FILE": str(wid.ca),
    })
    python = os.environ.get("E2E_PYTHON", sys.executable)
    out = subprocess.run([python, "-c", SCRIPT, f"{wid.server}/.default"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def until(attempt, done, seconds: float = 10):
    deadline = time.monotonic() + seconds
    while True:
        result = attempt()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def test_kubernetes_rbac_decides(kube: Kube, wid: Wid, bound, tmp_path: Path):
    ns, client_id = bound
    # No RBAC yet: refused, and the refusal says what would grant it.
    denied = get_token(wid, kube, ns, SA, client_id, tmp_path)
    assert "AADSTS50105" in denied.get("error", ""), denied
    assert f"system:serviceaccount:{ns}:{SA}" in denied["error"] and "use-managed-identity" in denied["error"]
    assert "apiGroups [cid.wi.aks.azure.com]" in denied["error"], denied

    # The ClusterRole of AKS's documentation (kubectl create clusterrole refuses a resource the API
    # server does not serve).
    kube.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                 "metadata": {"name": f"use-{client_id}"},
                 "rules": [{"verbs": ["use-managed-identity"], "apiGroups": ["cid.wi.aks.azure.com"],
                            "resources": [client_id]}]})
    kube.kubectl("create", "rolebinding", "use-web", "-n", ns, f"--clusterrole=use-{client_id}",
                 f"--serviceaccount={ns}:{SA}")
    allowed = until(lambda: get_token(wid, kube, ns, SA, client_id, tmp_path), lambda r: "token" in r)
    assert "token" in allowed, allowed
    # Another service account of the namespace: not in the RoleBinding.
    other = get_token(wid, kube, ns, "other-sa", client_id, tmp_path)
    assert "AADSTS50105" in other.get("error", ""), other

    # Removing the RoleBinding denies at once (the API server is asked on every request).
    kube.kubectl("delete", "rolebinding", "use-web", "-n", ns)
    again = until(lambda: get_token(wid, kube, ns, SA, client_id, tmp_path), lambda r: "error" in r)
    assert "AADSTS50105" in again.get("error", ""), again


def test_a_token_for_another_audience_is_refused(kube: Kube, wid: Wid, bound, tmp_path: Path):
    ns, client_id = bound
    refused = get_token(wid, kube, ns, SA, client_id, tmp_path, audience="api://AzureADTokenExchange")
    assert "AADSTS700212" in refused.get("error", "") and BINDING_AUDIENCE in refused["error"], refused
