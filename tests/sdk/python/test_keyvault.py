"""azure-keyvault-secrets against wid's Key Vault data plane.

- The application code of seed 004 (`seed004_app.py`) runs unchanged as a child process with only a
  workload-identity pod's environment, after the walkthrough of seed 003 ("Create a key vault" to
  "Verify access") was done with `az` replaced by `wid`; without a role assignment it fails with
  `ForbiddenByRbac`.
- Every `SecretClient` operation round-trips, with the fields the SDK exposes checked, under every
  api-version the SDK knows; the challenge and nextLink are also checked on the wire for the SDKs
  (JS, Go, .NET) that parse them more strictly than Python does.
- The RBAC matrix: the built-in Key Vault roles (and no role) against every operation, the expected
  outcome derived from the role definitions' `dataActions` and the operation -> data action map
  (shared/spec/entra-keyvault-wire.md sections 5 and 4.10).

Vaults live at `https://{vault}.vault.localhost:PORT/`; the names must resolve to loopback, which
`scripts/sdk-python.sh` arranges with a private hosts file (kvhosts.py). Without it these tests skip.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.identity import WorkloadIdentityCredential
from azure.keyvault.secrets import ApiVersion, SecretClient

import kvhosts
from conftest import AUD, NS, Wid

APP = Path(__file__).with_name("seed004_app.py")
RG = "rg1"
APP_TIMEOUT = 120.0

# What `az keyvault secret set … --value "Hello\!"` stores when the walkthrough runs as a script: bash
# keeps the backslash inside double quotes when history expansion is off (the seed's pod log shows
# it, klog-quoted: secret="Hello\\!").
SEED_SECRET_VALUE = "Hello\\!"
SEED_SECRET_NAME = "my-secret5eed03"  # my-secret$RANDOM_ID

FORBIDDEN_BY_RBAC = "ForbiddenByRbac"
VERSION = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module", autouse=True)
def vault_names_resolve() -> None:
    missing = kvhosts.unresolved()
    if missing:
        pytest.skip(
            f"Key Vault tests skipped: {', '.join(missing)} do not resolve to 127.0.0.1. Run them through "
            "scripts/sdk-python.sh, which mounts a private hosts file in a mount namespace (unshare -m, needs "
            "root or user namespaces), or make *.vault.localhost resolve to loopback."
        )


# --- set-up through the CLI, as the walkthrough does it -------------------------------------------


@dataclass
class Workload:
    """A managed identity with a federated credential for `system:serviceaccount:ns1:{sa}` and a
    service-account token of that account in a file (what a labelled pod gets)."""

    name: str
    client_id: str
    principal_id: str
    token_file: Path


def create_workload(wid: Wid, name: str) -> Workload:
    wid.cli("identity", "create", "-n", name, "-g", RG, "-o", "none")
    identity = json.loads(wid.cli("identity", "show", "-n", name, "-g", RG))
    wid.cli(
        "identity", "federated-credential", "create", "--name", f"{name}-fic", "--identity-name", name,
        "-g", RG, "--issuer", wid.issuer, "--subject", f"system:serviceaccount:{NS}:{name}", "--audience", AUD,
        "-o", "none",
    )
    token_file = wid.write_token(wid.sa_token(service_account=name).strip())
    return Workload(name, identity["clientId"], identity["principalId"], token_file)


@dataclass
class Vault:
    name: str
    id: str
    url: str  # properties.vaultUri, e.g. https://kv-ops.vault.localhost:PORT/

    @property
    def base(self) -> str:
        """The vault URL as the SDK keeps it (`vault_url`, ids): no trailing slash."""
        return self.url.rstrip("/")


def create_vault(wid: Wid, role: str, purge_protection: bool) -> Vault:
    name = kvhosts.VAULTS[role]
    args = ["keyvault", "create", "--name", name, "--resource-group", RG, "--location", "eastus"]
    if purge_protection:
        args.append("--enable-purge-protection")
    wid.cli(*args, "--enable-rbac-authorization", "-o", "none")
    show = ["keyvault", "show", "--resource-group", RG, "--name", name, "--output", "tsv", "--query"]
    vault = Vault(name, wid.cli(*show, "id").strip(), wid.cli(*show, "properties.vaultUri").strip())
    assert vault.url == f"https://{name}.{wid.profile['keyVaultDnsSuffix']}/", vault
    return vault


def assign_role(wid: Wid, principal_id: str, role: str, scope: str) -> str:
    """`az role assignment create` for a service principal, as the walkthrough does; returns its id."""
    return wid.cli(
        "role", "assignment", "create", "--assignee-object-id", principal_id, "--role", role, "--scope", scope,
        "--assignee-principal-type", "ServicePrincipal", "--query", "id", "-o", "tsv",
    ).strip()


@dataclass
class SeedWalkthrough:
    vault: Vault
    workload: Workload  # the walkthrough's identity (id1, fixture `wid`)
    assignment_id: str
    keyvault_url: str


@pytest.fixture(scope="module")
def seed(wid: Wid) -> SeedWalkthrough:
    """Seed 003 from "Create a key vault" to "Deploy a verification pod", `az` replaced by `wid`."""
    vault = create_vault(wid, "seed", purge_protection=True)
    keyvault_resource_id = wid.cli(
        "keyvault", "show", "--resource-group", RG, "--name", vault.name, "--query", "id", "--output", "tsv"
    ).strip()
    assert keyvault_resource_id == vault.id
    assert keyvault_resource_id.lower() == (
        f"/subscriptions/{wid.profile['subscriptionId']}/resourcegroups/{RG}/providers/microsoft.keyvault/vaults/"
        f"{vault.name}"
    ).lower()
    caller_object_id = wid.cli("ad", "signed-in-user", "show", "--query", "id", "-o", "tsv").strip()
    wid.cli(
        "role", "assignment", "create", "--assignee", caller_object_id, "--role", "Key Vault Secrets Officer",
        "--scope", keyvault_resource_id, "-o", "none",
    )
    # Through bash, so that the value is what the seed's line stores.
    script = 'exec "$WID" keyvault secret set --vault-name "$1" --name "$2" --value "Hello\\!" -o none'
    r = subprocess.run(
        ["bash", "-c", script, "bash", vault.name, SEED_SECRET_NAME],
        env={**wid.cli_env, "WID": str(wid.bin)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr + r.stdout
    identity_principal_id = wid.cli(
        "identity", "show", "--name", "id1", "--resource-group", RG, "--query", "principalId", "--output", "tsv"
    ).strip()
    assert identity_principal_id == wid.principal_id
    assignment_id = assign_role(wid, identity_principal_id, "Key Vault Secrets User", keyvault_resource_id)
    keyvault_url = wid.cli(
        "keyvault", "show", "--resource-group", RG, "--name", vault.name, "--query", "properties.vaultUri",
        "--output", "tsv",
    ).strip()
    workload = Workload("id1", wid.client_id, wid.principal_id, wid.token_file)
    return SeedWalkthrough(vault, workload, assignment_id, keyvault_url)


# --- seed 004: the application, unchanged, in a pod's environment ---------------------------------


def run_app(wid: Wid, workload: Workload, keyvault_url: str, secret_name: str) -> subprocess.CompletedProcess:
    """Runs seed004_app.py with exactly what the webhook and the pod spec give the container."""
    env = {
        # The workload-identity webhook's variables.
        "AZURE_CLIENT_ID": workload.client_id,
        "AZURE_TENANT_ID": wid.tenant,
        "AZURE_FEDERATED_TOKEN_FILE": str(workload.token_file),
        "AZURE_AUTHORITY_HOST": wid.server,
        # Trust for wid's CA (in a pod: the image's trust store or a mounted bundle).
        "REQUESTS_CA_BUNDLE": str(wid.ca),
        "SSL_CERT_FILE": str(wid.ca),
        # The pod spec's variables (seed 003).
        "KEYVAULT_URL": keyvault_url,
        "SECRET_NAME": secret_name,
    }
    return subprocess.run(
        [sys.executable, str(APP)], env=env, capture_output=True, text=True, timeout=APP_TIMEOUT, cwd=APP.parent
    )


def test_seed_004_app_prints_the_secret(wid: Wid, seed: SeedWalkthrough) -> None:
    r = run_app(wid, seed.workload, seed.keyvault_url, SEED_SECRET_NAME)
    assert r.returncode == 0, r.stderr
    assert r.stdout == SEED_SECRET_VALUE + "\n", r.stdout


def check_forbidden_app(r: subprocess.CompletedProcess, principal_id: str) -> None:
    assert r.returncode != 0, r.stdout
    # The traceback ends in azure.core's HttpResponseError text: "(Forbidden) …\nCode: Forbidden\n…
    # Inner error: {"code": "ForbiddenByRbac"}".
    assert "azure.core.exceptions.HttpResponseError" in r.stderr, r.stderr
    assert FORBIDDEN_BY_RBAC in r.stderr, r.stderr
    assert "Microsoft.KeyVault/vaults/secrets/getSecret/action" in r.stderr, r.stderr
    assert principal_id in r.stderr, r.stderr


def test_seed_004_app_without_a_role_assignment_is_forbidden(wid: Wid, seed: SeedWalkthrough) -> None:
    other = create_workload(wid, "kv-seed-norole")
    r = run_app(wid, other, seed.keyvault_url, SEED_SECRET_NAME)
    check_forbidden_app(r, other.principal_id)


def test_seed_004_app_after_the_role_assignment_is_deleted(wid: Wid, seed: SeedWalkthrough) -> None:
    wid.cli("role", "assignment", "delete", "--ids", seed.assignment_id)
    try:
        r = run_app(wid, seed.workload, seed.keyvault_url, SEED_SECRET_NAME)
        check_forbidden_app(r, seed.workload.principal_id)
    finally:
        seed.assignment_id = assign_role(wid, seed.workload.principal_id, "Key Vault Secrets User", seed.vault.id)
    # No propagation delay: granted again, the next run reads the secret.
    r = run_app(wid, seed.workload, seed.keyvault_url, SEED_SECRET_NAME)
    assert r.returncode == 0, r.stderr
    assert r.stdout == SEED_SECRET_VALUE + "\n"


def test_challenge_comes_before_validation_in_the_form_every_sdk_parses(wid: Wid, seed: SeedWalkthrough) -> None:
    """What the SDKs' first, bodiless and unauthenticated request gets (spec sections 4.1, 4.2): JS
    splits parameters on commas and spaces and takes the tenant from the URL path (a trailing slash
    would become part of it); Go compares host:port of the resource with the vault's."""
    for method, path in (("GET", f"/secrets/{SEED_SECRET_NAME}/"), ("PUT", "/secrets/x"), ("POST", "/secrets/restore")):
        r = requests.request(
            method, f"{seed.vault.base}{path}?api-version=2025-07-01", headers={"Content-Length": "0"},
            verify=str(wid.ca), timeout=10,
        )
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        assert r.headers["WWW-Authenticate"] == (
            f'Bearer authorization="{wid.server}/{wid.tenant}", resource="{wid.kv_resource}"'
        ), r.headers
        assert r.json()["error"]["code"] == "Unauthorized", r.text
    assert seed.vault.base.endswith("." + wid.kv_resource.removeprefix("https://"))


