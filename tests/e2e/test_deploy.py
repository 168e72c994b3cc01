"""The deployment artefacts (deploy/) against the real apiserver.

- deploy/manifests/ is the chart rendered with its defaults (deploy/manifests/generate.sh), up to date;
- every manifest and several renderings of the Helm chart pass a server-side dry run
  (`kubectl apply --dry-run=server`: schema, defaulting and admission, nothing stored);
- the shapes that matter are as upstream's (the MutatingWebhookConfiguration, the webhook Deployment,
  its Service, PDB and RBAC) and as the brief asks for wid serve (probes, PVC, security context);
- `wid serve` runs with the StatefulSet's own arguments and environment and answers kubelet-style
  probes, with a certificate valid for its in-cluster names;
- with server.database (several replicas on PostgreSQL) the chart renders a Deployment instead: its
  shape (initContainer `wid migrate`, `wid serve --no-migrate`, the URL from a Secret, the shared
  master key, PDB, anti-affinity), the values it refuses, and, when WID_TEST_DATABASE_URL names a
  PostgreSQL server (scripts/postgres.sh), `wid migrate` and two `wid serve` replicas run with the
  Deployment's own arguments, environment and volumes, and share the admin and their writes;
- in the Azure host names mode (azureHostnames.enabled) the rendering differs from normal mode only
  where the mode says, `wid serve` with its StatefulSet's arguments answers as Azure under Azure's
  names, its webhook Deployment admits a pod that differs only in AKS's authority and wid's CA, and
  CoreDNS itself (tests/e2e/coredns) runs the rewrite rules the chart renders;
- the real Helm (built from the Go module proxy by scripts/kube.sh, pinned) renders every chart
  variant checked here (`helm template`), lints the chart, and installs, upgrades and uninstalls
  both modes in an apiserver of its own;
- the Go tool certgen passes its unit tests.

kube-apiserver 1.20 predates policy/v1, so PodDisruptionBudgets are dry-run as policy/v1beta1 (the
only change made before the dry run; the chart value webhook.podDisruptionBudget.apiVersion does the
same for old clusters).
"""

from __future__ import annotations

import base64
import copy
import filecmp
import glob
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import textwrap
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any, Optional

import pytest
import yaml

from conftest import (
    CHART, KUBE_SH, MANIFESTS, REPO, Kube, certgen, find, free_port, load_docs, localize_webhook_args, read_env_file,
    running_kube, start_wid, stop_process, wid_bin,
)

PDB_V1 = "apiVersion: policy/v1\nkind: PodDisruptionBudget"
PDB_V1BETA1 = "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget"
CHART_NS = "wid-chart"


def tool(name: str) -> str:
    return subprocess.run(
        ["bash", str(KUBE_SH), "tool", name], capture_output=True, text=True, check=True, timeout=600
    ).stdout.strip()


HELM_HOME = REPO / "target" / "e2e-helm"


def helm(*args: str) -> subprocess.CompletedProcess:
    """The real Helm (scripts/kube.sh tool helm, pinned), its config, cache and data under target/."""
    env = {**os.environ, "HELM_CACHE_HOME": str(HELM_HOME / "cache"),
           "HELM_CONFIG_HOME": str(HELM_HOME / "config"), "HELM_DATA_HOME": str(HELM_HOME / "data")}
    return subprocess.run([tool("helm"), *args], capture_output=True, text=True, timeout=120, env=env)


def template_args(sets: tuple[str, ...], values: Path | None, namespace: str) -> list[str]:
    args = ["template", "wid", str(CHART), "--namespace", namespace]
    for s in sets:
        args += ["--set", s]
    if values:
        args += ["-f", str(values)]
    return args


def render(*sets: str, values: Path | None = None, namespace: str = CHART_NS) -> str:
    """`helm template` of the chart as release `wid`."""
    proc = helm(*template_args(sets, values, namespace))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def render_error(*sets: str) -> str:
    """Renders values the chart must refuse; returns Helm's error (and checks nothing was written)."""
    proc = helm(*template_args(sets, None, CHART_NS))
    assert proc.returncode != 0, f"the chart rendered:\n{proc.stdout}"
    assert proc.stdout == ""
    return proc.stderr


def for_kubernetes_120(text: str) -> str:
    return text.replace(PDB_V1, PDB_V1BETA1)


def dry_run(kube: Kube, text: str) -> None:
    docs = load_docs(text)
    out = kube.kubectl("apply", "--dry-run=server", "-f", "-", stdin=text)
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == len(docs), out
    assert all(line.endswith("(server dry run)") for line in lines), out


@pytest.fixture(scope="module")
def namespaces(kube: Kube) -> None:
    kube.kubectl("apply", "-f", str(MANIFESTS / "00-namespace.yaml"))
    kube.kubectl_run("create", "namespace", CHART_NS)


