"""The Go, Java, JavaScript and Python Azure clients, unmodified, against wid with a real
service-account token.

Each client runs with only what a pod on AKS has: the webhook's four variables (AZURE_CLIENT_ID,
AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE holding a TokenRequest token of the real apiserver,
AZURE_AUTHORITY_HOST), the pod spec's KEYVAULT_URL and SECRET_NAME, and the platform's trust of
wid's CA (SSL_CERT_FILE for Go, the JVM's trust store through JAVA_TOOL_OPTIONS for Java,
NODE_EXTRA_CA_CERTS for Node.js, REQUESTS_CA_BUNDLE for Python: what `wid webhook
--ca-bundle-configmap` injects, plus the JVM's).

Go's, Java's and Node's MSAL ask Azure's sign-in host for instance discovery whatever their authority
(and no environment variable turns that off), so the clients talk to conftest's `azure_wid`: `wid
serve --azure-hostnames` on port 443 of 127.0.0.1, where tests/e2e/hosts.py sends Azure's names. Three
environments are tried: wid's own URL as authority (`https://localhost/`, what `wid webhook
--authority-host` injects) with wid's vault URL; AKS's default authority
`https://login.microsoftonline.com/` (what the webhook injects without it) with wid's vault URL; and
that authority with the vault's Azure URL `https://kv-clients.vault.azure.net/` — exactly a pod's
environment on AKS.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import AUD, REPO, Kube, Wid

VAULT = "kv-clients"  # listed in tests/e2e/hosts.py
SECRET = "my-secret"
VALUE = "Hello!"
SA = "workload-identity-sa"
PAGE = 25  # Key Vault's page of secrets
CLIENTS = REPO / "tests" / "clients"
CACHE = Path(os.environ.get("WID_CACHE", Path.home() / ".cache" / "wid"))
# What a pod is given: the authority, and whether its vault URL is Azure's name for the vault.
ENVIRONMENTS = {
    "wid": ("https://localhost/", False),
    "aks-authority": ("https://login.microsoftonline.com/", False),
    "aks": ("https://login.microsoftonline.com/", True),
}

# What could steer the clients besides the pod's environment; none of it is passed on.
_LEAKY_PREFIXES = ("AZURE_", "IDENTITY_", "MSI_", "IMDS_", "MSAL_", "JAVA_", "JDK_", "_JAVA", "NODE_")
_LEAKY_NAMES = {"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PYTHONPATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTP_PROXY",
                "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "GODEBUG"}


def go_bin() -> str:
    go = shutil.which("go") or "/usr/local/go/bin/go"
    assert os.access(go, os.X_OK), "the Go client tests need Go on the PATH (the machines have it)"
    return go


def go_env() -> dict:
    return {**os.environ, "GOMODCACHE": str(CACHE / "go" / "mod"), "GOCACHE": str(CACHE / "go" / "build"),
            "GOFLAGS": "-mod=readonly", "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}


@pytest.fixture(scope="module")
def go_clients() -> Path:
    """tests/clients/go built once per source (go.sum pins every module)."""
    src = CLIENTS / "go"
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(src.iterdir()) if p.is_file())).hexdigest()[:16]
    out = REPO / "target" / "e2e-clients" / f"wid-go-clients-{digest}"
    if not out.exists():
        proc = subprocess.run([go_bin(), "build", "-o", str(out), "."], cwd=src, env=go_env(),
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.fixture(scope="module")
def java_classpath() -> str:
    """tests/clients/java compiled with Maven (its repository cached under ~/.cache/wid/m2)."""
    src = CLIENTS / "java"
    mvn = shutil.which("mvn")
    assert mvn, "the Java client tests need Maven on the PATH (the machines have it)"
    proc = subprocess.run(
        [mvn, "-q", "-B", f"-Dmaven.repo.local={CACHE / 'm2'}", "compile", "dependency:build-classpath",
         "-Dmdep.outputFile=target/classpath.txt"],
        cwd=src, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return f"{src / 'target' / 'classes'}:{(src / 'target' / 'classpath.txt').read_text().strip()}"


@pytest.fixture(scope="module")
def js_clients() -> Path:
    """tests/clients/js with its locked dependencies (npm's cache under ~/.cache/wid/npm)."""
    src = CLIENTS / "js"
    npm = shutil.which("npm")
    assert npm, "the JavaScript client tests need npm on the PATH (the machines have it)"
    proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--cache", str(CACHE / "npm")], cwd=src,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return src / "clients.mjs"


@dataclass
class Setup:
    wid: Wid
    ns: str
    client_id: str
    vault_url: str
    token_file: Path
    truststore: Path


@pytest.fixture(scope="module")
def setup(kube: Kube, azure_wid: Wid, tmp_path_factory: pytest.TempPathFactory) -> Setup:
    root = tmp_path_factory.mktemp("clients")
    w = azure_wid
    ns = kube.namespace("clients")
    w.cli("group", "create", "-n", "rg", "-l", "eastus", "-o", "none")
    w.cli("identity", "create", "-n", "id-clients", "-g", "rg", "-o", "none")
    client_id = w.tsv("identity", "show", "-n", "id-clients", "-g", "rg", "--query", "clientId")
    principal_id = w.tsv("identity", "show", "-n", "id-clients", "-g", "rg", "--query", "principalId")
    w.cli("identity", "federated-credential", "create", "--name", "fic", "--identity-name", "id-clients", "-g", "rg",
          "--issuer", kube.issuer, "--subject", f"system:serviceaccount:{ns}:{SA}", "--audience", AUD,
          "-o", "none")
    w.cli("keyvault", "create", "-n", VAULT, "-g", "rg", "-l", "eastus", "--enable-rbac-authorization", "-o", "none")
    vault_id = w.tsv("keyvault", "show", "-n", VAULT, "-g", "rg", "--query", "id")
    me = w.tsv("ad", "signed-in-user", "show", "--query", "id")
    w.cli("role", "assignment", "create", "--assignee", me, "--role", "Key Vault Secrets Officer",
          "--scope", vault_id, "-o", "none")
    w.cli("keyvault", "secret", "set", "--vault-name", VAULT, "--name", SECRET, "--value", VALUE, "-o", "none")
    # More than a page (Key Vault's 25), so that listing pages.
    for i in range(PAGE + 1):
        w.cli("keyvault", "secret", "set", "--vault-name", VAULT, "--name", f"filler-{i}", "--value", "x", "-o", "none")
    # Officer, not User: the round trips write too. The ForbiddenByRbac test removes it.
    w.cli("role", "assignment", "create", "--assignee-object-id", principal_id, "--role",
          "Key Vault Secrets Officer", "--scope", vault_id, "--assignee-principal-type", "ServicePrincipal",
          "-o", "none")
    vault_url = w.tsv("keyvault", "show", "-n", VAULT, "-g", "rg", "--query", "properties.vaultUri")
    assert vault_url == f"https://{VAULT}.vault.localhost/"
    kube.service_account(ns, SA, {"azure.workload.identity/client-id": client_id})
    token_file = root / "azure-identity-token"
    token_file.write_text(kube.token_request(ns, SA))

    truststore = root / "truststore.p12"
    subprocess.run(["keytool", "-importcert", "-noprompt", "-alias", "wid", "-file", str(w.ca), "-keystore",
                    str(truststore), "-storetype", "PKCS12", "-storepass", "changeit"],
                   check=True, capture_output=True, timeout=60)
    return Setup(wid=w, ns=ns, client_id=client_id, vault_url=vault_url, token_file=token_file,
                truststore=truststore)


def pod_env(s: Setup, environment: str, secret: str = SECRET, **extra: str) -> dict:
    authority, azure_vault = ENVIRONMENTS[environment]
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(_LEAKY_PREFIXES) and k.upper() not in _LEAKY_NAMES}
    env.update({
        "AZURE_CLIENT_ID": s.client_id,
        "AZURE_TENANT_ID": s.wid.tenant,
        "AZURE_FEDERATED_TOKEN_FILE": str(s.token_file),
        "AZURE_AUTHORITY_HOST": authority,
        "KEYVAULT_URL": f"https://{VAULT}.vault.azure.net/" if azure_vault else s.vault_url,
        "SECRET_NAME": secret,
        "SSL_CERT_FILE": str(s.wid.ca),
        "JAVA_TOOL_OPTIONS": f"-Djavax.net.ssl.trustStore={s.truststore} -Djavax.net.ssl.trustStorePassword=changeit",
        "NODE_EXTRA_CA_CERTS": str(s.wid.ca),
        "REQUESTS_CA_BUNDLE": str(s.wid.ca),
    })
    env.update(extra)
    return env