# --- every operation through SecretClient ---------------------------------------------------------


@dataclass
class Ops:
    vault: Vault  # no purge protection
    protected: Vault  # purge protection
    officer: Workload  # Key Vault Secrets Officer on both


@pytest.fixture(scope="module")
def ops(wid: Wid) -> Ops:
    vault = create_vault(wid, "ops", purge_protection=False)
    protected = create_vault(wid, "protected", purge_protection=True)
    officer = create_workload(wid, "kv-officer")
    for v in (vault, protected):
        assign_role(wid, officer.principal_id, "Key Vault Secrets Officer", v.id)
    return Ops(vault, protected, officer)


def client_for(vault: Vault, workload: Workload, **options) -> SecretClient:
    """A SecretClient authenticating as `workload`; tenant, authority and CA trust come from the pod
    environment (fixture `pod_env`)."""
    credential = WorkloadIdentityCredential(client_id=workload.client_id, token_file_path=str(workload.token_file))
    return SecretClient(vault_url=vault.url, credential=credential, **options)


def near_now(t: datetime | None) -> bool:
    return t is not None and t.tzinfo is not None and abs(datetime.now(timezone.utc) - t) < timedelta(minutes=5)


def check_properties(props, vault: Vault, name: str, recovery_level: str, versioned: bool = True) -> None:
    assert props.name == name
    assert props.vault_url == vault.base
    if versioned:
        assert props.version and VERSION.fullmatch(props.version), props.id
        assert props.id == f"{vault.base}/secrets/{name}/{props.version}"
    else:
        assert props.version is None, props.id
        assert props.id == f"{vault.base}/secrets/{name}"
    assert near_now(props.created_on) and near_now(props.updated_on), (props.created_on, props.updated_on)
    assert props.recovery_level == recovery_level
    assert props.recoverable_days == 90
    assert props.managed is None and props.key_id is None


