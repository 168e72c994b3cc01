"""`wid webhook` behind the real apiserver: the shipped MutatingWebhookConfiguration (clientConfig
turned into a URL on 127.0.0.1) calls the webhook process for pod CREATE, and the pod the apiserver
stores (`kubectl create -o json`) is compared with what azure-workload-identity specifies
(shared/spec/azure-workload-identity.md §1.3-§1.9).

Both token layouts are checked (the `layout` fixture restarts the webhook): wid's default, that of
azure-workload-identity v1.6.0 (volume `azure-workload-identity-reserved-<sha256(pod name)[:30]>`,
mounted at /var/run/secrets/azure/wi, token at token/azure-identity-token), and `--token-layout=v1.5`,
that of v1.5.1 and the AKS add-on (volume `azure-identity-token`, mounted at
/var/run/secrets/azure/tokens). No kubelet runs, so pods are stored but never started; they set
`automountServiceAccountToken: false` because no controller-manager creates token secrets.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Optional

import pytest

from conftest import AUD, Kube, Webhook, Wid, http_get

USE_LABEL = "azure.workload.identity/use"
CLIENT_ID = "azure.workload.identity/client-id"
TENANT_ID = "azure.workload.identity/tenant-id"
EXPIRATION = "azure.workload.identity/service-account-token-expiration"
SKIP = "azure.workload.identity/skip-containers"
WEBHOOK_NAME = "mutation.azure-workload-identity.io"

AZURE_ENV = ["AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST"]
RESERVED_PREFIX = "azure-workload-identity-reserved-"


@dataclass(frozen=True)
class Layout:
    """Where the projected token goes."""

    name: str
    args: tuple
    mount_dir: str
    token_path: str  # inside the volume
    hashed_volume_name: bool

    @property
    def token_file(self) -> str:
        return f"{self.mount_dir}/{self.token_path}"

    def volume_name(self, manifest: dict) -> str:
        """The volume's name for the pod as submitted."""
        if not self.hashed_volume_name:
            return "azure-identity-token"
        # Upstream v1.6.0: a hash of the name the webhook saw (generateName + " (prefix)" if unnamed).
        meta = manifest["metadata"]
        seen = meta.get("name") or meta["generateName"] + " (prefix)"
        return RESERVED_PREFIX + hashlib.sha256(seen.encode()).hexdigest()[:30]


V16 = Layout("v1.6", (), "/var/run/secrets/azure/wi", "token/azure-identity-token", True)
V15 = Layout("v1.5", ("--token-layout=v1.5",), "/var/run/secrets/azure/tokens", "azure-identity-token", False)


def test_volume_name_vectors():
    # From shared/spec/azure-workload-identity.md §1.8 (sha256, first 30 hex characters).
    assert V16.volume_name({"metadata": {"name": "demo"}}) == RESERVED_PREFIX + "2a97516c354b68848cdbd8f54a226a"
    assert V16.volume_name({"metadata": {"name": "pod"}}) == RESERVED_PREFIX + "425c89ed5bb78a7623fae60fd8a6f6"
    assert len(V16.volume_name({"metadata": {"name": "x"}})) == 63


@pytest.fixture(scope="module", params=[V16, V15], ids=lambda layout: layout.name)
def layout(request, webhook: Webhook):
    webhook.restart(list(request.param.args))
    yield request.param
    webhook.restart([])


def container(name: str, env: Optional[list] = None) -> dict:
    c = {"name": name, "image": "registry.invalid/app:1"}
    if env is not None:
        c["env"] = env
    return c