@pytest.fixture(scope="module")
def cert_manager_crds(kube: Kube) -> None:
    """Minimal CustomResourceDefinitions for cert-manager's Issuer and Certificate, so their objects
    can be dry-run. cert-manager is not installable here: this checks apiVersion, kind and metadata
    only, not cert-manager's own schema."""
    crds = []
    for kind, plural in (("Issuer", "issuers"), ("Certificate", "certificates")):
        crds.append({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.cert-manager.io"},
            "spec": {
                "group": "cert-manager.io",
                "scope": "Namespaced",
                "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
                "versions": [{
                    "name": "v1", "served": True, "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }],
            },
        })
    kube.apply(crds)
    for plural in ("issuers", "certificates"):
        kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{plural}.cert-manager.io")


def test_manifests_are_the_rendered_chart(tmp_path: Path):
    env = {**os.environ, "HELM": tool("helm")}
    subprocess.run(["bash", str(MANIFESTS / "generate.sh"), str(tmp_path)], check=True, env=env, timeout=120)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.yaml"))
    shipped = sorted(p.relative_to(MANIFESTS) for p in MANIFESTS.rglob("*.yaml"))
    assert generated == shipped
    stale = [str(p) for p in generated if not filecmp.cmp(tmp_path / p, MANIFESTS / p, shallow=False)]
    assert not stale, f"deploy/manifests is out of date ({stale}); run deploy/manifests/generate.sh"


@pytest.mark.parametrize("name", ["00-namespace.yaml", "wid-server.yaml", "wid-webhook.yaml"])
def test_manifest_server_dry_run(kube: Kube, namespaces: None, name: str):
    text = (MANIFESTS / name).read_text()
    dry_run(kube, for_kubernetes_120(text))


def test_cert_manager_manifest_server_dry_run(kube: Kube, namespaces: None, cert_manager_crds: None):
    dry_run(kube, (MANIFESTS / "cert-manager" / "webhook-certificate.yaml").read_text())


# The least that turns on several replicas on PostgreSQL (deploy/README.md).
POSTGRES = [
    "server.database.existingSecret=wid-database",
    "server.masterKey.existingSecret=wid-master-key",
    "server.tlsSecretName=wid-tls",
]

# The least that turns on the Azure host names mode (deploy/README.md): the webhook must inject wid's CA.
AZURE_HOSTNAMES = ["azureHostnames.enabled=true", "webhook.caBundleConfigMap=wid-ca"]
AZURE_LOGIN = "https://login.microsoftonline.com/"

CHART_VARIANTS = {
    "defaults": [],
    "azure-hostnames": [*AZURE_HOSTNAMES, "azureHostnames.coreDNSSnippet=true",
                        "webhook.tenantId=00000000-0000-0000-0000-000000000001"],
    "azure-hostnames-postgres": [*POSTGRES, *AZURE_HOSTNAMES, "azureHostnames.coreDNSSnippet=true"],
    "cert-manager": ["webhook.certManager.enabled=true", "webhook.mutatingWebhookAnnotations.team=platform"],
    "self-signed": [
        "webhook.caBundle=" + base64.b64encode(b"-----BEGIN CERTIFICATE-----\n").decode(),
        "webhook.tenantId=00000000-0000-0000-0000-000000000001",
        "webhook.namespaceSelector.matchLabels.workload-identity=enabled",
        "webhook.audience=api://CustomAudience",
        "webhook.authorityHost=https://login.microsoftonline.com/",
        "webhook.tokenLayout=v1.5",
        "webhook.caBundleConfigMap=wid-ca",
    ],
    "options": [
        "server.host=wid.example.internal",
        "server.issuerCAConfigMap=kube-root-ca.crt",
        "server.tlsSecretName=wid-tls",
        "server.persistence.storageClassName=fast",
        "server.persistence.size=5Gi",
        "image.repository=registry.invalid/wid",
        "image.tag=dev",
        "webhook.priorityClassName=",
        "webhook.replicas=3",
    ],
    "server-only": ["webhook.enabled=false"],
    "webhook-only": ["server.enabled=false"],
    "postgres": [*POSTGRES],
    "postgres-options": [
        *POSTGRES,
        "server.replicas=3",
        "server.database.urlKey=uri",
        "server.database.caConfigMap=wid-database-ca",
        "server.database.caKey=root.crt",
        "server.database.poolSize=4",
        "server.masterKey.key=key",
        "server.host=wid.example.internal",
        "server.issuerCAConfigMap=kube-root-ca.crt",
        "image.repository=registry.invalid/wid",
    ],
    "postgres-no-migrate": [*POSTGRES, "server.database.migrate=false", "webhook.enabled=false"],
}


@pytest.mark.parametrize("variant", sorted(CHART_VARIANTS))
def test_chart_server_dry_run(kube: Kube, namespaces: None, cert_manager_crds: None, variant: str, tmp_path: Path):
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "commonLabels": {"example.com/owner": "platform"},
        "server": {"extraArgs": ["--token-lifetime=1h", "--vault-throttle=4000"]},
        "imagePullSecrets": [{"name": "regcred"}],
    }))
    text = render("webhook.podDisruptionBudget.apiVersion=policy/v1beta1",
                  "server.podDisruptionBudget.apiVersion=policy/v1beta1", *CHART_VARIANTS[variant],
                  values=values if variant.endswith("options") else None)
    dry_run(kube, text)


def rendered(*sets: str) -> list[dict]:
    return load_docs(render(*sets))


