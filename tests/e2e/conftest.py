"""Fixtures of the end-to-end suite: wid against a real kube-apiserver (v1.20.2, scripts/kube.sh).

`kube`: one etcd + kube-apiserver per session (`scripts/kube.sh up`), with a test CA, a static admin
token, TokenRequest with audience api://AzureADTokenExchange, and issuer discovery readable by anyone.

`wid`: one `wid serve` per session that trusts the apiserver's CA for issuer discovery
(`--issuer-ca-file`), set up through the CLI as in the walkthrough.

`webhook`: one `wid webhook` per session, started with the flags and environment of the shipped
Deployment (deploy/manifests/wid-webhook.yaml; only addresses and paths are changed to run outside a
pod, plus `--kubeconfig`), authenticated as the webhook's ServiceAccount so that only the shipped
ClusterRole grants its access, and registered with the shipped MutatingWebhookConfiguration whose
`clientConfig` is turned into a URL on 127.0.0.1 with a caBundle.

Everything is in temp dirs on ephemeral ports; nothing outside the repository's target/ and the
kube cache is written.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import shlex
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from wid_process import CLI_TIMEOUT, START_TIMEOUT, CliError, Wid, http_get, start_wid, stop_process, wid_bin  # noqa: E402,F401

REPO = Path(__file__).resolve().parents[2]
KUBE_SH = REPO / "scripts" / "kube.sh"
MANIFESTS = REPO / "deploy" / "manifests"
CHART = REPO / "deploy" / "helm" / "wid"
AUD = "api://AzureADTokenExchange"



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as `printf %q` writes them."""
    out = {}
    for line in path.read_text().splitlines():
        if "=" in line:
            (word,) = shlex.split(line)
            key, _, value = word.partition("=")
            out[key] = value
    return out