def pod_manifest(
    ns: str,
    name: Optional[str] = None,
    *,
    sa: Optional[str] = None,
    labelled: bool = True,
    annotations: Optional[dict] = None,
    containers: Optional[list] = None,
    init_containers: Optional[list] = None,
    generate_name: Optional[str] = None,
) -> dict:
    meta: dict = {"namespace": ns, "labels": {USE_LABEL: "true"} if labelled else {"app": "plain"}}
    if generate_name:
        meta["generateName"] = generate_name
    else:
        meta["name"] = name or f"pod-{uuid.uuid4().hex[:6]}"
    if annotations:
        meta["annotations"] = annotations
    spec: dict = {
        "automountServiceAccountToken": False,
        "containers": containers or [container("app")],
    }
    if sa:
        spec["serviceAccountName"] = sa
    if init_containers:
        spec["initContainers"] = init_containers
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def expected_azure_env(layout: Layout, client_id: Optional[str], tenant: str, authority: str) -> list[dict]:
    env = []
    if client_id:
        env.append({"name": "AZURE_CLIENT_ID", "value": client_id})
    env += [
        {"name": "AZURE_TENANT_ID", "value": tenant},
        {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": layout.token_file},
        {"name": "AZURE_AUTHORITY_HOST", "value": authority},
    ]
    return env


def expected_volume(layout: Layout, pod: dict, expiration: int = 3600, audience: str = AUD) -> dict:
    return {
        "name": layout.volume_name(pod),
        "projected": {
            "sources": [
                {"serviceAccountToken": {"audience": audience, "expirationSeconds": expiration,
                                         "path": layout.token_path}}
            ],
            # Not set by the webhook; the apiserver's default (upstream's e2e asserts it too).
            "defaultMode": 420,
        },
    }


def expected_mount(layout: Layout, pod: dict) -> dict:
    return {"name": layout.volume_name(pod), "mountPath": layout.mount_dir, "readOnly": True}


def token_volumes(pod: dict) -> list[dict]:
    return [
        v for v in pod["spec"].get("volumes", [])
        if v["name"] == "azure-identity-token" or v["name"].startswith(RESERVED_PREFIX) or "projected" in v
    ]


def assert_injected(layout: Layout, pod: dict, c: dict, before_env: list, client_id: Optional[str], tenant: str,
                    authority: str) -> None:
    assert c.get("env", []) == before_env + expected_azure_env(layout, client_id, tenant, authority), c["name"]
    assert c.get("volumeMounts", []).count(expected_mount(layout, pod)) == 1, c["name"]
    assert [m["mountPath"] for m in c["volumeMounts"]].count(layout.mount_dir) == 1, c["name"]


def env_of(c: dict) -> dict:
    return {e["name"]: e.get("value") for e in c.get("env", [])}


def assert_untouched(c: dict) -> None:
    assert not [e for e in c.get("env", []) if e["name"] in AZURE_ENV], c["name"]
    assert not [m for m in c.get("volumeMounts", [])
                if m["name"] == "azure-identity-token" or m["name"].startswith(RESERVED_PREFIX)], c["name"]


@pytest.fixture
def ns(kube: Kube, webhook: Webhook) -> str:
    return kube.namespace()


@pytest.fixture
def authority(wid: Wid) -> str:
    return wid.server + "/"


def test_configuration_is_stored_as_shipped(kube: Kube, webhook: Webhook):
    mwc = kube.get("mutatingwebhookconfiguration", "azure-wi-webhook-mutating-webhook-configuration")
    (w,) = mwc["webhooks"]
    assert w["name"] == WEBHOOK_NAME
    assert w["admissionReviewVersions"] == ["v1", "v1beta1"]
    assert w["failurePolicy"] == "Fail"
    assert w["matchPolicy"] == "Equivalent"
    assert w["sideEffects"] == "None"
    assert w["reinvocationPolicy"] == "IfNeeded"
    assert w["timeoutSeconds"] == 10
    assert w["objectSelector"] == {"matchLabels": {USE_LABEL: "true"}}
    assert w["namespaceSelector"] == {}
    assert w["rules"] == [
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"], "scope": "*"}
    ]
    assert w["clientConfig"]["url"] == webhook.url


def test_labelled_pod_is_mutated(kube: Kube, wid: Wid, layout: Layout, ns: str, authority: str):
    client_id = str(uuid.uuid4())
    kube.service_account(ns, "app-sa", {CLIENT_ID: client_id})
    before = [{"name": "EXISTING", "value": "kept"}]
    manifest = pod_manifest(ns, "demo", sa="app-sa", containers=[container("app", before)])
    pod = kube.create(manifest)

    (c,) = pod["spec"]["containers"]
    assert_injected(layout, manifest, c, before, client_id, wid.tenant, authority)
    assert c["image"] == "registry.invalid/app:1"
    assert token_volumes(pod) == [expected_volume(layout, manifest)]
    assert pod["metadata"]["labels"] == {USE_LABEL: "true"}
    # The stored object is what `kubectl get` returns later.
    assert kube.get("pod", "demo", ns)["spec"] == pod["spec"]


def test_init_containers_are_mutated_too(kube: Kube, wid: Wid, layout: Layout, ns: str, authority: str):
    client_id = str(uuid.uuid4())
    kube.service_account(ns, "app-sa", {CLIENT_ID: client_id})
    manifest = pod_manifest(
        ns,
        sa="app-sa",
        init_containers=[container("init-1"), container("init-2", [{"name": "A", "value": "1"}])],
        containers=[container("main"), container("sidecar")],
    )
    spec = kube.create(manifest)["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["init-1", "init-2"]
    assert [c["name"] for c in spec["containers"]] == ["main", "sidecar"]
    assert_injected(layout, manifest, spec["initContainers"][0], [], client_id, wid.tenant, authority)
    assert_injected(layout, manifest, spec["initContainers"][1], [{"name": "A", "value": "1"}], client_id,
                    wid.tenant, authority)
    for c in spec["containers"]:
        assert_injected(layout, manifest, c, [], client_id, wid.tenant, authority)
    assert token_volumes({"spec": spec}) == [expected_volume(layout, manifest)]


def test_skip_containers(kube: Kube, wid: Wid, layout: Layout, ns: str, authority: str):
    client_id = str(uuid.uuid4())
    kube.service_account(ns, "app-sa", {CLIENT_ID: client_id})
    manifest = pod_manifest(
        ns,
        sa="app-sa",
        # `;`-separated, entries trimmed, exact names.
        annotations={SKIP: " init-skip ;sidecar-skip"},
        init_containers=[container("init-skip"), container("init")],
        containers=[container("main"), container("sidecar-skip"), container("sidecar")],
    )
    pod = kube.create(manifest)
    by_name = {c["name"]: c for c in pod["spec"]["initContainers"] + pod["spec"]["containers"]}
    for skipped in ("init-skip", "sidecar-skip"):
        assert_untouched(by_name[skipped])
    for name in ("init", "main", "sidecar"):
        assert_injected(layout, manifest, by_name[name], [], client_id, wid.tenant, authority)
    assert token_volumes(pod) == [expected_volume(layout, manifest)]


def test_generate_name_pod_is_mutated(kube: Kube, wid: Wid, layout: Layout, ns: str, authority: str):
    # Controllers (Deployments, Jobs) create pods with only generateName set.
    client_id = str(uuid.uuid4())
    kube.service_account(ns, "app-sa", {CLIENT_ID: client_id})
    manifest = pod_manifest(ns, sa="app-sa", generate_name="web-7d4b9c8f6-")
    pod = kube.create(manifest)
    assert pod["metadata"]["name"].startswith("web-7d4b9c8f6-")
    assert_injected(layout, manifest, pod["spec"]["containers"][0], [], client_id, wid.tenant, authority)
    assert token_volumes(pod) == [expected_volume(layout, manifest)]


def test_default_service_account(kube: Kube, wid: Wid, layout: Layout, ns: str, authority: str):
    # No serviceAccountName: the webhook reads `default` (here without a client id: none injected).
    manifest = pod_manifest(ns)
    pod = kube.create(manifest)
    assert_injected(layout, manifest, pod["spec"]["containers"][0], [], None, wid.tenant, authority)


def test_token_expiration_from_service_account_then_pod(kube: Kube, layout: Layout, ns: str):
    kube.service_account(ns, "sa-7200", {CLIENT_ID: str(uuid.uuid4()), EXPIRATION: "7200"})
    manifest = pod_manifest(ns, sa="sa-7200")
    assert token_volumes(kube.create(manifest)) == [expected_volume(layout, manifest, 7200)]
    # The pod's annotation wins over the ServiceAccount's.
    manifest = pod_manifest(ns, sa="sa-7200", annotations={EXPIRATION: "86400"})
    assert token_volumes(kube.create(manifest)) == [expected_volume(layout, manifest, 86400)]
    # An empty annotation counts as unset.
    kube.service_account(ns, "sa-empty", {EXPIRATION: ""})
    manifest = pod_manifest(ns, sa="sa-empty")
    assert token_volumes(kube.create(manifest)) == [expected_volume(layout, manifest, 3600)]


def test_tenant_annotation_and_missing_client_id(kube: Kube, layout: Layout, ns: str, authority: str):
    kube.service_account(ns, "other-tenant", {TENANT_ID: "11111111-2222-3333-4444-555555555555"})
    manifest = pod_manifest(ns, sa="other-tenant")
    (c,) = kube.create(manifest)["spec"]["containers"]
    # No client-id annotation: no AZURE_CLIENT_ID (v1.5.1+); the SA's tenant wins over the webhook's.
    assert_injected(layout, manifest, c, [], None, "11111111-2222-3333-4444-555555555555", authority)


def test_existing_variables_are_not_replaced(kube: Kube, wid: Wid, layout: Layout, ns: str):
    kube.service_account(ns, "app-sa", {CLIENT_ID: str(uuid.uuid4())})
    preset = [
        {"name": "AZURE_CLIENT_ID", "value": "chosen-by-the-app"},
        {"name": "AZURE_AUTHORITY_HOST", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "authority"}}},
    ]
    pod = kube.create(pod_manifest(ns, sa="app-sa", containers=[container("app", preset)]))
    (c,) = pod["spec"]["containers"]
    assert c["env"] == preset + [
        {"name": "AZURE_TENANT_ID", "value": wid.tenant},
        {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": layout.token_file},
    ]


def test_resubmitting_a_mutated_pod_changes_nothing(kube: Kube, layout: Layout, ns: str):
    # What reinvocation (reinvocationPolicy: IfNeeded) or a copied pod spec looks like: the webhook's
    # own output as input must not gain a second volume, mount or variable, even under another pod
    # name (upstream v1.6.0 appends a second volume at the same path then: issue #1744).
    kube.service_account(ns, "app-sa", {CLIENT_ID: str(uuid.uuid4())})
    first = kube.create(pod_manifest(ns, "first", sa="app-sa"))
    again = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "again", "namespace": ns, "labels": first["metadata"]["labels"]},
        "spec": first["spec"],
    }
    second = kube.create(again)
    assert second["spec"]["containers"] == first["spec"]["containers"]
    assert second["spec"]["volumes"] == first["spec"]["volumes"]