def delete_and_wait(client: SecretClient, name: str):
    poller = client.begin_delete_secret(name)
    deleted = poller.result()
    poller.wait(timeout=30)
    assert poller.done()
    return deleted


def check_deleted(deleted, vault: Vault, name: str, version: str) -> None:
    assert deleted.name == name
    assert deleted.id == f"{vault.base}/secrets/{name}/{version}"
    assert deleted.properties.version == version
    assert deleted.recovery_id == f"{vault.base}/deletedsecrets/{name}"
    assert near_now(deleted.deleted_date)
    assert deleted.scheduled_purge_date - deleted.deleted_date == timedelta(days=90)


def test_set_get_versions_and_update(wid: Wid, ops: Ops, pod_env) -> None:
    client = client_for(ops.vault, ops.officer)
    level = "Recoverable+Purgeable"
    first = client.set_secret("rt-secret", "value one", content_type="text/plain", tags={"env": "test"})
    assert first.value == "value one"
    check_properties(first.properties, ops.vault, "rt-secret", level)
    assert first.id == first.properties.id
    assert first.properties.enabled is True
    assert first.properties.content_type == "text/plain"
    assert first.properties.tags == {"env": "test"}
    assert first.properties.not_before is None and first.properties.expires_on is None

    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=30)
    second = client.set_secret("rt-secret", "value two", expires_on=expires)
    check_properties(second.properties, ops.vault, "rt-secret", level)
    assert second.properties.version != first.properties.version
    assert second.properties.expires_on == expires
    assert second.properties.content_type is None and not second.properties.tags

    latest = client.get_secret("rt-secret")
    assert (latest.value, latest.id) == ("value two", second.id)
    older = client.get_secret("rt-secret", first.properties.version)
    assert (older.value, older.id, older.properties.content_type) == ("value one", first.id, "text/plain")
    assert older.properties.tags == {"env": "test"}

    versions = list(client.list_properties_of_secret_versions("rt-secret"))
    assert sorted(v.id for v in versions) == sorted([first.id, second.id])
    for v in versions:
        check_properties(v, ops.vault, "rt-secret", level)

    # Update the latest version (PATCH /secrets/rt-secret/): the given fields change, the rest stays.
    updated = client.update_secret_properties("rt-secret", content_type="application/json", tags={"k": "v"})
    check_properties(updated, ops.vault, "rt-secret", level)
    assert updated.version == second.properties.version
    assert (updated.content_type, updated.tags, updated.enabled) == ("application/json", {"k": "v"}, True)
    assert updated.expires_on == expires
    # Update an older version by its id.
    updated = client.update_secret_properties("rt-secret", first.properties.version, content_type="text/csv")
    assert updated.version == first.properties.version
    assert (updated.content_type, updated.tags) == ("text/csv", {"env": "test"})
    assert client.get_secret("rt-secret", first.properties.version).properties.content_type == "text/csv"

    # Disabled: its value can't be read, its metadata still can.
    disabled = client.update_secret_properties("rt-secret", enabled=False)
    assert disabled.enabled is False
    with pytest.raises(HttpResponseError) as caught:
        client.get_secret("rt-secret")
    assert caught.value.status_code == 403, caught.value
    assert "disabled" in str(caught.value).lower(), caught.value
    listed = {p.name: p for p in client.list_properties_of_secrets()}
    assert listed["rt-secret"].enabled is False
    assert client.update_secret_properties("rt-secret", enabled=True).enabled is True
    assert client.get_secret("rt-secret").value == "value two"

    with pytest.raises(ResourceNotFoundError) as caught:
        client.get_secret("rt-missing")
    assert caught.value.status_code == 404 and caught.value.error.code == "SecretNotFound", caught.value


