"""The deployment artefacts (deploy/) against the real apiserver.

- deploy/manifests/ is the chart rendered with its defaults (deploy/manifests/generate.sh), up to date;
- every manifest and several renderings of the Helm chart pass a server-side dry run
  (`kubectl apply --dry-run=server`: schema, defaulting and admission, nothing stored);
- the shapes that matter are as upstream's (the MutatingWebhookConfiguration, the webhook Deployment,
  its Service, PDB and RBAC) and as the brief asks for wid serve (probes, PVC, security context);
- `wid serve` runs with the StatefulSet's own arguments and environment and answers kubelet-style
  probes, with a certificate valid for its in-cluster names;
- the Go tools (certgen, helm-render) pass their unit tests.

Helm itself is not installable here; deploy/tools/helm-render renders the chart with the subset of
Helm's template language the chart is kept to.

kube-apiserver 1.20 predates policy/v1, so PodDisruptionBudgets are dry-run as policy/v1beta1 (the
only change made before the dry run; the chart value webhook.podDisruptionBudget.apiVersion does the
same for old clusters).
"""

from __future__ import annotations

import base64
import filecmp
import os
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import (
    CHART, KUBE_SH, MANIFESTS, REPO, Kube, find, free_port, load_docs, read_env_file, start_wid, stop_process,
)

PDB_V1 = "apiVersion: policy/v1\nkind: PodDisruptionBudget"
PDB_V1BETA1 = "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget"
CHART_NS = "wid-chart"


def tool(name: str) -> str:
    return subprocess.run(
        ["bash", str(KUBE_SH), "tool", name], capture_output=True, text=True, check=True, timeout=600
    ).stdout.strip()


def render(*sets: str, values: Path | None = None, namespace: str = CHART_NS) -> str:
    args = [tool("helm-render"), "-name", "wid", "-namespace", namespace]
    for s in sets:
        args += ["-set", s]
    if values:
        args += ["-f", str(values)]
    proc = subprocess.run([*args, str(CHART)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


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
    env = {**os.environ, "HELM_RENDER": tool("helm-render")}
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


CHART_VARIANTS = {
    "defaults": [],
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
}


@pytest.mark.parametrize("variant", sorted(CHART_VARIANTS))
def test_chart_server_dry_run(kube: Kube, namespaces: None, cert_manager_crds: None, variant: str, tmp_path: Path):
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "commonLabels": {"example.com/owner": "platform"},
        "server": {"extraArgs": ["--token-lifetime=1h", "--vault-throttle=4000"]},
        "imagePullSecrets": [{"name": "regcred"}],
    }))
    text = render("webhook.podDisruptionBudget.apiVersion=policy/v1beta1", *CHART_VARIANTS[variant],
                  values=values if variant == "options" else None)
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


def probe(port: int, path: str, host_header: str) -> int:
    """GET as kubelet probes: to the pod IP (no SNI), certificate not verified, Host = IP:port."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
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