def load_docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def find(docs: list[dict], kind: str, name: Optional[str] = None) -> dict:
    found = [d for d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


class KubectlError(AssertionError):
    def __init__(self, args: list[str], proc: subprocess.CompletedProcess):
        self.stderr = proc.stderr
        self.returncode = proc.returncode
        super().__init__(f"kubectl {' '.join(args)} exited with {proc.returncode}:\n{proc.stderr}{proc.stdout}")


@dataclass
class Kube:
    """A running etcd + kube-apiserver (scripts/kube.sh up DIR)."""

    dir: Path
    env: dict

    @property
    def kubectl_bin(self) -> str:
        return self.env["KUBECTL"]

    @property
    def server(self) -> str:
        return self.env["KUBE_SERVER"]

    @property
    def issuer(self) -> str:
        return self.env["KUBE_ISSUER"]

    @property
    def ca(self) -> Path:
        return Path(self.env["KUBE_CA"])

    @property
    def kubeconfig(self) -> Path:
        return Path(self.env["KUBECONFIG"])

    @property
    def webhook_kubeconfig(self) -> Path:
        return Path(self.env["KUBE_WEBHOOK_KUBECONFIG"])

    def kubectl_run(
        self, *args: str, stdin: Optional[str] = None, kubeconfig: Optional[Path] = None
    ) -> subprocess.CompletedProcess:
        cmd = [self.kubectl_bin, "--kubeconfig", str(kubeconfig or self.kubeconfig), *args]
        return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=CLI_TIMEOUT)

    def kubectl(self, *args: str, stdin: Optional[str] = None, kubeconfig: Optional[Path] = None) -> str:
        proc = self.kubectl_run(*args, stdin=stdin, kubeconfig=kubeconfig)
        if proc.returncode != 0:
            raise KubectlError(list(args), proc)
        return proc.stdout

    def create(self, obj: dict) -> dict:
        """`kubectl create -f - -o json`: the object as the apiserver stored it (after admission)."""
        return json.loads(self.kubectl("create", "-o", "json", "-f", "-", stdin=json.dumps(obj)))

    def create_error(self, obj: dict) -> str:
        """Creates an object that admission must refuse; returns kubectl's error output."""
        proc = self.kubectl_run("create", "-o", "json", "-f", "-", stdin=json.dumps(obj))
        assert proc.returncode != 0, f"expected the apiserver to refuse, but it stored:\n{proc.stdout}"
        return proc.stderr

    def get(self, kind: str, name: str, namespace: Optional[str] = None) -> dict:
        args = ["get", kind, name, "-o", "json"]
        if namespace:
            args += ["-n", namespace]
        return json.loads(self.kubectl(*args))

    def apply(self, docs: list[dict]) -> None:
        self.kubectl("apply", "-f", "-", stdin="\n---\n".join(yaml.safe_dump(d) for d in docs))

    def api(self, method: str, path: str, body: Optional[dict] = None) -> tuple[int, dict]:
        """A raw API call with the admin token (for what kubectl 1.20 lacks, e.g. TokenRequest)."""
        req = urllib.request.Request(
            self.server + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.env['KUBE_TOKEN']}", "Content-Type": "application/json"},
        )
        ctx = ssl.create_default_context(cafile=str(self.ca))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
        try:
            with opener.open(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def namespace(self, prefix: str = "e2e") -> str:
        """A fresh namespace with its `default` ServiceAccount (no controller-manager creates it)."""
        ns = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.kubectl("create", "namespace", ns)
        self.kubectl("create", "serviceaccount", "default", "-n", ns)
        return ns

    def service_account(self, ns: str, name: str, annotations: Optional[dict] = None) -> dict:
        return self.create(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": name, "namespace": ns, "annotations": annotations or {}},
            }
        )

    def token_request(
        self, ns: str, sa: str, audience: str = AUD, expiration: int = 3600, pod: Optional[dict] = None
    ) -> str:
        """A service-account token from the TokenRequest API (kubectl 1.20 has no `create token`),
        bound to the pod as kubelet binds projected tokens."""
        spec: dict[str, Any] = {"audiences": [audience], "expirationSeconds": expiration}
        if pod is not None:
            spec["boundObjectRef"] = {
                "kind": "Pod",
                "apiVersion": "v1",
                "name": pod["metadata"]["name"],
                "uid": pod["metadata"]["uid"],
            }
        status, body = self.api(
            "POST",
            f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        assert status == 201, f"TokenRequest answered {status}: {body}"
        return body["status"]["token"]


@contextlib.contextmanager
def running_kube(d: Path, apiserver_flags: Sequence[str] = ()) -> Iterator[Kube]:
    """An etcd + kube-apiserver of its own under `d` (scripts/kube.sh up, with extra flags for the
    apiserver), stopped on exit."""
    extra = ["--", *apiserver_flags] if apiserver_flags else []
    proc = subprocess.run(["bash", str(KUBE_SH), "up", str(d), *extra], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        subprocess.run(["bash", str(KUBE_SH), "down", str(d)], capture_output=True, timeout=120)
        raise RuntimeError(f"scripts/kube.sh up failed ({proc.returncode}):\n{proc.stderr}")
    try:
        yield Kube(dir=d, env=read_env_file(d / "env"))
    finally:
        subprocess.run(["bash", str(KUBE_SH), "down", str(d)], capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory):
    with running_kube(tmp_path_factory.mktemp("kube")) as k:
        yield k


# --- wid serve -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def wid(kube: Kube, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("wid")
    w = start_wid(
        root,
        [
            "--data-dir", str(root / "data"),
            "--listen", "127.0.0.1:0",
            "--host", "localhost",
            "--issuer-ca-file", str(kube.ca),
        ],
    )
    try:
        yield w
    finally:
        stop_process(w.proc)


@pytest.fixture(scope="session")
def azure_wid(kube: Kube, tmp_path_factory: pytest.TempPathFactory):
    """`wid serve --azure-hostnames` on 127.0.0.1:443 (host `localhost`), where tests/e2e/hosts.py sends
    Azure's names (login.microsoftonline.com, management.azure.com, the vaults' NAME.vault.azure.net):
    the real clients and az run against it unmodified. Binding port 443 needs root (CI runs as root)."""
    root = tmp_path_factory.mktemp("azure-wid")
    args = ["--data-dir", str(root / "data"), "--listen", "127.0.0.1:443", "--host", "localhost",
            "--issuer-ca-file", str(kube.ca), "--azure-hostnames"]
    try:
        w = start_wid(root, args)
    except RuntimeError as e:
        if os.geteuid() != 0:
            pytest.fail(f"wid serve could not listen on 127.0.0.1:443 (run the e2e suite as root): {e}")
        raise
    try:
        assert w.server == "https://localhost"
        yield w
    finally:
        stop_process(w.proc)


# --- wid webhook -----------------------------------------------------------------------------------


def shipped_webhook_docs() -> list[dict]:
    return load_docs((MANIFESTS / "wid-webhook.yaml").read_text())


def certgen() -> str:
    out = subprocess.run(
        ["bash", str(KUBE_SH), "tool", "certgen"], capture_output=True, text=True, timeout=600, check=True
    )
    return out.stdout.strip()


@dataclass
class Webhook:
    """`wid webhook` as a process, started with the shipped Deployment's flags."""

    args: list[str]
    env: dict
    log: Path
    port: int
    health_port: int
    metrics_port: int
    ca_bundle: str
    proc: Optional[subprocess.Popen] = None
    extra_args: list = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/mutate-v1-pod"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [*self.args, *self.extra_args], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"wid webhook exited with {self.proc.returncode}:\n{self.log.read_text(errors='replace')}"
                )
            try:
                if http_get(f"http://127.0.0.1:{self.health_port}/readyz", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"wid webhook not ready after {START_TIMEOUT}s:\n{self.log.read_text(errors='replace')}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def restart(self, extra_args: list[str]) -> None:
        """Runs the webhook again with these flags added to the shipped ones."""
        self.stop()
        self.extra_args = list(extra_args)
        self.start()


def localize_webhook_args(shipped: list[str], cert_dir: Path, ports: tuple[int, int, int],
                          authority: Optional[str]) -> list[str]:
    """The Deployment's container args with in-pod addresses and paths replaced for a local process.
    `authority` replaces the shipped --authority-host; None: the Deployment must have none (the chart's
    Azure host names mode, where the webhook injects upstream's authority for the cloud)."""
    port, health, metrics = ports
    replacements = {
        "--webhook-cert-dir": str(cert_dir),
        "--listen": f"127.0.0.1:{port}",
        "--health-addr": f"127.0.0.1:{health}",
        "--metrics-addr": f"127.0.0.1:{metrics}",
        "--log-level": "debug",
    }
    if authority is None:
        assert not [a for a in shipped if a.startswith("--authority-host")], shipped
    else:
        replacements["--authority-host"] = authority
    out, seen = [], set()
    for arg in shipped:
        name, eq, _ = arg.partition("=")
        if eq and name in replacements:
            out.append(f"{name}={replacements[name]}")
            seen.add(name)
        else:
            out.append(arg)
    missing = set(replacements) - seen
    assert not missing, f"the shipped webhook Deployment lacks {sorted(missing)}"
    return out


@pytest.fixture(scope="session")
def webhook(kube: Kube, wid: Wid, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("webhook")
    docs = shipped_webhook_docs()
    # The shipped RBAC, for real: the webhook authenticates as azure-wi-webhook-admin.
    kube.apply([find(docs, "ClusterRole"), find(docs, "ClusterRoleBinding")])

    # Its own CA and a serving certificate for 127.0.0.1 (the self-signed recipe of deploy/README.md).
    gen = certgen()
    subprocess.run([gen, "ca", "-out", str(root / "ca"), "-cn", "wid-webhook-ca"], check=True)
    subprocess.run(
        [gen, "server", "-ca-cert", str(root / "ca" / "ca.crt"), "-ca-key", str(root / "ca" / "ca.key"),
         "-out", str(root / "certs"), "-ip", "127.0.0.1", "-dns", "localhost"],
        check=True,
    )
    ca_bundle = base64.b64encode((root / "ca" / "ca.crt").read_bytes()).decode()

    deployment = find(docs, "Deployment", "azure-wi-webhook-controller-manager")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = (free_port(), free_port(), free_port())
    args = [str(wid_bin()), *localize_webhook_args(container["args"], root / "certs", ports, wid.server + "/")]
    args += ["--kubeconfig", str(kube.webhook_kubeconfig)]
    # The environment as in the pod: the ConfigMap (envFrom) with the tenant filled in, POD_NAMESPACE.
    config = find(docs, "ConfigMap", "azure-wi-webhook-config")["data"]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root),
        **config,
        "AZURE_TENANT_ID": wid.tenant,
        "POD_NAMESPACE": "wid-system",
    }
    hook = Webhook(args=args, env=env, log=root / "webhook.log", port=ports[0], health_port=ports[1],
                   metrics_port=ports[2], ca_bundle=ca_bundle)
    hook.start()

    # The shipped MutatingWebhookConfiguration, pointed at the local process.
    mwc = copy.deepcopy(find(docs, "MutatingWebhookConfiguration"))
    for w in mwc["webhooks"]:
        w["clientConfig"] = {"url": hook.url, "caBundle": ca_bundle}
    kube.apply([mwc])
    try:
        yield hook
    finally:
        kube.kubectl_run("delete", "mutatingwebhookconfiguration", mwc["metadata"]["name"])
        hook.stop()