def test_chart_webhook_shape_is_upstream():
    docs = rendered("webhook.tenantId=t-1")
    mwc = find(docs, "MutatingWebhookConfiguration", "azure-wi-webhook-mutating-webhook-configuration")
    assert "annotations" not in mwc["metadata"]
    (w,) = mwc["webhooks"]
    assert w == {
        "name": "mutation.azure-workload-identity.io",
        "admissionReviewVersions": ["v1", "v1beta1"],
        "clientConfig": {"service": {"name": "azure-wi-webhook-webhook-service", "namespace": CHART_NS,
                                     "path": "/mutate-v1-pod"}},
        "failurePolicy": "Fail",
        "matchPolicy": "Equivalent",
        "namespaceSelector": {},
        "objectSelector": {"matchLabels": {"azure.workload.identity/use": "true"}},
        "reinvocationPolicy": "IfNeeded",
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
        "sideEffects": "None",
        "timeoutSeconds": 10,
    }

    dep = find(docs, "Deployment", "azure-wi-webhook-controller-manager")
    assert dep["metadata"]["namespace"] == CHART_NS
    assert dep["spec"]["replicas"] == 2
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "azure-wi-webhook-admin"
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    (c,) = pod["containers"]
    assert c["args"] == [
        "webhook",
        "--webhook-cert-dir=/certs",
        "--listen=:9443",
        "--health-addr=:9440",
        "--metrics-addr=:8095",
        "--log-level=info",
        "--tls-min-version=1.3",
        f"--authority-host=https://wid-server.{CHART_NS}.svc:8443/",
    ]
    assert c["envFrom"] == [{"configMapRef": {"name": "azure-wi-webhook-config"}}]
    assert c["env"] == [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"webhook-server": 9443, "metrics": 8095,
                                                                  "healthz": 9440}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "healthz"}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["volumeMounts"] == [{"name": "cert", "mountPath": "/certs", "readOnly": True}]
    assert pod["volumes"] == [{"name": "cert", "secret": {"secretName": "azure-wi-webhook-server-cert",
                                                           "defaultMode": 420}}]
    assert c["resources"]["requests"] == {"cpu": "100m", "memory": "20Mi"}

    labels = dep["spec"]["template"]["metadata"]["labels"]
    selector = dep["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert labels["azure-workload-identity.io/system"] == "true"

    svc = find(docs, "Service", "azure-wi-webhook-webhook-service")
    assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "webhook-server", "protocol": "TCP"}]
    assert svc["spec"]["selector"] == selector

    pdb = find(docs, "PodDisruptionBudget", "azure-wi-webhook-controller-manager")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": selector}}

    role = find(docs, "ClusterRole", "azure-wi-webhook-manager-role")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "list", "watch"]}]
    binding = find(docs, "ClusterRoleBinding", "azure-wi-webhook-manager-rolebinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "azure-wi-webhook-admin", "namespace": CHART_NS}]

    config = find(docs, "ConfigMap", "azure-wi-webhook-config")
    assert config["data"] == {"AZURE_ENVIRONMENT": "AzurePublicCloud", "AZURE_TENANT_ID": "t-1"}


def test_chart_cert_manager_and_ca_bundle():
    docs = rendered("webhook.certManager.enabled=true", "webhook.caBundle=ignored")
    mwc = find(docs, "MutatingWebhookConfiguration")
    assert mwc["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": f"{CHART_NS}/azure-wi-webhook-serving-cert"}
    assert "caBundle" not in mwc["webhooks"][0]["clientConfig"]
    cert = find(docs, "Certificate", "azure-wi-webhook-serving-cert")
    assert cert["spec"]["secretName"] == "azure-wi-webhook-server-cert"
    assert f"azure-wi-webhook-webhook-service.{CHART_NS}.svc" in cert["spec"]["dnsNames"]
    assert cert["spec"]["issuerRef"] == {"kind": "Issuer", "name": "azure-wi-webhook-selfsigned-issuer"}

    docs = rendered("webhook.caBundle=Q0E=")
    assert find(docs, "MutatingWebhookConfiguration")["webhooks"][0]["clientConfig"]["caBundle"] == "Q0E="
    assert not [d for d in docs if d["kind"] in ("Issuer", "Certificate")]


def test_chart_server_shape():
    docs = rendered()
    sts = find(docs, "StatefulSet", "wid-server")
    pod = sts["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["args"] == ["serve", "--data-dir=/var/lib/wid", "--listen=0.0.0.0:8443",
                         f"--host=wid-server.{CHART_NS}.svc"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "privileged": False, "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["fsGroup"] == 65532
    assert pod["automountServiceAccountToken"] is False
    assert {"name": "data", "mountPath": "/var/lib/wid"} in c["volumeMounts"]
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert set(c["resources"]) == {"requests", "limits"}
    svc = find(docs, "Service", "wid-server")
    assert svc["spec"]["ports"] == [{"name": "https", "port": 8443, "targetPort": "https", "protocol": "TCP"}]


def test_chart_server_sqlite_replicas_and_master_key():
    # server.replicas is empty by default: one replica with SQLite, and only 0 or 1 is accepted.
    assert find(rendered(), "StatefulSet", "wid-server")["spec"]["replicas"] == 1
    assert find(rendered("server.replicas=0"), "StatefulSet", "wid-server")["spec"]["replicas"] == 0
    assert not [d for d in rendered() if d["kind"] == "PodDisruptionBudget" and d["metadata"]["name"] == "wid-server"]
    # The master key may come from a Secret with SQLite too (default: DATA_DIR/master.key on the volume).
    sts = find(rendered("server.masterKey.existingSecret=wid-master-key"), "StatefulSet", "wid-server")
    pod = sts["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert "--master-key-file=/etc/wid/master-key/master.key" in c["args"]
    assert "--no-migrate" not in c["args"] and "initContainers" not in pod
    assert {"name": "master-key", "mountPath": "/etc/wid/master-key", "readOnly": True} in c["volumeMounts"]
    assert {"name": "master-key", "secret": {"secretName": "wid-master-key", "defaultMode": 0o400,
                                             "items": [{"key": "master.key", "path": "master.key"}]}} in pod["volumes"]


def test_chart_replicas_on_postgres_shape():
    docs = rendered(*POSTGRES)
    assert not [d for d in docs if d["kind"] == "StatefulSet"]
    dep = find(docs, "Deployment", "wid-server")
    assert dep["metadata"]["namespace"] == CHART_NS
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    selector = dep["spec"]["selector"]["matchLabels"]
    assert selector.items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    pod = dep["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    (c,) = pod["containers"]

    # The database URL holds a password: only ever from the Secret, in both containers.
    url = {"name": "WID_DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "wid-database", "key": "url"}}}
    for container in (init, c):
        assert url in container["env"]
        assert [e for e in container["env"] if e["name"] == "WID_DATABASE_URL"] == [url]
    assert c["args"] == [
        "serve",
        "--data-dir=/var/lib/wid",
        "--listen=0.0.0.0:8443",
        f"--host=wid-server.{CHART_NS}.svc",
        "--no-migrate",
        "--database-pool-size=8",
        "--master-key-file=/etc/wid/master-key/master.key",
        "--tls-cert=/etc/wid/tls/tls.crt",
        "--tls-key=/etc/wid/tls/tls.key",
    ]
    assert {e["name"]: e.get("value") for e in c["env"]} == {
        "HOME": "/var/lib/wid", "WID_CONFIG": "/var/lib/wid/profile.json", "WID_LOG": "info",
        "WID_LOG_FORMAT": "json", "WID_DATABASE_URL": None}
    # Migrations run once per new pod, before wid serve, with the same image and database.
    assert init["name"] == "migrate"
    assert init["args"] == ["migrate"]
    assert init["image"] == c["image"] and init["imagePullPolicy"] == c["imagePullPolicy"]
    assert init["securityContext"] == c["securityContext"]
    assert "volumeMounts" not in init

    # Stateless: the data dir (local CA, CLI profile) is an emptyDir; the master key and the
    # certificate are shared Secrets, mounted read-only.
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}
    assert volumes["master-key"]["secret"] == {"secretName": "wid-master-key", "defaultMode": 0o400,
                                               "items": [{"key": "master.key", "path": "master.key"}]}
    assert volumes["tls"]["secret"] == {"secretName": "wid-tls"}
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts["data"] == {"name": "data", "mountPath": "/var/lib/wid"}
    assert mounts["master-key"] == {"name": "master-key", "mountPath": "/etc/wid/master-key", "readOnly": True}
    assert mounts["tls"] == {"name": "tls", "mountPath": "/etc/wid/tls", "readOnly": True}
    assert set(volumes) == set(mounts) == {"data", "tmp", "master-key", "tls"}

    # The rest of the pod is the StatefulSet's (same probes, resources, security, service account).
    sts_pod = find(rendered("server.tlsSecretName=wid-tls"), "StatefulSet", "wid-server")["spec"]["template"]["spec"]
    (sts_c,) = sts_pod["containers"]
    for key in ("image", "ports", "livenessProbe", "readinessProbe", "resources", "securityContext"):
        assert c[key] == sts_c[key], key
    for key in ("serviceAccountName", "automountServiceAccountToken", "securityContext", "nodeSelector"):
        assert pod[key] == sts_pod[key], key
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}

    # Replicas prefer different nodes.
    assert pod["affinity"] == {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 100,
        "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": selector}},
    }]}}
    pdb = find(docs, "PodDisruptionBudget", "wid-server")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": selector}}
    svc = find(docs, "Service", "wid-server")
    assert svc["spec"]["selector"] == selector
    # The webhook is unchanged by the server's mode.
    assert find(docs, "Deployment", "azure-wi-webhook-controller-manager") == find(
        rendered("server.tlsSecretName=wid-tls"), "Deployment", "azure-wi-webhook-controller-manager")