def test_list_pages_past_25(wid: Wid, ops: Ops, pod_env) -> None:
    client = client_for(ops.vault, ops.officer)
    names = {f"page-{i:02}" for i in range(31)}
    for name in sorted(names):
        client.set_secret(name, f"v-{name}", tags={"n": name})
    for i in range(27):
        client.set_secret("page-versions", f"v{i}")

    pages = [list(page) for page in client.list_properties_of_secrets().by_page()]
    assert len(pages) >= 2 and all(len(p) <= 25 for p in pages), [len(p) for p in pages]
    items = [p for page in pages for p in page]
    by_name = {p.name: p for p in items}
    assert len(by_name) == len(items), "a secret listed twice"
    assert names | {"page-versions"} <= set(by_name)
    for name in names:
        check_properties(by_name[name], ops.vault, name, "Recoverable+Purgeable", versioned=False)
        assert by_name[name].tags == {"n": name}

    small = [list(page) for page in client.list_properties_of_secrets(max_page_size=10).by_page()]
    assert len(small) >= 4 and all(len(p) <= 10 for p in small), [len(p) for p in small]
    assert {p.name for page in small for p in page} == set(by_name)

    pages = [list(page) for page in client.list_properties_of_secret_versions("page-versions").by_page()]
    assert len(pages) >= 2 and all(len(p) <= 25 for p in pages), [len(p) for p in pages]
    versions = [p for page in pages for p in page]
    assert len({v.version for v in versions}) == 27
    for v in versions:
        check_properties(v, ops.vault, "page-versions", "Recoverable+Purgeable")


