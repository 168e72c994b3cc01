"""The keyless flow end to end with a real cluster issuer: the apiserver's TokenRequest token for a
ServiceAccount annotated with an identity's client id is exchanged at `wid serve`, which knows the
cluster only by its issuer URL (`wid aks create --issuer-url`, no JWKS upload) and fetches the
discovery document and JWKS from the apiserver, trusting its CA through `--issuer-ca-file`. The
seed's Python application (tests/sdk/python/seed004_app.py, unchanged) then reads a Key Vault secret
with the environment the webhook injected into the stored pod.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import AUD, REPO, Kube, Webhook, Wid, http_get

SEED_APP = REPO / "tests" / "sdk" / "python" / "seed004_app.py"
VAULT = "kv-e2e"  # listed in tests/e2e/hosts.py
SECRET = "my-secret"
VALUE = "Hello!"
SA = "workload-identity-sa"

# Variables that could steer azure-identity or TLS trust; none may leak into the application.
_LEAKY_PREFIXES = ("AZURE_", "IDENTITY_", "MSI_", "IMDS_", "MSAL_")
_LEAKY_NAMES = {"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTP_PROXY",
                "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"}


@dataclass
class Flow:
    ns: str
    client_id: str
    vault_url: str
    pod: dict


@pytest.fixture(scope="module")
def flow(kube: Kube, wid: Wid, webhook: Webhook) -> Flow:
    ns = kube.namespace("flow")
    wid.cli("group", "create", "-n", "rg-e2e", "-l", "eastus", "-o", "none")
    wid.cli("identity", "create", "-n", "id-e2e", "-g", "rg-e2e", "-o", "none")
    client_id = wid.tsv("identity", "show", "-n", "id-e2e", "-g", "rg-e2e", "--query", "clientId")
    principal_id = wid.tsv("identity", "show", "-n", "id-e2e", "-g", "rg-e2e", "--query", "principalId")
    # The real cluster, by its issuer only: wid fetches its keys.
    wid.cli("aks", "create", "-n", "kube-e2e", "-g", "rg-e2e", "--issuer-url", kube.issuer, "-o", "none")
    issuer = wid.tsv("aks", "show", "-n", "kube-e2e", "-g", "rg-e2e", "--query", "oidcIssuerProfile.issuerUrl")
    assert issuer == kube.issuer
    wid.cli(
        "identity", "federated-credential", "create", "--name", "fic-e2e", "--identity-name", "id-e2e",
        "-g", "rg-e2e", "--issuer", issuer, "--subject", f"system:serviceaccount:{ns}:{SA}",
        "--audience", AUD, "-o", "none",
    )
    wid.cli(
        "keyvault", "create", "-n", VAULT, "-g", "rg-e2e", "-l", "eastus", "--enable-rbac-authorization",
        "--enable-purge-protection", "-o", "none",
    )
    vault_id = wid.tsv("keyvault", "show", "-n", VAULT, "-g", "rg-e2e", "--query", "id")
    me = wid.tsv("ad", "signed-in-user", "show", "--query", "id")
    wid.cli("role", "assignment", "create", "--assignee", me, "--role", "Key Vault Secrets Officer",
            "--scope", vault_id, "-o", "none")
    wid.cli("keyvault", "secret", "set", "--vault-name", VAULT, "--name", SECRET, "--value", VALUE, "-o", "none")
    wid.cli("role", "assignment", "create", "--assignee-object-id", principal_id, "--role",
            "Key Vault Secrets User", "--scope", vault_id, "--assignee-principal-type", "ServicePrincipal",
            "-o", "none")
    vault_url = wid.tsv("keyvault", "show", "-n", VAULT, "-g", "rg-e2e", "--query", "properties.vaultUri")

    kube.service_account(ns, SA, {"azure.workload.identity/client-id": client_id})
    kube.service_account(ns, "no-credential", {"azure.workload.identity/client-id": client_id})
    pod = kube.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "sample-workload-identity-key-vault", "namespace": ns,
                         "labels": {"azure.workload.identity/use": "true"}},
            "spec": {
                "serviceAccountName": SA,
                "automountServiceAccountToken": False,
                "containers": [{
                    "name": "oidc",
                    "image": "registry.invalid/seed004-app:1",
                    "env": [{"name": "KEYVAULT_URL", "value": vault_url}, {"name": "SECRET_NAME", "value": SECRET}],
                }],
                "nodeSelector": {"kubernetes.io/os": "linux"},
            },
        }
    )
    return Flow(ns=ns, client_id=client_id, vault_url=vault_url, pod=pod)


def projected_token_source(pod: dict) -> dict:
    (source,) = [
        s["serviceAccountToken"]
        for v in pod["spec"]["volumes"] if "projected" in v
        for s in v["projected"]["sources"] if "serviceAccountToken" in s
    ]
    return source


def run_app(wid: Wid, container_env: dict, token_file: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """Runs the seed's application with the container's environment, as the pod would."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.upper().startswith(_LEAKY_PREFIXES) and k.upper() not in _LEAKY_NAMES
    }
    env.update(container_env)
    # Where kubelet would have projected the token; the file holds the TokenRequest token.
    env["AZURE_FEDERATED_TOKEN_FILE"] = str(token_file)
    env.update({"HOME": str(tmp_path), "REQUESTS_CA_BUNDLE": str(wid.ca), "SSL_CERT_FILE": str(wid.ca)})
    python = os.environ.get("E2E_PYTHON", sys.executable)
    return subprocess.run([python, str(SEED_APP)], env=env, capture_output=True, text=True, timeout=120)


