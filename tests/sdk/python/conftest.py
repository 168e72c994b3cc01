"""Fixtures for the Python SDK compatibility tests.

`wid`: one real `wid serve` per session (binary from `WID_BIN`, default `target/debug/wid`) in a temp
dir, set up through the CLI exactly as the walkthrough does with `az` (resource group, identity,
cluster with an OIDC issuer, federated credential for `system:serviceaccount:ns1:sa1`, a
service-account token from `aks get-token` in a file).

`refusal_setup`: the extra objects the negative cases need (a second cluster, a credential whose
issuer lacks the trailing slash, an upper-case subject, and a private issuer whose JWKS is uploaded
and whose key the tests hold, to forge expired or badly signed assertions).

`pod_env`: a per-test environment holding only what the workload-identity webhook gives a pod
(`AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_AUTHORITY_HOST`) plus
trust for wid's CA (`REQUESTS_CA_BUNDLE`, `SSL_CERT_FILE`); every other Azure-, identity-, proxy- or
CA-related variable of the surrounding environment is removed.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

REPO_ROOT = Path(__file__).resolve().parents[3]
AUD = "api://AzureADTokenExchange"
NS, SA = "ns1", "sa1"
SUBJECT = f"system:serviceaccount:{NS}:{SA}"
EXT_ISSUER = "https://private-issuer.example/cluster-1/"
EXT_SUBJECT = "system:serviceaccount:ext:app"
EXT_KID = "private-issuer-key-1"

START_TIMEOUT = 60.0
CLI_TIMEOUT = 60.0

# Variables that could steer azure-identity, azure-core/requests or TLS trust; none may leak in.
_LEAKY_PREFIXES = ("AZURE_", "IDENTITY_", "MSI_", "IMDS_", "MSAL_")
_LEAKY_NAMES = {
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_of(jwt: str) -> dict:
    """The payload of a compact JWS, not verified."""
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class CliError(AssertionError):
    pass


@dataclass
class Wid:
    """A running `wid serve` and the walkthrough's objects."""

    bin: Path
    root: Path
    proc: subprocess.Popen
    profile: dict
    ca: Path
    cli_env: dict
    client_id: str = ""
    principal_id: str = ""
    issuer: str = ""
    token_file: Path = Path()
    extra: dict = field(default_factory=dict)

    @property
    def server(self) -> str:
        return self.profile["server"]

    @property
    def tenant(self) -> str:
        return self.profile["tenantId"]

    @property
    def kv_resource(self) -> str:
        return self.profile["keyVaultResource"]

    @property
    def kv_scope(self) -> str:
        return f"{self.kv_resource}/.default"

    def cli(self, *args: str) -> str:
        """Runs `wid ARGS…` with the session's profile; returns stdout (unstripped)."""
        r = subprocess.run(
            [str(self.bin), *args],
            env=self.cli_env,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
        )
        if r.returncode != 0:
            raise CliError(f"wid {' '.join(args)} exited with {r.returncode}:\n{r.stderr}{r.stdout}")
        return r.stdout

    def sa_token(
        self,
        namespace: str = NS,
        service_account: str = SA,
        cluster: str = "c1",
        audience: Optional[str] = None,
        duration: Optional[str] = None,
    ) -> str:
        """`wid aks get-token` output, verbatim (the JWT and a newline)."""
        args = ["aks", "get-token", "-n", cluster, "-g", "rg1", "--namespace", namespace]
        args += ["--service-account", service_account]
        if audience:
            args += ["--audience", audience]
        if duration:
            args += ["--duration", duration]
        return self.cli(*args)

    def write_token(self, contents: str) -> Path:
        """Writes an assertion to a fresh file, as a projected token volume holds it."""
        path = self.root / "tokens" / f"{uuid.uuid4()}.jwt"
        path.parent.mkdir(exist_ok=True)
        path.write_text(contents, encoding="utf-8")
        return path


def _wid_bin() -> Path:
    configured = os.environ.get("WID_BIN")
    path = Path(configured) if configured else REPO_ROOT / "target" / "debug" / "wid"
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.is_file():
        pytest.exit(f"wid binary not found at {path}; build it (cargo build -p wid) or set WID_BIN", 4)
    return path