def test_delete_recover_purge(wid: Wid, ops: Ops, pod_env) -> None:
    client = client_for(ops.vault, ops.officer)
    secret = client.set_secret("lifecycle", "alive", content_type="text/plain")
    version = secret.properties.version

    deleted = delete_and_wait(client, "lifecycle")
    check_deleted(deleted, ops.vault, "lifecycle", version)
    assert deleted.properties.content_type == "text/plain"
    with pytest.raises(ResourceNotFoundError):
        client.get_secret("lifecycle")
    assert "lifecycle" not in {p.name for p in client.list_properties_of_secrets()}

    again = client.get_deleted_secret("lifecycle")
    check_deleted(again, ops.vault, "lifecycle", version)
    assert again.deleted_date == deleted.deleted_date
    listed = {d.name: d for d in client.list_deleted_secrets()}
    assert "lifecycle" in listed
    assert listed["lifecycle"].recovery_id == deleted.recovery_id
    assert listed["lifecycle"].id == f"{ops.vault.base}/secrets/lifecycle"

    # A deleted name is reserved until it is recovered or purged.
    with pytest.raises(ResourceExistsError) as caught:
        client.set_secret("lifecycle", "again")
    assert caught.value.status_code == 409, caught.value

    poller = client.begin_recover_deleted_secret("lifecycle")
    recovered = poller.result()
    poller.wait(timeout=30)
    assert poller.done()
    check_properties(recovered, ops.vault, "lifecycle", "Recoverable+Purgeable")
    assert recovered.version == version
    assert client.get_secret("lifecycle").value == "alive"
    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_secret("lifecycle")

    delete_and_wait(client, "lifecycle")
    assert client.purge_deleted_secret("lifecycle") is None
    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_secret("lifecycle")
    assert "lifecycle" not in {d.name for d in client.list_deleted_secrets()}
    # Purged: the name is free again.
    assert client.set_secret("lifecycle", "reborn").value == "reborn"