def test_chart_replicas_on_postgres_options():
    docs = rendered(*CHART_VARIANTS["postgres-options"], "server.affinity.nodeAffinity.x=y",
                    "server.podDisruptionBudget.maxUnavailable=2")
    dep = find(docs, "Deployment", "wid-server")
    assert dep["spec"]["replicas"] == 3
    pod = dep["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    (c,) = pod["containers"]
    ca = "--database-ca-file=/etc/wid/database-ca/ca.crt"
    assert init["args"] == ["migrate", ca]
    assert c["args"][4:] == ["--no-migrate", "--database-pool-size=4", ca,
                             "--master-key-file=/etc/wid/master-key/master.key",
                             "--issuer-ca-file=/etc/wid/issuer-ca/ca.crt",
                             "--tls-cert=/etc/wid/tls/tls.crt", "--tls-key=/etc/wid/tls/tls.key"]
    url = {"name": "WID_DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "wid-database", "key": "uri"}}}
    assert url in init["env"] and url in c["env"]
    ca_mount = {"name": "database-ca", "mountPath": "/etc/wid/database-ca", "readOnly": True}
    assert init["volumeMounts"] == [ca_mount]
    assert ca_mount in c["volumeMounts"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["database-ca"]["configMap"] == {"name": "wid-database-ca",
                                                   "items": [{"key": "root.crt", "path": "ca.crt"}]}
    assert volumes["master-key"]["secret"]["items"] == [{"key": "key", "path": "master.key"}]
    # An affinity of one's own replaces the default anti-affinity.
    assert pod["affinity"] == {"nodeAffinity": {"x": "y"}}
    assert find(docs, "PodDisruptionBudget", "wid-server")["spec"]["maxUnavailable"] == 2

    # Migrations run by hand: no initContainer, and the pods still never migrate by themselves.
    dep = find(rendered(*POSTGRES, "server.database.migrate=false"), "Deployment", "wid-server")
    pod = dep["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert "--no-migrate" in pod["containers"][0]["args"]
    # 0 replicas is a stopped server, not the default.
    assert find(rendered(*POSTGRES, "server.replicas=0"), "Deployment", "wid-server")["spec"]["replicas"] == 0
    # Only the server's objects change with the mode.
    assert not [d for d in rendered(*POSTGRES, "server.enabled=false") if d["metadata"]["name"] == "wid-server"]


@pytest.mark.parametrize("sets,message", [
    ([POSTGRES[0], POSTGRES[2]], "server.database.existingSecret needs server.masterKey.existingSecret"),
    ([POSTGRES[0], POSTGRES[1]], "server.database.existingSecret needs server.tlsSecretName"),
    ([POSTGRES[0]], "server.database.existingSecret needs server.masterKey.existingSecret"),
    (["server.replicas=2"], "server.replicas=2 needs server.database.existingSecret"),
    (["server.replicas=3", "server.tlsSecretName=wid-tls", "server.masterKey.existingSecret=k"],
     "server.replicas=3 needs server.database.existingSecret"),
], ids=["no-master-key", "no-tls", "database-only", "sqlite-2-replicas", "sqlite-3-replicas"])
def test_chart_refuses_what_cannot_work(sets: list[str], message: str):
    error = render_error(*sets)
    assert message in error, error
    assert "deploy/README.md" in error, error


COREDNS_RULES = [
    f"rewrite stop name exact login.microsoftonline.com wid-server.{CHART_NS}.svc.cluster.local answer auto",
    f"rewrite stop name exact management.azure.com wid-server.{CHART_NS}.svc.cluster.local answer auto",
    f"rewrite stop name exact graph.microsoft.com wid-server.{CHART_NS}.svc.cluster.local answer auto",
    r"rewrite stop name regex ^[a-z0-9-]+\.vault\.azure\.net\.?$ "
    f"wid-server.{CHART_NS}.svc.cluster.local answer auto",
]


def test_chart_azure_hostnames_mode():
    """The mode changes exactly these: `wid serve --azure-hostnames`, the Service's port 443, and no
    --authority-host for the webhook (it injects upstream's authority of AZURE_ENVIRONMENT, as AKS
    does); everything else is the rendering with the same CA bundle in normal mode."""
    normal = rendered("webhook.caBundleConfigMap=wid-ca")
    docs = rendered(*AZURE_HOSTNAMES)

    (c,) = find(docs, "StatefulSet", "wid-server")["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["serve", "--data-dir=/var/lib/wid", "--listen=0.0.0.0:8443",
                         f"--host=wid-server.{CHART_NS}.svc", "--azure-hostnames"]
    assert find(docs, "Service", "wid-server")["spec"]["ports"] == [
        {"name": "https", "port": 8443, "targetPort": "https", "protocol": "TCP"},
        {"name": "https-azure", "port": 443, "targetPort": "https", "protocol": "TCP"},
    ]
    (wh,) = find(docs, "Deployment", "azure-wi-webhook-controller-manager")["spec"]["template"]["spec"]["containers"]
    assert wh["args"] == [
        "webhook",
        "--webhook-cert-dir=/certs",
        "--listen=:9443",
        "--health-addr=:9440",
        "--metrics-addr=:8095",
        "--log-level=info",
        "--tls-min-version=1.3",
        "--ca-bundle-configmap=wid-ca",
        "--ca-bundle-key=ca.crt",
    ]
    # The cloud whose authority the webhook injects (upstream's mapping: AzurePublicCloud ->
    # https://login.microsoftonline.com/, test_webhook_in_azure_hostnames_mode runs it).
    assert find(docs, "ConfigMap", "azure-wi-webhook-config")["data"]["AZURE_ENVIRONMENT"] == "AzurePublicCloud"
    # No CoreDNS snippet unless asked, and nothing in kube-system ever.
    assert not [d for d in docs if "coredns" in d["metadata"]["name"]]
    assert {d["metadata"].get("namespace", CHART_NS) for d in docs} == {CHART_NS}

    # Undo those three changes: what is left is the normal rendering.
    c["args"].remove("--azure-hostnames")
    find(docs, "Service", "wid-server")["spec"]["ports"].pop()
    wh["args"].insert(7, f"--authority-host=https://wid-server.{CHART_NS}.svc:8443/")
    assert docs == normal

    # On PostgreSQL the Deployment's replicas run in the mode too (their certificate is the
    # operator's, server.tlsSecretName: deploy/README.md says which names it must cover).
    dep = find(rendered(*POSTGRES, *AZURE_HOSTNAMES), "Deployment", "wid-server")
    assert "--azure-hostnames" in dep["spec"]["template"]["spec"]["containers"][0]["args"]
    # Served on 443 already: no second port.
    ports = find(rendered(*AZURE_HOSTNAMES, "server.port=443"), "Service", "wid-server")["spec"]["ports"]
    assert ports == [{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}]
    # The webhook alone (its server elsewhere) still checks its part; the server alone needs no webhook values.
    assert not [d for d in rendered(*AZURE_HOSTNAMES, "server.enabled=false") if d["metadata"]["name"] == "wid-server"]
    (c,) = find(rendered("azureHostnames.enabled=true", "webhook.enabled=false"), "StatefulSet",
                "wid-server")["spec"]["template"]["spec"]["containers"]
    assert "--azure-hostnames" in c["args"]


def test_chart_azure_hostnames_coredns_snippet():
    docs = rendered(*AZURE_HOSTNAMES, "azureHostnames.coreDNSSnippet=true")
    cm = find(docs, "ConfigMap", "wid-coredns-azure-hostnames")
    assert cm["metadata"]["namespace"] == CHART_NS
    assert cm["data"] == {"wid-azure-hostnames.override": "\n".join(COREDNS_RULES) + "\n"}
    # The rules name the Service the chart renders, in the cluster's domain.
    svc = find(docs, "Service", "wid-server")
    assert all(f" {svc['metadata']['name']}.{CHART_NS}.svc.cluster.local " in r for r in COREDNS_RULES)
    cm = find(rendered(*AZURE_HOSTNAMES, "azureHostnames.coreDNSSnippet=true",
                       "azureHostnames.clusterDomain=k8s.example."), "ConfigMap", "wid-coredns-azure-hostnames")
    assert f" wid-server.{CHART_NS}.svc.k8s.example answer auto" in cm["data"]["wid-azure-hostnames.override"]
    # Only in the mode, and only with this release's server.
    for sets in (["azureHostnames.coreDNSSnippet=true"],
                 [*AZURE_HOSTNAMES, "azureHostnames.coreDNSSnippet=true", "server.enabled=false"]):
        assert not [d for d in rendered(*sets) if "coredns" in d["metadata"]["name"]]


def dns_query(port: int, name: str, qtype: int = 1) -> tuple[int, list[tuple[str, int, bytes]]]:
    """One DNS query over UDP to 127.0.0.1:port: (rcode, [(owner name, type, rdata)] of the answer)."""
    qid = int.from_bytes(os.urandom(2), "big")
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split(".")) + b"\0"
    query = qid.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + question + \
        qtype.to_bytes(2, "big") + b"\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(query, ("127.0.0.1", port))
        msg = s.recv(4096)
    assert int.from_bytes(msg[:2], "big") == qid

    def read_name(at: int) -> tuple[str, int]:
        """The name at `at` (compression pointers followed) and the offset after it."""
        labels, end = [], None
        while msg[at]:
            if msg[at] & 0xC0 == 0xC0:
                end = end or at + 2
                at = int.from_bytes(msg[at:at + 2], "big") & 0x3FFF
                continue
            labels.append(msg[at + 1:at + 1 + msg[at]].decode())
            at += 1 + msg[at]
        return ".".join(labels) + ".", end or at + 1

    at = read_name(12)[1] + 4
    answers = []
    for _ in range(int.from_bytes(msg[6:8], "big")):
        owner, at = read_name(at)
        rtype, length = int.from_bytes(msg[at:at + 2], "big"), int.from_bytes(msg[at + 8:at + 10], "big")
        answers.append((owner, rtype, msg[at + 10:at + 10 + length]))
        at += 10 + length
    return msg[3] & 0x0F, answers


def test_coredns_runs_the_rendered_rewrite_rules(tmp_path: Path):
    """The rules the chart renders, run by CoreDNS itself (tests/e2e/coredns: its rewrite plugin, and
    its hosts plugin standing in for the kubernetes plugin with the Service's address): each of
    Azure's names, in any case, is answered with the wid Service's address under the name asked, and
    nothing else is."""
    rules = find(rendered(*AZURE_HOSTNAMES, "azureHostnames.coreDNSSnippet=true"), "ConfigMap",
                 "wid-coredns-azure-hostnames")["data"]["wid-azure-hostnames.override"]
    service_ip = "10.96.23.45"
    (tmp_path / "hosts").write_text("")
    port = free_port()
    corefile = tmp_path / "Corefile"
    corefile.write_text(f".:{port} {{\n    bind 127.0.0.1\n    errors\n{textwrap.indent(rules, '    ')}"
                        f"    hosts {tmp_path / 'hosts'} {{\n"
                        f"        {service_ip} wid-server.{CHART_NS}.svc.cluster.local\n    }}\n}}\n")
    log = tmp_path / "coredns.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([tool("coredns"), "-conf", str(corefile)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if dns_query(port, f"wid-server.{CHART_NS}.svc.cluster.local")[0] == 0:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)

        address = socket.inet_aton(service_ip)
        for name in ("login.microsoftonline.com", "management.azure.com", "graph.microsoft.com",
                     "kv1.vault.azure.net", "my-vault-01.vault.azure.net", "Login.MicrosoftOnline.com",
                     "KV1.Vault.Azure.Net"):
            rcode, answers = dns_query(port, name)
            # Names compare case-insensitively (CoreDNS answers in lower case, resolvers accept it).
            assert (rcode, answers) == (0, [(name.lower() + ".", 1, address)]), (name, rcode, answers)
        # What the rules must not catch: the search-domain forms a pod's resolver tries first, other
        # names under Microsoft's domains, and anything but one label before .vault.azure.net.
        for name in (f"login.microsoftonline.com.{CHART_NS}.svc.cluster.local", "www.login.microsoftonline.com",
                     "microsoftonline.com", "azure.com", "vault.azure.net", "a.b.vault.azure.net",
                     "kv1.vault.azure.net.example.com", "management.azure.com.cn"):
            rcode, answers = dns_query(port, name)
            assert not [a for a in answers if a[2] == address], (name, answers)
    finally:
        stop_process(proc)


@pytest.mark.parametrize("sets,message", [
    (["azureHostnames.enabled=true"], "azureHostnames.enabled needs webhook.caBundleConfigMap"),
    ([*AZURE_HOSTNAMES, "webhook.authorityHost=https://wid.example.internal/"],
     "azureHostnames.enabled gives pods upstream's AZURE_AUTHORITY_HOST"),
    ([*AZURE_HOSTNAMES, "webhook.azureEnvironment=AzureUSGovernmentCloud"],
     "azureHostnames.enabled needs webhook.azureEnvironment=AzurePublicCloud"),
], ids=["no-ca-bundle", "authority-host", "other-cloud"])
def test_chart_azure_hostnames_refuses_what_cannot_work(sets: list[str], message: str):
    error = render_error(*sets)
    assert message in error, error
    assert "deploy/README.md" in error, error
    # The aliases of the public cloud that go-autorest (and so upstream's webhook) accepts.
    for env in ("AzureCloud", "azurepubliccloud"):
        render(*AZURE_HOSTNAMES, f"webhook.azureEnvironment={env}")


def test_the_chart_passes_helm_lint():
    for sets in ([], POSTGRES, [*AZURE_HOSTNAMES, "azureHostnames.coreDNSSnippet=true"]):
        proc = helm("lint", str(CHART), *[a for s in sets for a in ("--set", s)])
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "0 chart(s) failed" in proc.stdout, proc.stdout


@pytest.fixture(scope="module")
def helm_kube(tmp_path_factory: pytest.TempPathFactory):
    """An apiserver of its own for `helm install`: the chart's cluster-scoped objects keep upstream's
    fixed names (the MutatingWebhookConfiguration, the ClusterRole), which the webhook fixture also
    registers in the shared one."""
    with running_kube(tmp_path_factory.mktemp("helm-kube")) as k:
        yield k


# kube-apiserver 1.20 serves PodDisruptionBudgets as policy/v1beta1 only.
ON_KUBERNETES_120 = [
    "server.podDisruptionBudget.apiVersion=policy/v1beta1",
    "webhook.podDisruptionBudget.apiVersion=policy/v1beta1",
    "webhook.tenantId=00000000-0000-0000-0000-000000000001",
]


@pytest.mark.parametrize("mode,kind,upgrade,replicas", [
    ("sqlite", "StatefulSet", "server.replicas=0", (1, 0)),
    ("postgres", "Deployment", "server.replicas=3", (2, 3)),
    ("azure-hostnames", "StatefulSet", "server.replicas=0", (1, 0)),
], ids=["sqlite", "postgres", "azure-hostnames"])
def test_helm_install_upgrade_uninstall(helm_kube: Kube, mode: str, kind: str, upgrade: str, replicas: tuple):
    """The real Helm installs, upgrades and uninstalls either mode in a real apiserver: every object
    the chart renders is created and accepted (no kubelet runs the pods), and an upgrade changes them."""
    ns = f"helm-{mode}"
    mode_sets = {"sqlite": [], "postgres": POSTGRES, "azure-hostnames": CHART_VARIANTS["azure-hostnames"]}
    sets = [*ON_KUBERNETES_120, *mode_sets[mode]]
    target = ["--kubeconfig", str(helm_kube.kubeconfig), "--namespace", ns]

    def objects(*extra: str, missing_ok: bool = False) -> list[dict]:
        """The objects of the rendered chart, as the apiserver holds them."""
        args = ["get", "-f", "-", "-o", "json", "-n", ns] + (["--ignore-not-found"] if missing_ok else [])
        out = helm_kube.kubectl(*args, stdin=render(*sets, *extra, namespace=ns))
        if not out.strip():
            return []
        got = json.loads(out)
        return got["items"] if got.get("kind") == "List" else [got]

    proc = helm("install", "wid", str(CHART), *target, "--create-namespace",
                *[a for s in sets for a in ("--set", s)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    try:
        installed = objects()
        assert len(installed) == len(load_docs(render(*sets, namespace=ns)))
        assert {o["metadata"]["labels"]["app.kubernetes.io/managed-by"] for o in installed} == {"Helm"}
        assert find(installed, kind, "wid-server")["spec"]["replicas"] == replicas[0]

        proc = helm("upgrade", "wid", str(CHART), *target, "--reuse-values", "--set", upgrade)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "REVISION: 2" in proc.stdout, proc.stdout
        assert find(objects(upgrade), kind, "wid-server")["spec"]["replicas"] == replicas[1]
    finally:
        proc = helm("uninstall", "wid", *target)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert objects(missing_ok=True) == []


def readme_move_job() -> dict:
    """The Job of deploy/README.md that moves a SQLite data dir to PostgreSQL."""
    text = (REPO / "deploy" / "README.md").read_text()
    for block in re.findall(r"^( *)```yaml\n(.*?)^\1```", text, flags=re.S | re.M):
        indent, body = block
        doc = yaml.safe_load(textwrap.dedent(body))
        if isinstance(doc, dict) and doc.get("kind") == "Job":
            return doc
    raise AssertionError("deploy/README.md has no Job")


def test_readme_move_job_matches_the_chart():
    job = readme_move_job()
    pod = job["spec"]["template"]["spec"]
    (export,) = pod["initContainers"]
    (imp,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    # The export reads the StatefulSet's volume where the StatefulSet mounts it.
    sts = find(rendered(), "StatefulSet", "wid-server")
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == f"{claim['metadata']['name']}-wid-server-0"
    sts_c = sts["spec"]["template"]["spec"]["containers"][0]
    assert "--data-dir=/var/lib/wid" in sts_c["args"] and "--data-dir=/var/lib/wid" in export["args"]
    assert {"name": "data", "mountPath": "/var/lib/wid"} in export["volumeMounts"]
    assert job["spec"]["template"]["spec"]["securityContext"] == sts["spec"]["template"]["spec"]["securityContext"]
    # The import writes where the Deployment reads: the same Secrets, keys and mount paths.
    dep = find(rendered(*POSTGRES), "Deployment", "wid-server")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    (url,) = [e for e in c["env"] if e["name"] == "WID_DATABASE_URL"]
    assert url in imp["env"]
    assert "--master-key-file=/etc/wid/master-key/master.key" in c["args"] and \
        "--master-key-file=/etc/wid/master-key/master.key" in imp["args"]
    assert volumes["master-key"]["secret"]["secretName"] == "wid-master-key"
    assert imp["args"][0] == "import" and export["args"][0] == "export"
    assert export["args"][-1] == imp["args"][-1]


def test_readme_move_job_server_dry_run(kube: Kube, namespaces: None):
    dry_run(kube, yaml.safe_dump(readme_move_job()))


def probe(port: int, path: str, host_header: str, ip: str = "127.0.0.1") -> int:
    """GET as kubelet probes: to the pod IP (no SNI), certificate not verified, Host = IP:port."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((ip, port), timeout=5) as raw:
        with ctx.wrap_socket(raw) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: kube-probe/1.20\r\n"
                      "Connection: close\r\n\r\n".encode())
            head = s.recv(64).decode(errors="replace")
    return int(head.split()[1])


def test_server_runs_with_the_statefulset_arguments(tmp_path: Path):
    docs = load_docs((MANIFESTS / "wid-server.yaml").read_text())
    (c,) = find(docs, "StatefulSet", "wid-server")["spec"]["template"]["spec"]["containers"]
    data = tmp_path / "var-lib-wid"
    port = free_port()
    args = [a.replace("/var/lib/wid", str(data)).replace("0.0.0.0:8443", f"127.0.0.1:{port}") for a in c["args"]]
    assert args[0] == "serve"
    env = {e["name"]: e["value"].replace("/var/lib/wid", str(data)) for e in c["env"]}
    # start_wid reads the profile at tmp_path/profile.json; the manifest puts it on the data volume.
    assert env["WID_CONFIG"] == str(data / "profile.json")
    env["WID_CONFIG"] = str(tmp_path / "profile.json")
    # The public name does not resolve here: readiness as kubelet checks it.
    w = start_wid(tmp_path, args[1:], env=env, data=data,
                  ready=lambda profile, ca: probe(port, "/readyz", f"10.244.0.7:{port}") == 200)
    try:
        assert w.server == f"https://wid-server.wid-system.svc:{port}"
        # The probes of the StatefulSet, as kubelet sends them.
        for path in (c["livenessProbe"]["httpGet"]["path"], c["readinessProbe"]["httpGet"]["path"]):
            assert probe(port, path, f"10.244.0.7:{port}") == 200
        # The local CA's certificate is valid for the in-cluster names, the vaults' included.
        ctx = ssl.create_default_context(cafile=str(data / "ca.pem"))
        for name in ("wid-server.wid-system.svc", "kv-e2e.vault.wid-server.wid-system.svc"):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname=name) as s:
                    assert s.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        stop_process(w.proc)


def request_as(port: int, name: str, ca: Path, path: str, host: Optional[str] = None) -> tuple[int, Any, bytes]:
    """GET to 127.0.0.1:port as a client of https://NAME/ sends it (SNI NAME; Host NAME, no port: the
    Service's 443, unless `host` says otherwise), trusting only `ca`."""
    ctx = ssl.create_default_context(cafile=str(ca))
    conn = http.client.HTTPSConnection(name, port, context=ctx, timeout=30)
    conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30), server_hostname=name)
    try:
        conn.request("GET", path, headers={"Host": host or name})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()  # headers: case-insensitive
    finally:
        conn.close()


def test_server_runs_with_the_azure_hostnames_statefulset_arguments(tmp_path: Path):
    """`wid serve` with the mode's StatefulSet arguments: the local CA's certificate covers Azure's
    names, and requests under them get Azure's answers (what pods reach through the CoreDNS rewrite
    and the Service's port 443)."""
    (c,) = find(rendered(*AZURE_HOSTNAMES), "StatefulSet", "wid-server")["spec"]["template"]["spec"]["containers"]
    assert "--azure-hostnames" in c["args"]
    data = tmp_path / "var-lib-wid"
    port = free_port()
    args = [a.replace("/var/lib/wid", str(data)).replace("0.0.0.0:8443", f"127.0.0.1:{port}") for a in c["args"]]
    env = {e["name"]: e["value"].replace("/var/lib/wid", str(data)) for e in c["env"]}
    env["WID_CONFIG"] = str(tmp_path / "profile.json")
    w = start_wid(tmp_path, args[1:], env=env, data=data,
                  ready=lambda profile, ca: probe(port, "/readyz", f"10.244.0.7:{port}") == 200)
    try:
        ca = data / "ca.pem"
        # Its own in-cluster names as before (their URLs carry the port), and Azure's (a vault's host
        # is the data plane only: no credentials, its challenge).
        own, vault = f"wid-server.{CHART_NS}.svc", f"kv-e2e.vault.wid-server.{CHART_NS}.svc"
        assert request_as(port, own, ca, "/healthz", f"{own}:{port}")[0] == 200
        assert request_as(port, vault, ca, "/secrets/s?api-version=7.4", f"{vault}:{port}")[0] == 401
        for name in ("login.microsoftonline.com", "management.azure.com", "graph.microsoft.com"):
            assert request_as(port, name, ca, "/healthz")[0] == 200, name
        assert request_as(port, "kv-e2e.vault.azure.net", ca, "/secrets/s?api-version=7.4")[0] == 401
        # The sign-in host describes itself, as Entra does.
        status, _, body = request_as(port, "login.microsoftonline.com", ca,
                                     f"/{w.tenant}/v2.0/.well-known/openid-configuration")
        assert status == 200, body
        assert json.loads(body)["token_endpoint"] == f"{AZURE_LOGIN}{w.tenant}/oauth2/v2.0/token"
        # A vault under Azure's name challenges for Key Vault's own resource.
        status, headers, _ = request_as(port, "kv-e2e.vault.azure.net", ca, "/secrets/s?api-version=7.4")
        assert status == 401
        challenge = headers["WWW-Authenticate"]
        assert f'authorization="{AZURE_LOGIN}{w.tenant}"' in challenge, challenge
        assert 'resource="https://vault.azure.net"' in challenge, challenge
    finally:
        stop_process(w.proc)


def pod_spec_of(kube: Kube, ns: str, client_id: str) -> dict:
    """A labelled pod (its ServiceAccount naming the identity) as the apiserver stores it."""
    kube.service_account(ns, "app-sa", {"azure.workload.identity/client-id": client_id})
    return kube.create({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "demo", "namespace": ns, "labels": {"azure.workload.identity/use": "true"}},
        "spec": {"serviceAccountName": "app-sa", "automountServiceAccountToken": False,
                 "containers": [{"name": "app", "image": "registry.invalid/app:1",
                                 "env": [{"name": "EXISTING", "value": "kept"}]}]},
    })


def test_webhook_in_azure_hostnames_mode(kube: Kube, wid, webhook, tmp_path: Path):
    """The mode's webhook Deployment (arguments and ConfigMap, from the real Helm) behind the real
    apiserver: a pod gets AKS's AZURE_AUTHORITY_HOST and wid's CA, and nothing else differs from the
    same pod admitted in normal mode."""
    client_id = str(uuid.uuid4())
    normal = pod_spec_of(kube, kube.namespace(), client_id)

    docs = rendered(*AZURE_HOSTNAMES)
    (c,) = find(docs, "Deployment", "azure-wi-webhook-controller-manager")["spec"]["template"]["spec"]["containers"]
    config = find(docs, "ConfigMap", "azure-wi-webhook-config")["data"]
    saved = (webhook.args, webhook.env, webhook.extra_args)
    # Only the addresses, paths and the kubeconfig are the test's (as the fixture does for normal mode).
    cert_dir = Path(next(a.split("=", 1)[1] for a in webhook.args if a.startswith("--webhook-cert-dir=")))
    args = localize_webhook_args(c["args"], cert_dir, (webhook.port, webhook.health_port, webhook.metrics_port),
                                 None)
    webhook.stop()
    webhook.args = [webhook.args[0], *args, "--kubeconfig", str(kube.webhook_kubeconfig)]
    webhook.env = {**webhook.env, **config, "AZURE_TENANT_ID": wid.tenant}
    webhook.extra_args = []
    try:
        webhook.start()
        azure = pod_spec_of(kube, kube.namespace(), client_id)
    finally:
        webhook.stop()
        webhook.args, webhook.env, webhook.extra_args = saved
        webhook.start()

    (app,) = azure["spec"]["containers"]
    env = {e["name"]: e["value"] for e in app["env"]}
    assert env["AZURE_AUTHORITY_HOST"] == AZURE_LOGIN
    token_dir = "/var/run/secrets/azure/wi"
    assert env["AZURE_FEDERATED_TOKEN_FILE"] == f"{token_dir}/token/azure-identity-token"
    bundle = f"{token_dir}/ca-bundle/ca.crt"
    assert env["SSL_CERT_FILE"] == env["REQUESTS_CA_BUNDLE"] == env["NODE_EXTRA_CA_CERTS"] == bundle

    # The normal pod, with those two changes made by hand, is the pod of the mode.
    expected = copy.deepcopy(normal["spec"])
    (want,) = expected["containers"]
    for e in want["env"]:
        if e["name"] == "AZURE_AUTHORITY_HOST":
            assert e["value"] == wid.server + "/"
            e["value"] = AZURE_LOGIN
    want["env"] += [{"name": n, "value": bundle}
                    for n in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")]
    (volume,) = [v for v in expected["volumes"] if "projected" in v and v["name"].startswith("azure-")]
    volume["projected"]["sources"].append(
        {"configMap": {"name": "wid-ca", "items": [{"key": "ca.crt", "path": "ca-bundle/ca.crt"}]}})
    assert azure["spec"] == expected
    assert azure["metadata"]["labels"] == normal["metadata"]["labels"]
    assert azure["metadata"].get("annotations") == normal["metadata"].get("annotations")


# --- The Deployment's arguments against a real PostgreSQL -------------------------------------------


def database_url() -> str:
    """WID_TEST_DATABASE_URL (a superuser URL, from scripts/postgres.sh); skip without it, fail in CI."""
    url = os.environ.get("WID_TEST_DATABASE_URL")
    if not url:
        why = "WID_TEST_DATABASE_URL is not set (eval \"$(bash scripts/postgres.sh start DIR)\" sets it)"
        if os.environ.get("CI"):
            pytest.fail(f"required in CI: {why}")
        pytest.skip(why)
    return url


def psql(url: str, sql: str) -> None:
    found = shutil.which("psql") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))), None)
    assert found, "psql not found (Debian's postgresql-client, installed with scripts/postgres.sh's postgresql)"
    proc = subprocess.run([found, url, "-v", "ON_ERROR_STOP=1", "-qc", sql], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, f"psql {sql}: {proc.stderr}"


def with_database(url: str, name: str) -> str:
    """The same server and options, another database."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def materialize(pod: dict, container: dict, root: Path, secrets: dict, config_maps: dict) -> dict[str, str]:
    """Local directories standing in for a container's volume mounts (shared by the pod's
    containers, as volumes are), filled from `secrets`/`config_maps` ({name: {key: bytes}}) with the
    volume's items; returns {mountPath: directory}."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {}
    for m in container.get("volumeMounts", []):
        volume, d = volumes[m["name"]], root / m["name"]
        if not d.exists():
            d.mkdir(parents=True)
            if "secret" in volume or "configMap" in volume:
                source = volume.get("secret") or volume["configMap"]
                data = (secrets if "secret" in volume else config_maps)[source.get("secretName") or source["name"]]
                for item in source.get("items") or [{"key": k, "path": k} for k in data]:
                    (d / item["path"]).write_bytes(data[item["key"]])
                    (d / item["path"]).chmod(0o600)
            else:
                assert volume.get("emptyDir") == {}, volume
        mounts[m["mountPath"]] = str(d)
    return mounts