def test_ca_bundle_for_a_private_wid_server(kube: Kube, webhook: Webhook, ns: str):
    # wid's addition: the server's CA from a ConfigMap, projected next to the token, and the
    # variables Python, OpenSSL and Node read.
    previous = list(webhook.extra_args)
    webhook.restart(previous + ["--ca-bundle-configmap=wid-ca"])
    try:
        kube.service_account(ns, "app-sa", {CLIENT_ID: str(uuid.uuid4())})
        pod = kube.create(pod_manifest(ns, sa="app-sa"))
    finally:
        webhook.restart(previous)
    (c,) = pod["spec"]["containers"]
    env = env_of(c)
    token_file = env["AZURE_FEDERATED_TOKEN_FILE"]
    mount_dir = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    (volume,) = token_volumes(pod)
    bundle = f"{mount_dir[volume['name']]}/ca-bundle/ca.crt"
    assert token_file.startswith(mount_dir[volume["name"]] + "/")
    assert env["SSL_CERT_FILE"] == env["REQUESTS_CA_BUNDLE"] == env["NODE_EXTRA_CA_CERTS"] == bundle
    sources = volume["projected"]["sources"]
    assert {"configMap": {"name": "wid-ca", "items": [{"key": "ca.crt", "path": "ca-bundle/ca.crt"}]}} in sources
    assert len([s for s in sources if "serviceAccountToken" in s]) == 1