def test_backup_and_restore_after_purge(wid: Wid, ops: Ops, pod_env) -> None:
    client = client_for(ops.vault, ops.officer)
    v1 = client.set_secret("bk-secret", "one", tags={"t": "1"})
    v2 = client.set_secret("bk-secret", "two", content_type="text/plain")
    blob = client.backup_secret("bk-secret")
    assert isinstance(blob, bytes) and blob

    # Restoring over an existing secret is refused.
    with pytest.raises(ResourceExistsError) as caught:
        client.restore_secret_backup(blob)
    assert caught.value.status_code == 409, caught.value

    delete_and_wait(client, "bk-secret")
    client.purge_deleted_secret("bk-secret")
    restored = client.restore_secret_backup(blob)
    check_properties(restored, ops.vault, "bk-secret", "Recoverable+Purgeable")
    assert restored.version == v2.properties.version
    assert restored.content_type == "text/plain"
    assert client.get_secret("bk-secret").value == "two"
    old = client.get_secret("bk-secret", v1.properties.version)
    assert (old.value, old.properties.tags) == ("one", {"t": "1"})
    assert {v.version for v in client.list_properties_of_secret_versions("bk-secret")} == {
        v1.properties.version,
        v2.properties.version,
    }


def test_purge_protection_refuses_purge(wid: Wid, ops: Ops, pod_env) -> None:
    client = client_for(ops.protected, ops.officer)
    secret = client.set_secret("kept", "forever")
    check_properties(secret.properties, ops.protected, "kept", "Recoverable")
    deleted = delete_and_wait(client, "kept")
    check_deleted(deleted, ops.protected, "kept", secret.properties.version)
    assert deleted.properties.recovery_level == "Recoverable"
    with pytest.raises(HttpResponseError) as caught:
        client.purge_deleted_secret("kept")
    assert caught.value.status_code == 403, caught.value
    assert FORBIDDEN_BY_RBAC not in str(caught.value), caught.value
    assert "purge" in str(caught.value).lower(), caught.value
    # Still there, and recoverable.
    assert client.get_deleted_secret("kept").name == "kept"
    client.begin_recover_deleted_secret("kept").wait(timeout=30)
    assert client.get_secret("kept").value == "forever"


@pytest.mark.parametrize("api_version", [v.value for v in ApiVersion])
def test_every_api_version_the_sdk_knows(wid: Wid, ops: Ops, pod_env, api_version: str) -> None:
    client = client_for(ops.vault, ops.officer, api_version=api_version)
    name = "apiv-" + re.sub(r"[^0-9a-z]", "-", api_version)
    secret = client.set_secret(name, api_version, tags={"api": api_version})
    check_properties(secret.properties, ops.vault, name, "Recoverable+Purgeable")
    assert client.get_secret(name).value == api_version
    assert client.update_secret_properties(name, content_type="text/plain").content_type == "text/plain"
    pages = [list(page) for page in client.list_properties_of_secrets(max_page_size=5).by_page()]
    assert name in {p.name for page in pages for p in page}
    assert all(len(p) <= 5 for p in pages)