def run(cmd: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_go_walkthrough_program_gets_the_secret(setup: Setup, go_clients: Path, environment: str):
    """The walkthrough's verification program: msal-go with the token file as its assertion."""
    proc = run([str(go_clients), "walkthrough"], pod_env(setup, environment))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f'successfully got secret, secret="{VALUE}"\n'


@pytest.mark.parametrize("credential", ["workload", "default"])
@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_go_azidentity_and_azsecrets_round_trip(setup: Setup, go_clients: Path, environment: str, credential: str):
    name = f"go-{credential}-{environment}"
    proc = run([str(go_clients), "secrets", credential], pod_env(setup, environment, secret=name))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = {line["step"]: line["result"] for line in map(json.loads, proc.stdout.splitlines())}
    assert steps["get"] == ["second", "first"]
    assert sorted(steps["versions"]) == sorted(steps["set"])
    assert SECRET in steps["list"]["names"] and name in steps["list"]["names"]
    assert f"filler-{PAGE}" in steps["list"]["names"] and steps["list"]["pages"] >= 2, steps["list"]
    assert steps["get-after-delete"] == "SecretNotFound"
    vault_url = pod_env(setup, environment)["KEYVAULT_URL"]
    assert steps["delete"] == f"{vault_url}deletedsecrets/{name}"
    assert steps["recovered"] == "second"


@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_java_default_azure_credential_round_trip(setup: Setup, java_classpath: str, environment: str):
    env = pod_env(setup, environment)
    proc = run(["java", "-cp", java_classpath, "wid.Clients", "get", "default"], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f'successfully got secret, secret="{VALUE}"' in proc.stdout

    env["SECRET_NAME"] = f"java-{environment}"
    proc = run(["java", "-cp", java_classpath, "wid.Clients", "roundtrip", "workload"], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " got second latest second" in proc.stdout, proc.stdout


@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_js_default_azure_credential_round_trip(setup: Setup, js_clients: Path, environment: str):
    env = pod_env(setup, environment)
    proc = run(["node", str(js_clients), "get", "default"], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == f'successfully got secret, secret="{VALUE}"\n'

    env["SECRET_NAME"] = f"js-{environment}"
    proc = run(["node", str(js_clients), "roundtrip", "workload"], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.endswith(" got second\n"), proc.stdout


@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_python_seed_app_gets_the_secret(setup: Setup, environment: str, tmp_path: Path):
    """The seed's Python application (azure-identity's DefaultAzureCredential, SecretClient)."""
    env = {**pod_env(setup, environment), "HOME": str(tmp_path)}
    python = os.environ.get("E2E_PYTHON", sys.executable)
    proc = run([python, str(REPO / "tests" / "sdk" / "python" / "seed004_app.py")], env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == VALUE


def test_aadsts_errors_surface_with_their_codes(setup: Setup, go_clients: Path):
    """Entra's refusals reach the Go caller with their AADSTS codes."""
    unknown_client = pod_env(setup, "wid", AZURE_CLIENT_ID="00000000-0000-0000-0000-00000000dead")
    proc = run([str(go_clients), "token", "workload"], unknown_client)
    assert proc.returncode == 1 and "AADSTS700016" in proc.stderr, proc.stderr

    unknown_tenant = pod_env(setup, "wid", AZURE_TENANT_ID="00000000-0000-0000-0000-00000000beef")
    proc = run([str(go_clients), "walkthrough"], unknown_tenant)
    assert proc.returncode == 1 and "AADSTS90002" in proc.stderr, proc.stderr


def test_without_the_role_the_clients_report_forbidden_by_rbac(setup: Setup, go_clients: Path,
                                                                java_classpath: str, js_clients: Path):
    """Runs last in this module: it removes the identity's role on the vault."""
    w = setup.wid
    principal_id = w.tsv("identity", "show", "-n", "id-clients", "-g", "rg", "--query", "principalId")
    vault_id = w.tsv("keyvault", "show", "-n", VAULT, "-g", "rg", "--query", "id")
    w.cli("role", "assignment", "delete", "--assignee", principal_id, "--role", "Key Vault Secrets Officer",
          "--scope", vault_id)

    proc = run([str(go_clients), "walkthrough"], pod_env(setup, "aks"))
    assert proc.returncode == 1, proc.stdout
    assert "ForbiddenByRbac" in proc.stderr, proc.stderr

    proc = run(["java", "-cp", java_classpath, "wid.Clients", "get", "default"], pod_env(setup, "wid"))
    assert proc.returncode == 1, proc.stdout
    assert "ForbiddenByRbac" in proc.stderr, proc.stderr

    proc = run(["node", str(js_clients), "get", "default"], pod_env(setup, "wid"))
    assert proc.returncode == 1, proc.stdout
    assert proc.stderr.startswith("Forbidden: ") and "ForbiddenByRbac" in proc.stderr, proc.stderr