def test_unlabelled_pods_are_left_alone(kube: Kube, ns: str):
    kube.service_account(ns, "app-sa", {CLIENT_ID: str(uuid.uuid4())})
    manifest = pod_manifest(ns, sa="app-sa", labelled=False, init_containers=[container("init")])
    pod = kube.create(manifest)
    for c in pod["spec"]["initContainers"] + pod["spec"]["containers"]:
        assert_untouched(c)
    assert token_volumes(pod) == []
    # A label with another value does not match the objectSelector either.
    manifest = pod_manifest(ns, sa="app-sa")
    manifest["metadata"]["labels"] = {USE_LABEL: "false"}
    pod = kube.create(manifest)
    assert_untouched(pod["spec"]["containers"][0])
    assert token_volumes(pod) == []


DENIED = f'admission webhook "{WEBHOOK_NAME}" denied the request: '


@pytest.mark.parametrize("where", ["service-account", "pod"])
def test_bad_expiration_is_denied_with_the_reason(kube: Kube, ns: str, where: str):
    for value in ("100", "invalid"):
        sa = f"sa-{value}-{where}"
        kube.service_account(ns, sa, {EXPIRATION: value} if where == "service-account" else {})
        annotations = {EXPIRATION: value} if where == "pod" else None
        err = kube.create_error(pod_manifest(ns, sa=sa, annotations=annotations))
        assert DENIED in err, err
        reason = err.split(DENIED, 1)[1].strip()
        if value == "100":
            # Upstream's text, verbatim; wid may add how to fix it after it.
            assert reason.startswith("token expiration 100 not valid. Expected value to be between 3600 and 86400"), err
        else:
            assert '"invalid"' in reason and "invalid syntax" in reason, err
        # Nothing was stored.
        assert json.loads(kube.kubectl("get", "pods", "-n", ns, "-o", "json"))["items"] == []