def container_env(pod: dict) -> dict:
    (c,) = pod["spec"]["containers"]
    return {e["name"]: e["value"] for e in c["env"]}


def test_issuer_discovery_is_public(kube: Kube):
    status, body = http_get(f"{kube.issuer}/.well-known/openid-configuration", kube.ca)
    assert status == 200
    doc = json.loads(body)
    assert doc["issuer"] == kube.issuer
    assert doc["jwks_uri"] == f"{kube.issuer}/openid/v1/jwks"
    status, body = http_get(doc["jwks_uri"], kube.ca)
    assert status == 200 and json.loads(body)["keys"]


def test_seed_app_reads_the_secret_with_a_real_service_account_token(kube: Kube, wid: Wid, flow: Flow,
                                                                     tmp_path: Path):
    env = container_env(flow.pod)
    assert env["AZURE_CLIENT_ID"] == flow.client_id
    assert env["AZURE_TENANT_ID"] == wid.tenant
    assert env["AZURE_AUTHORITY_HOST"] == wid.server + "/"
    source = projected_token_source(flow.pod)
    # What kubelet requests for the projected volume: its audience and lifetime, bound to the pod.
    token = kube.token_request(flow.ns, SA, source["audience"], source["expirationSeconds"], pod=flow.pod)
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(token)
    proc = run_app(wid, env, token_file, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == VALUE


def test_token_of_another_service_account_is_refused(kube: Kube, wid: Wid, flow: Flow, tmp_path: Path):
    # Same client id annotation, but no federated credential names this subject.
    token_file = tmp_path / "token"
    token_file.write_text(kube.token_request(flow.ns, "no-credential"))
    proc = run_app(wid, container_env(flow.pod), token_file, tmp_path)
    assert proc.returncode != 0
    assert "AADSTS" in proc.stderr + proc.stdout, proc.stderr[-3000:]


def test_token_for_another_audience_is_refused(kube: Kube, wid: Wid, flow: Flow, tmp_path: Path):
    token_file = tmp_path / "token"
    token_file.write_text(kube.token_request(flow.ns, SA, audience="https://kubernetes.default.svc"))
    proc = run_app(wid, container_env(flow.pod), token_file, tmp_path)
    assert proc.returncode != 0
    assert "AADSTS" in proc.stderr + proc.stdout, proc.stderr[-3000:]


def exchange(wid: Wid, client_id: str, assertion: str) -> tuple[int, dict]:
    """The raw client-credentials exchange every SDK performs."""
    body = urllib.parse.urlencode({
        "client_id": client_id,
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
        "scope": f"{wid.profile['keyVaultResource']}/.default",
    }).encode()
    req = urllib.request.Request(f"{wid.server}/{wid.tenant}/oauth2/v2.0/token", data=body, method="POST")
    ctx = ssl.create_default_context(cafile=str(wid.ca))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
    try:
        with opener.open(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_token_exchange_at_the_wire(kube: Kube, wid: Wid, flow: Flow):
    status, answer = exchange(wid, flow.client_id, kube.token_request(flow.ns, SA))
    assert status == 200, answer
    assert answer["token_type"] == "Bearer"
    assert answer["access_token"].count(".") == 2
    assert int(answer["expires_in"]) > 0


def test_unmatched_subject_is_refused_with_a_reason(kube: Kube, wid: Wid, flow: Flow):
    # A valid token of the cluster, for a subject no credential of the identity names.
    other = kube.namespace("flow-other")
    kube.service_account(other, SA)
    status, err = exchange(wid, flow.client_id, kube.token_request(other, SA))
    assert status in (400, 401), err
    assert err["error"] in ("invalid_client", "invalid_request", "unauthorized_client"), err
    assert "AADSTS" in err["error_description"]
    # The description names what differs: the subject.
    assert f"system:serviceaccount:{other}:{SA}" in err["error_description"], err["error_description"]