def _get(url: str, ca: Path) -> int:
    ctx = ssl.create_default_context(cafile=str(ca))
    # No proxies from the environment: the server is on loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
    try:
        with opener.open(url, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def _start(binary: Path, root: Path) -> Wid:
    data = root / "data"
    profile_path = root / "profile.json"
    cli_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root),
        "LANG": "C.UTF-8",
        "WID_CONFIG": str(profile_path),
    }
    log_path = root / "serve.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [str(binary), "serve", "--data-dir", str(data), "--listen", "127.0.0.1:0", "--host", "localhost"],
        env=cli_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    ca = data / "ca.pem"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"wid serve exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}")
        try:
            profile = json.loads(profile_path.read_text())
            if ca.is_file() and _get(f"{profile['server']}/readyz", ca) == 200:
                return Wid(bin=binary, root=root, proc=proc, profile=profile, ca=ca, cli_env=cli_env)
        except (OSError, ValueError, KeyError):
            pass  # not written yet, half written, or not listening yet
        if time.monotonic() > deadline:
            _stop(proc)
            raise RuntimeError(f"wid serve not ready after {START_TIMEOUT}s:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def wid(tmp_path_factory: pytest.TempPathFactory):
    w = _start(_wid_bin(), tmp_path_factory.mktemp("wid"))
    try:
        # The walkthrough (seed 003) with `az` replaced by `wid`.
        w.cli("group", "create", "-n", "rg1", "-l", "eastus", "-o", "none")
        w.cli("identity", "create", "-n", "id1", "-g", "rg1", "-o", "none")
        w.client_id = w.cli("identity", "show", "-n", "id1", "-g", "rg1", "--query", "clientId", "-o", "tsv").strip()
        w.principal_id = w.cli(
            "identity", "show", "-n", "id1", "-g", "rg1", "--query", "principalId", "-o", "tsv"
        ).strip()
        w.cli(
            "aks", "create", "-n", "c1", "-g", "rg1", "--enable-oidc-issuer", "--enable-workload-identity",
            "--generate-ssh-keys", "-o", "none",
        )
        w.issuer = w.cli("aks", "show", "-n", "c1", "-g", "rg1", "--query", "oidcIssuerProfile.issuerUrl", "-o", "tsv")
        w.issuer = w.issuer.strip()
        w.cli(
            "identity", "federated-credential", "create", "--name", "fic1", "--identity-name", "id1", "-g", "rg1",
            "--issuer", w.issuer, "--subject", SUBJECT, "--audience", AUD, "-o", "none",
        )
        # A projected token holds the bare JWT; the trailing-newline case is a test of its own.
        w.token_file = w.write_token(w.sa_token().strip())
        yield w
    finally:
        _stop(w.proc)


class PrivateIssuer:
    """An external cluster whose JWKS is uploaded to wid; the tests hold its key."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict:
        n = self.key.public_key().public_numbers()
        num = lambda i: b64url(i.to_bytes((i.bit_length() + 7) // 8, "big"))  # noqa: E731
        return {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": EXT_KID, "n": num(n.n), "e": num(n.e)}]}

    def claims(self, **overrides) -> dict:
        now = int(time.time())
        c = {"iss": EXT_ISSUER, "sub": EXT_SUBJECT, "aud": [AUD], "iat": now, "nbf": now, "exp": now + 3600}
        c.update(overrides)
        return c

    def sign(self, claims: dict, key: Optional[rsa.RSAPrivateKey] = None, kid: str = EXT_KID) -> str:
        header = {"alg": "RS256", "typ": "JWT", "kid": kid}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        sig = (key or self.key).sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(sig)}"


@pytest.fixture(scope="session")
def refusal_setup(wid: Wid) -> Wid:
    """Adds what the negative cases need; returns the same `Wid` with `extra` filled in."""
    # A second cluster: its tokens have another issuer.
    wid.cli("aks", "create", "-n", "c2", "-g", "rg1", "--enable-oidc-issuer", "--enable-workload-identity", "-o", "none")
    # A second identity whose credential names c1's issuer without the trailing slash.
    wid.cli("identity", "create", "-n", "id2", "-g", "rg1", "-o", "none")
    wid.extra["noslash_client_id"] = wid.cli(
        "identity", "show", "-n", "id2", "-g", "rg1", "--query", "clientId", "-o", "tsv"
    ).strip()
    wid.cli(
        "identity", "federated-credential", "create", "--name", "noslash", "--identity-name", "id2", "-g", "rg1",
        "--issuer", wid.issuer.rstrip("/"), "--subject", SUBJECT, "--audience", AUD, "-o", "none",
    )
    # Kubernetes names are lower-case, so the credential carries the upper-case subject.
    wid.cli(
        "identity", "federated-credential", "create", "--name", "uppercase", "--identity-name", "id1", "-g", "rg1",
        "--issuer", wid.issuer, "--subject", "system:serviceaccount:NS2:sa2", "--audience", AUD, "-o", "none",
    )
    # A private cluster with an uploaded JWKS.
    private = PrivateIssuer()
    jwks_file = wid.root / "private-jwks.json"
    jwks_file.write_text(json.dumps(private.jwks()))
    wid.cli(
        "aks", "create", "-n", "private1", "-g", "rg1", "--issuer-url", EXT_ISSUER, "--jwks-file", str(jwks_file),
        "-o", "none",
    )
    wid.cli(
        "identity", "federated-credential", "create", "--name", "private", "--identity-name", "id1", "-g", "rg1",
        "--issuer", EXT_ISSUER, "--subject", EXT_SUBJECT, "--audience", AUD, "-o", "none",
    )
    wid.extra["private"] = private
    return wid


PodEnv = Callable[..., None]


@pytest.fixture
def pod_env(wid: Wid, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> PodEnv:
    """Clears the environment and sets the pod's variables; call it again to change any of them."""
    for name in list(os.environ):
        if name.upper().startswith(_LEAKY_PREFIXES) or name.upper() in _LEAKY_NAMES:
            monkeypatch.delenv(name)
    # No developer credential caches (msal-extensions, az CLI) from the real home.
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(wid.ca))
    monkeypatch.setenv("SSL_CERT_FILE", str(wid.ca))

    def configure(
        *,
        client_id: Optional[str] = None,
        tenant_id: Optional[str] = None,
        token_file: Optional[Path] = None,
        authority_host: Optional[str] = None,
    ) -> None:
        monkeypatch.setenv("AZURE_CLIENT_ID", client_id or wid.client_id)
        monkeypatch.setenv("AZURE_TENANT_ID", tenant_id or wid.tenant)
        monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file or wid.token_file))
        monkeypatch.setenv("AZURE_AUTHORITY_HOST", authority_host or wid.server)

    configure()
    return configure