def test_expiration_out_of_range_above(kube: Kube, ns: str):
    kube.service_account(ns, "app-sa")
    err = kube.create_error(pod_manifest(ns, sa="app-sa", annotations={EXPIRATION: "86401"}))
    assert DENIED + "token expiration 86401 not valid. Expected value to be between 3600 and 86400" in err, err


def test_webhook_down_fails_closed(kube: Kube, webhook: Webhook, ns: str, wid: Wid):
    client_id = str(uuid.uuid4())
    kube.service_account(ns, "app-sa", {CLIENT_ID: client_id})
    webhook.stop()
    try:
        err = kube.create_error(pod_manifest(ns, "while-down", sa="app-sa"))
        assert f'failed calling webhook "{WEBHOOK_NAME}"' in err, err
        assert kube.kubectl_run("get", "pod", "while-down", "-n", ns).returncode != 0
        # Pods without the label never reach the webhook, so they are still admitted.
        kube.create(pod_manifest(ns, "unlabelled-while-down", sa="app-sa", labelled=False))
    finally:
        webhook.start()
    pod = kube.create(pod_manifest(ns, "after-restart", sa="app-sa"))
    assert env_of(pod["spec"]["containers"][0])["AZURE_CLIENT_ID"] == client_id


def test_health_and_metrics(kube: Kube, webhook: Webhook, ns: str):
    assert http_get(f"http://127.0.0.1:{webhook.health_port}/healthz")[0] == 200
    assert http_get(f"http://127.0.0.1:{webhook.health_port}/readyz")[0] == 200
    kube.service_account(ns, "app-sa")
    kube.create(pod_manifest(ns, sa="app-sa"))
    status, body = http_get(f"http://127.0.0.1:{webhook.metrics_port}/metrics")
    assert status == 200
    # Upstream's histogram (seconds), observed for every admission request.
    assert "azwi_mutation_request" in body.decode(), body.decode()[:2000]


def test_shipped_rbac_is_what_the_webhook_needs(kube: Kube, webhook: Webhook):
    who = kube.env["KUBE_WEBHOOK_USER"]
    for verb in ("get", "list", "watch"):
        assert kube.kubectl("auth", "can-i", verb, "serviceaccounts", "--all-namespaces", "--as", who).strip() == "yes"
    for verb, resource in (("get", "secrets"), ("create", "pods"), ("update", "serviceaccounts")):
        proc = kube.kubectl_run("auth", "can-i", verb, resource, "--all-namespaces", "--as", who)
        assert proc.stdout.strip() == "no", (verb, resource)