def localize(text: str, mounts: dict[str, str], listen: Optional[str] = None) -> str:
    """In-pod paths (under a mount path, at the start of the value or after `=`) and the listening
    address replaced for a local process, in one pass (local paths may lie under /tmp, a mount path)."""
    if mounts:
        paths = "|".join(re.escape(p) for p in sorted(mounts, key=len, reverse=True))
        text = re.sub(f"(^|=)({paths})(?=/|$)", lambda m: m.group(1) + mounts[m.group(2)], text)
    return text.replace("0.0.0.0:8443", listen) if listen else text


def container_env(container: dict, mounts: dict[str, str], secrets: dict) -> dict[str, str]:
    env = {}
    for e in container["env"]:
        if "value" in e:
            env[e["name"]] = localize(e["value"], mounts)
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = secrets[ref["name"]][ref["key"]].decode()
    return env


def https(ip: str, port: int, name: str, ca: Path, method: str, path: str, body: Optional[bytes] = None,
          headers: Optional[dict] = None) -> tuple[int, dict]:
    """A request to one replica (IP), as a client of the Service name sends it (SNI, Host)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    conn = http.client.HTTPSConnection(name, port, context=ctx, timeout=30)
    conn.sock = ctx.wrap_socket(socket.create_connection((ip, port), timeout=30), server_hostname=name)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw.strip() else {}
    finally:
        conn.close()


def test_server_runs_with_the_deployment_arguments(tmp_path: Path):
    """`wid migrate` and two `wid serve` replicas with the Deployment's own arguments, environment
    and volumes on one database, as pods behind the Service: the same port on two loopback addresses,
    the same public name, the same master key and certificate."""
    admin_url = database_url()
    name = f"wid_e2e_{uuid.uuid4().hex[:12]}"
    psql(admin_url, f"CREATE DATABASE {name}")
    try:
        run_replicas(tmp_path, admin_url, name)
    finally:
        psql(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def run_replicas(tmp_path: Path, admin_url: str, name: str) -> None:
    # The database as the chart documents it: TLS and its CA from a ConfigMap, when the test server
    # offers both.
    tls_url, db_ca = os.environ.get("WID_TEST_DATABASE_TLS_URL"), os.environ.get("WID_TEST_DATABASE_CA")
    sets = [*POSTGRES]
    config_maps: dict = {}
    if tls_url and db_ca:
        url = with_database(tls_url, name)
        sets.append("server.database.caConfigMap=wid-database-ca")
        config_maps["wid-database-ca"] = {"ca.crt": Path(db_ca).read_bytes()}
    else:
        url = with_database(admin_url, name)
    host = f"wid-server.{CHART_NS}.svc"
    certs = tmp_path / "certs"
    gen = certgen()
    subprocess.run([gen, "ca", "-out", str(certs), "-cn", "e2e-ca"], check=True, capture_output=True, timeout=60)
    subprocess.run([gen, "server", "-ca-cert", str(certs / "ca.crt"), "-ca-key", str(certs / "ca.key"),
                    "-out", str(certs), "-dns", f"{host},*.vault.{host}"], check=True, capture_output=True, timeout=60)
    secrets = {
        "wid-database": {"url": url.encode()},
        "wid-master-key": {"master.key": os.urandom(32)},
        "wid-tls": {"tls.crt": (certs / "tls.crt").read_bytes(), "tls.key": (certs / "tls.key").read_bytes()},
    }

    dep = find(rendered(*sets), "Deployment", "wid-server")
    pod = dep["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    (c,) = pod["containers"]
    port = free_port()
    binary = str(wid_bin())
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}

    def pod_dir(i: int) -> Path:
        return tmp_path / f"pod-{i}"

    def command(container: dict, i: int, ip: Optional[str] = None) -> tuple[list[str], dict, dict]:
        """Pod i's container as a local process: argv, environment, {mountPath: directory}."""
        mounts = materialize(pod, container, pod_dir(i), secrets, config_maps)
        args = [localize(a, mounts, f"{ip}:{port}" if ip else None) for a in container["args"]]
        env = {**base_env, "HOME": str(pod_dir(i)), **container_env(container, mounts, secrets)}
        return [binary, *args], env, mounts

    # Without the initContainer, wid serve --no-migrate refuses the empty database.
    serve, env, _ = command(c, 0, "127.0.0.2")
    proc = subprocess.run(serve, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "wid migrate" in proc.stdout + proc.stderr, proc.stdout + proc.stderr

    # The initContainers of two pods starting together: both succeed (one migrates, under the lock).
    runs = []
    for i in (0, 1):
        args, env, _ = command(init, i)
        runs.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for run in runs:
        out, _ = run.communicate(timeout=120)
        assert run.returncode == 0, out

    replicas = []
    try:
        for i, ip in enumerate(("127.0.0.2", "127.0.0.3")):
            args, env, mounts = command(c, i, ip)
            assert args[1] == "serve"
            data = Path(mounts["/var/lib/wid"])
            # The profile is on the data volume (WID_CONFIG), where start_wid looks for it.
            assert env["WID_CONFIG"] == str(data / "profile.json")
            # The public name does not resolve here: readiness as kubelet checks it, on the pod's address.
            ready = lambda profile, ca, ip=ip: probe(port, "/readyz", f"10.244.0.7:{port}", ip) == 200  # noqa: E731
            replicas.append(start_wid(data, args[2:], env=env, data=data, ready=ready))
        a, b = replicas
        for ip in ("127.0.0.2", "127.0.0.3"):
            for path in (c["livenessProbe"]["httpGet"]["path"], c["readinessProbe"]["httpGet"]["path"]):
                assert probe(port, path, f"10.244.0.7:{port}", ip) == 200
            # Both serve the Secret's certificate, valid for the Service name and the vaults'.
            ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
            for server_name in (host, f"kv-e2e.vault.{host}"):
                with socket.create_connection((ip, port), timeout=5) as raw:
                    with ctx.wrap_socket(raw, server_hostname=server_name) as s:
                        assert s.version() in ("TLSv1.2", "TLSv1.3")

        # One admin, one tenant and subscription: every replica wrote the same profile.
        assert a.server == b.server == f"https://{host}:{port}"
        for key in ("tenantId", "subscriptionId", "clientId", "clientSecret"):
            assert a.profile[key] == b.profile[key], key

        # A token from one replica works on the other, and a write through one is read on the other.
        status, token = https("127.0.0.2", port, host, certs / "ca.crt", "POST", f"/{a.tenant}/oauth2/v2.0/token",
                              body=urllib.parse.urlencode({
                                  "grant_type": "client_credentials", "client_id": a.profile["clientId"],
                                  "client_secret": a.profile["clientSecret"],
                                  "scope": f"{a.profile.get('managementResource') or a.server}/.default",
                              }).encode(),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 200, token
        auth = {"Authorization": f"Bearer {token['access_token']}", "Content-Type": "application/json"}
        rg = f"/subscriptions/{a.profile['subscriptionId']}/resourcegroups/rg-replicas?api-version=2024-11-01"
        status, body = https("127.0.0.3", port, host, certs / "ca.crt", "PUT", rg,
                             body=json.dumps({"location": "westeurope"}).encode(), headers=auth)
        assert status in (200, 201), body
        deadline = time.monotonic() + 10  # documented: in effect everywhere within 1 s
        while True:
            status, body = https("127.0.0.2", port, host, certs / "ca.crt", "GET", rg, headers=auth)
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status == 200 and body["name"] == "rg-replicas", body
    finally:
        for w in replicas:
            stop_process(w.proc)


def test_deploy_tools_unit_tests(tmp_path: Path):
    env_file = tmp_path / "env"
    env_file.write_text(subprocess.run(["bash", str(KUBE_SH), "env"], capture_output=True, text=True,
                                       check=True).stdout)
    go = read_env_file(env_file)["GO"]
    proc = subprocess.run(
        [go, "test", "./..."], cwd=REPO / "deploy" / "tools", capture_output=True, text=True, timeout=600,
        env={**os.environ, "GOPROXY": "off", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0", "GOTOOLCHAIN": "local",
             "GOCACHE": str(REPO / "target" / "e2e-gocache")},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
