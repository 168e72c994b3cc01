"""azure-identity against wid with nothing but a workload-identity pod's environment.

`WorkloadIdentityCredential`, `DefaultAzureCredential` and `ManagedIdentityCredential` (which takes the
workload path when `AZURE_AUTHORITY_HOST`, `AZURE_TENANT_ID` and `AZURE_FEDERATED_TOKEN_FILE` are all
set) exchange the service-account token for an access token; wid's refusals reach the application as
`ClientAuthenticationError` carrying the AADSTS code.
"""

from __future__ import annotations

import time
import uuid

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential, WorkloadIdentityCredential
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import EXT_KID, Wid, claims_of

# A key the private issuer does not publish.
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

CREDENTIALS = {
    "workload": WorkloadIdentityCredential,
    "default": DefaultAzureCredential,
    "managed": ManagedIdentityCredential,
}


def check_access_token(wid: Wid, token, resource: str) -> None:
    c = claims_of(token.token)
    assert c["aud"] == resource
    assert c["oid"] == wid.principal_id
    assert c["appid"] == wid.client_id
    assert c["tid"] == wid.tenant
    # `expires_in` was understood: a managed identity's token lives about 24 h.
    assert 23 * 3600 < token.expires_on - time.time() <= 24 * 3600 + 60


@pytest.mark.parametrize("kind", CREDENTIALS)
def test_credential_gets_a_key_vault_token(wid: Wid, pod_env, kind: str) -> None:
    with CREDENTIALS[kind]() as credential:
        token = credential.get_token(wid.kv_scope)
        check_access_token(wid, token, wid.kv_resource)
        # Served from the credential's cache the second time.
        assert credential.get_token(wid.kv_scope).token == token.token


def test_management_resource(wid: Wid, pod_env) -> None:
    with WorkloadIdentityCredential() as credential:
        token = credential.get_token(f"{wid.server}/.default")
    check_access_token(wid, token, wid.server)


@pytest.mark.parametrize("kind", CREDENTIALS)
def test_token_file_with_trailing_newline(wid: Wid, pod_env, kind: str) -> None:
    # `wid aks get-token > file` (like `kubectl create token`) ends the file with a newline, and the
    # SDK sends the file's contents verbatim (azure/identity/_credentials/workload_identity.py).
    output = wid.sa_token()
    assert output.endswith("\n")
    pod_env(token_file=wid.write_token(output))
    with CREDENTIALS[kind]() as credential:
        check_access_token(wid, credential.get_token(wid.kv_scope), wid.kv_resource)


# Each case: what differs from the working pod environment, and the refusal it must produce.
REFUSALS = [
    pytest.param(
        lambda w: {"assertion": w.sa_token(service_account="other")},
        (700213, "invalid_client", 401),
        id="subject-mismatch",
    ),
    pytest.param(
        lambda w: {"assertion": w.sa_token(namespace="ns2", service_account="sa2")},
        (7002138, "invalid_client", 401),
        id="subject-differs-by-case",
    ),
    pytest.param(
        lambda w: {"assertion": w.sa_token(audience="other")},
        (700212, "invalid_client", 401),
        id="audience-mismatch",
    ),
    pytest.param(
        lambda w: {"client_id": w.extra["noslash_client_id"]},
        (700211, "invalid_client", 401),
        id="issuer-without-trailing-slash",
    ),
    pytest.param(
        lambda w: {"assertion": w.sa_token(cluster="c2")},
        (700211, "invalid_client", 401),
        id="issuer-of-another-cluster",
    ),
    pytest.param(
        lambda w: {"client_id": str(uuid.uuid4())},
        (700016, "unauthorized_client", 400),
        id="unknown-client-id",
    ),
    pytest.param(
        lambda w: {"tenant_id": str(uuid.uuid4())},
        (90002, "invalid_request", 400),
        id="unknown-tenant",
    ),
    pytest.param(
        lambda w: {"scope": "https://vault.elsewhere.example/.default"},
        (500011, "invalid_resource", 400),
        id="unknown-resource",
    ),
    pytest.param(
        lambda w: {"scope": w.kv_resource},
        (1002012, "invalid_scope", 400),
        id="scope-without-default",
    ),
    pytest.param(
        lambda w: {"assertion": w.sa_token(duration="26h")},
        (70023, "invalid_request", 400),
        id="lifetime-over-25h",
    ),
    pytest.param(
        lambda w: {"assertion": forge(w, iat=-7200, nbf=-7200, exp=-3600)},
        (700024, "invalid_client", 401),
        id="expired",
    ),
    pytest.param(
        lambda w: {"assertion": forge(w, nbf=3600, exp=7200)},
        (700024, "invalid_client", 401),
        id="not-yet-valid",
    ),
    pytest.param(
        lambda w: {"assertion": forge(w, other_key=True, kid="not-published")},
        (7000272, "invalid_client", 401),
        id="unknown-signing-key",
    ),
    pytest.param(
        lambda w: {"assertion": forge(w, other_key=True, kid=EXT_KID)},
        (700027, "invalid_client", 401),
        id="bad-signature",
    ),
]


def forge(w: Wid, other_key: bool = False, kid: str = EXT_KID, **offsets: int) -> str:
    """An assertion of the private issuer, with `iat`/`nbf`/`exp` moved by `offsets` seconds."""
    private = w.extra["private"]
    now = int(time.time())
    claims = private.claims(**{k: now + v for k, v in offsets.items()})
    return private.sign(claims, key=OTHER_KEY if other_key else None, kid=kid)


@pytest.mark.parametrize("kind", CREDENTIALS)
@pytest.mark.parametrize("case, expected", REFUSALS)
def test_refusal_surfaces_with_its_aadsts_code(refusal_setup: Wid, pod_env, kind: str, case, expected) -> None:
    wid = refusal_setup
    code, error, status = expected
    change = case(wid)
    assertion = change.pop("assertion", None)
    scope = change.pop("scope", wid.kv_scope)
    if assertion is not None:
        change["token_file"] = wid.write_token(assertion)
    pod_env(**change)

    with CREDENTIALS[kind]() as credential:
        with pytest.raises(ClientAuthenticationError) as caught:
            credential.get_token(scope)
    message = str(caught.value)
    # azure/identity/_internal/aad_client_base.py `_raise_for_error`:
    # "Microsoft Entra ID error '({error}) {error_description}'".
    assert f"Microsoft Entra ID error '({error}) AADSTS{code}:" in message, message
    if kind == "workload":
        assert caught.value.response is not None and caught.value.response.status_code == status, message
