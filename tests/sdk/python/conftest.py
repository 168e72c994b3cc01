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
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "support"))
import wid_process  # noqa: E402

AUD = "api://AzureADTokenExchange"
NS, SA = "ns1", "sa1"
SUBJECT = f"system:serviceaccount:{NS}:{SA}"
EXT_ISSUER = "https://private-issuer.example/cluster-1/"
EXT_SUBJECT = "system:serviceaccount:ext:app"
EXT_KID = "private-issuer-key-1"


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


@dataclass
class Wid(wid_process.Wid):
    """A running `wid serve` and the walkthrough's objects."""

    client_id: str = ""
    principal_id: str = ""
    issuer: str = ""
    token_file: Path = Path()

    @property
    def kv_resource(self) -> str:
        return self.profile["keyVaultResource"]

    @property
    def kv_scope(self) -> str:
        return f"{self.kv_resource}/.default"

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


@pytest.fixture(scope="session")
def wid(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("wid")
    args = ["--data-dir", str(root / "data"), "--listen", "127.0.0.1:0", "--host", "localhost"]
    w = wid_process.start_wid(root, args, cls=Wid)
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
        wid_process.stop_process(w.proc)


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