def test_next_link_is_absolute_on_the_vault_host_and_keeps_the_api_version(wid: Wid, ops: Ops, pod_env) -> None:
    """Python and Rust replace `api-version` in nextLink; Go (`FetcherForNextLink`) and JS
    (`pathUnchecked(nextLink)`) follow it as it is, so it must be complete (spec section 4.6)."""
    client = client_for(ops.vault, ops.officer)
    for i in range(3):
        client.set_secret(f"nl-{i}", "v")
        client.set_secret("nl-0", f"v{i}")
    delete_and_wait(client, "nl-1")
    delete_and_wait(client, "nl-2")
    for collection in ("secrets", "secrets/nl-0/versions", "deletedsecrets"):
        url = f"{ops.vault.base}/{collection}?api-version=7.5&maxresults=1"
        seen = 0
        while url:
            response = client.send_request(HttpRequest("GET", url))
            assert response.status_code == 200, response.text()
            body = response.json()
            assert len(body["value"]) <= 1, body
            seen += len(body["value"])
            url = body.get("nextLink")
            if url:
                parts = urlsplit(url)
                assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{ops.vault.base}/{collection}", url
                assert parse_qs(parts.query)["api-version"] == ["7.5"], url
        assert seen >= 2, collection


# --- the RBAC matrix --------------------------------------------------------------------------------

# Built-in roles' dataActions (shared/spec/entra-keyvault-wire.md section 5; no notDataActions).
ROLE_DATA_ACTIONS: dict[str, list[str]] = {
    "Key Vault Administrator": ["Microsoft.KeyVault/vaults/*"],
    "Key Vault Secrets Officer": ["Microsoft.KeyVault/vaults/secrets/*"],
    "Key Vault Secrets User": [
        "Microsoft.KeyVault/vaults/secrets/getSecret/action",
        "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
    ],
    "Key Vault Reader": [
        "Microsoft.KeyVault/vaults/*/read",
        "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
    ],
    "no role": [],
}

_S = "Microsoft.KeyVault/vaults/secrets/"
# Operation -> data action (section 4.10). get_deleted's action is the spec's inference.
OPERATION_ACTIONS = {
    "get": _S + "getSecret/action",
    "list": _S + "readMetadata/action",
    "list_versions": _S + "readMetadata/action",
    "list_deleted": _S + "readMetadata/action",
    "get_deleted": _S + "getSecret/action",
    "set": _S + "setSecret/action",
    "update": _S + "update/action",
    "delete": _S + "delete",
    "recover": _S + "recover/action",
    "backup": _S + "backup/action",
    "restore": _S + "restore/action",
    "purge": _S + "purge/action",
}


def action_matches(pattern: str, action: str) -> bool:
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, action, flags=re.IGNORECASE) is not None


def role_allows(role: str, operation: str) -> bool:
    return any(action_matches(p, OPERATION_ACTIONS[operation]) for p in ROLE_DATA_ACTIONS[role])


def test_expected_matrix_is_the_documented_one() -> None:
    """The derivation above reproduces the table everyone knows."""
    everything = set(OPERATION_ACTIONS)
    allowed = {role: {op for op in OPERATION_ACTIONS if role_allows(role, op)} for role in ROLE_DATA_ACTIONS}
    assert allowed == {
        "Key Vault Administrator": everything,
        "Key Vault Secrets Officer": everything,
        "Key Vault Secrets User": {"get", "get_deleted", "list", "list_versions", "list_deleted"},
        "Key Vault Reader": {"list", "list_versions", "list_deleted"},
        "no role": set(),
    }


@dataclass
class Rbac:
    vault: Vault
    officer: Workload  # prepares each case
    members: dict[str, Workload] = field(default_factory=dict)


@pytest.fixture(scope="module")
def rbac(wid: Wid) -> Rbac:
    vault = create_vault(wid, "rbac", purge_protection=False)
    officer = create_workload(wid, "kv-rbac-setup")
    assign_role(wid, officer.principal_id, "Key Vault Secrets Officer", vault.id)
    r = Rbac(vault, officer)
    for role in ROLE_DATA_ACTIONS:
        member = create_workload(wid, "kv-m-" + role.lower().removeprefix("key vault ").replace(" ", "-"))
        if role != "no role":
            assign_role(wid, member.principal_id, role, vault.id)
        r.members[role] = member
    return r


def _prepare_deleted(officer: SecretClient, name: str) -> None:
    officer.set_secret(name, "v")
    delete_and_wait(officer, name)


def _case(officer: SecretClient, subject: SecretClient, op: str, name: str) -> Callable[[], None]:
    """Prepares the preconditions of `op` on secret `name` as the officer; returns the call the
    subject makes (which checks its result when it is allowed)."""
    if op in ("get", "update", "delete", "backup", "list", "list_versions"):
        officer.set_secret(name, "v")
    elif op in ("recover", "purge", "get_deleted", "list_deleted"):
        _prepare_deleted(officer, name)

    if op == "get":
        return lambda: assert_equal(subject.get_secret(name).value, "v")
    if op == "list":
        return lambda: assert_in(name, [p.name for p in subject.list_properties_of_secrets()])
    if op == "list_versions":
        return lambda: assert_equal(len(list(subject.list_properties_of_secret_versions(name))), 1)
    if op == "list_deleted":
        return lambda: assert_in(name, [d.name for d in subject.list_deleted_secrets()])
    if op == "get_deleted":
        return lambda: assert_equal(subject.get_deleted_secret(name).name, name)
    if op == "set":
        return lambda: assert_equal(subject.set_secret(name, "w").value, "w")
    if op == "update":
        return lambda: assert_equal(subject.update_secret_properties(name, content_type="x").content_type, "x")
    if op == "delete":

        def delete() -> None:
            assert delete_and_wait(subject, name).name == name
            assert officer.get_deleted_secret(name).name == name

        return delete
    if op == "recover":

        def recover() -> None:
            poller = subject.begin_recover_deleted_secret(name)
            assert poller.result().name == name
            poller.wait(timeout=30)
            assert officer.get_secret(name).value == "v"

        return recover
    if op == "backup":
        return lambda: assert_equal(type(subject.backup_secret(name)), bytes)
    if op == "restore":
        officer.set_secret(name, "v")
        blob = officer.backup_secret(name)
        delete_and_wait(officer, name)
        officer.purge_deleted_secret(name)
        return lambda: assert_equal(subject.restore_secret_backup(blob).name, name)
    if op == "purge":

        def purge() -> None:
            subject.purge_deleted_secret(name)
            with pytest.raises(ResourceNotFoundError):
                officer.get_deleted_secret(name)

        return purge
    raise AssertionError(op)


def assert_equal(a, b) -> None:
    assert a == b


def assert_in(a, b) -> None:
    assert a in b


@pytest.mark.parametrize("op", OPERATION_ACTIONS)
@pytest.mark.parametrize("role", ROLE_DATA_ACTIONS)
def test_rbac_matrix(wid: Wid, rbac: Rbac, pod_env, role: str, op: str) -> None:
    member = rbac.members[role]
    officer = client_for(rbac.vault, rbac.officer)
    subject = client_for(rbac.vault, member)
    name = f"m-{member.name.removeprefix('kv-m-')}-{op.replace('_', '-')}"
    call = _case(officer, subject, op, name)
    if role_allows(role, op):
        call()
        return
    with pytest.raises(HttpResponseError) as caught:
        call()
    e = caught.value
    assert e.status_code == 403, e
    assert e.error is not None and e.error.code == "Forbidden", e
    assert e.error.innererror.get("code") == FORBIDDEN_BY_RBAC, e
    assert FORBIDDEN_BY_RBAC in str(e)
    # The refusal names the action and the caller.
    assert OPERATION_ACTIONS[op] in e.error.message, e.error.message
    assert member.principal_id in e.error.message, e.error.message
