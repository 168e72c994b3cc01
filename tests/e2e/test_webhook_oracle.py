"""azure-workload-identity v1.6.0 itself as the oracle of `wid webhook` and `wid jwks`.

tests/webhook-oracle is a Go program that imports github.com/Azure/azure-workload-identity v1.6.0 and
serves its real pod mutator (pkg/webhook.NewPodMutator, through controller-runtime's admission.Webhook
as upstream's manager does), reading ServiceAccounts from this suite's kube-apiserver with
controller-runtime's cached client and API reader. It sends every AdmissionReview both to it and to
`wid webhook` over HTTPS, applies each side's JSON patch and compares the pods: the cases of
test_webhook.py, the behaviours upstream's own unit tests name, and 10,000 pods generated from a seed.
Differences must be rows of docs/webhook-oracle.md; any other one fails, printed with a minimal diff.
It also compares `azwi jwks` (built from the same module) with `wid jwks`.

Profiles: the session's webhook (the shipped flags; upstream gets the same authority host through its
own AzureStackCloud environment file), and four more `wid webhook` processes started here with other
flags and environment (defaults and empty --log-level; the custom token endpoint with a ConfigMap CA,
with a ClusterTrustBundle, with CA data; --audience; proxy images; other clouds), each compared with an
upstream mutator built from the same settings.

    tests/e2e/run.sh test_webhook_oracle.py
    WID_ORACLE_ONLY=gen/42,unit/TestHandleError/host_network tests/e2e/run.sh test_webhook_oracle.py -k upstream

The second form runs only those cases (ids as the report prints them) and prints each in full. The
oracle and azwi are built once per source hash by tests/webhook-oracle/build.sh (about 4 minutes cold).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, Kube, Webhook, Wid, free_port, wid_bin

ORACLE_DIR = REPO / "tests" / "webhook-oracle"
DOC = REPO / "docs" / "webhook-oracle.md"
SEED = 20260611
GENERATED = 10_000
BUILD_TIMEOUT = 1800
RUN_TIMEOUT = 1200


@pytest.fixture(scope="module")
def oracle() -> dict[str, str]:
    """Builds (or finds in ~/.cache/wid) the oracle and azwi; their paths."""
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(ORACLE_DIR / "build.sh")], capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    assert proc.returncode == 0, f"tests/webhook-oracle/build.sh failed:\n{proc.stderr}{proc.stdout}"
    sys.stderr.write(proc.stderr)
    print(f"oracle build: {time.monotonic() - t0:.1f}s")
    return dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)


def test_doc_lists_exactly_the_checked_differences(oracle: dict[str, str]):
    proc = subprocess.run([oracle["ORACLE"], "ids", "--doc", str(DOC)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_jwks_matches_azwi(oracle: dict[str, str], tmp_path: Path):
    proc = subprocess.run(
        [oracle["ORACLE"], "jwks", "--wid", str(wid_bin()), "--azwi", oracle["AZWI"], "--dir", str(tmp_path),
         "--doc", str(DOC)],
        capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )
    print(proc.stdout)
    rc, stderr = proc.returncode, proc.stderr
    assert rc == 0, f"webhook-oracle jwks exited {rc} (report: captured stdout)\n{stderr}"


def set_flag(args: list[str], name: str, value: str | None) -> list[str]:
    """args with --name=value (replacing any --name=...), or without it when value is None."""
    out = [a for a in args if not a.startswith(f"{name}=")]
    if value is not None:
        out.append(f"{name}={value}")
    return out


def extra_webhook(base: Webhook, root: Path, name: str, flags: dict, env: dict) -> Webhook:
    """Another `wid webhook` like the session's, on its own ports, with flags and environment changed."""
    ports = (free_port(), free_port(), free_port())
    args = list(base.args)
    for flag, value in {"--listen": f"127.0.0.1:{ports[0]}", "--health-addr": f"127.0.0.1:{ports[1]}",
                        "--metrics-addr": f"127.0.0.1:{ports[2]}", **flags}.items():
        args = set_flag(args, flag, value)
    hook = Webhook(args=args, env={**base.env, **env}, log=root / f"webhook-{name}.log", port=ports[0],
                   health_port=ports[1], metrics_port=ports[2], ca_bundle=base.ca_bundle)
    hook.start()
    return hook


CUSTOM = {
    "--custom-token-endpoint-annotation-suffix": "identity-binding",
    "--custom-token-endpoint-audience": "api://AKSIdentityBinding",
}
CA_DATA = "-----BEGIN CERTIFICATE-----\nMIIBdummy\n-----END CERTIFICATE-----\n"


def test_webhook_matches_upstream(kube: Kube, wid: Wid, webhook: Webhook, oracle: dict[str, str], tmp_path: Path):
    if webhook.extra_args:
        webhook.restart([])
    ns = kube.namespace("oracle")
    authority = wid.server + "/"
    stack = tmp_path / "azurestack.json"
    stack.write_text(json.dumps({"name": "AzureStackCloud", "activeDirectoryEndpoint": authority}))
    stack_empty = tmp_path / "azurestack-empty.json"
    stack_empty.write_text(json.dumps({"name": "AzureStackCloud"}))
    ca = tmp_path / "webhook-ca.crt"
    ca.write_bytes(base64.b64decode(webhook.ca_bundle))

    # (name, wid flags (None removes one), wid environment, upstream settings, generated pods)
    extra = [
        ("defaults", {"--authority-host": None, "--log-level": ""}, {"AZURE_ENVIRONMENT": "AzureCloud"},
         {"env": {"AZURE_ENVIRONMENT": "AzureCloud"}, "log_level": ""}),
        ("custom-endpoint-configmap",
         {**CUSTOM, "--authority-host": None, "--log-level": "trace", "--audience": "api://custom-default"},
         {"AZURE_ENVIRONMENT": "AzureChinaCloud", "AZURE_KUBERNETES_TOKEN_PROXY": "https://kubernetes.default.svc",
          "AZURE_KUBERNETES_SNI_NAME": "kubernetes.default.svc", "AZURE_KUBERNETES_CA_CONFIGMAP_NAME": "kube-root-ca.crt",
          "PROXY_IMAGE": "registry.example/proxy:test", "PROXY_INIT_IMAGE": "registry.example/proxy-init:test"},
         {"log_level": "trace", "audience": "api://custom-default"}),
        ("custom-endpoint-ctb",
         {"--custom-token-endpoint-annotation-suffix": "Identity-Binding",
          "--custom-token-endpoint-audience": "api://AKSIdentityBinding", "--authority-host": None, "--log-level": "all"},
         {"AZURE_ENVIRONMENT": "AzureUSGovernmentCloud", "AZURE_KUBERNETES_TOKEN_PROXY": "https://proxy.example:8443",
          "AZURE_KUBERNETES_CA_CTB_SIGNER_NAME": "example.com/wid-signer",
          "AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR": json.dumps(
              {"matchLabels": {"a": "b"}, "matchExpressions": [{"key": "k", "operator": "In", "values": ["v"]}]}),
          "PROXY_IMAGE": "ignored.example/proxy:1", "CONFIG_PROXY_IMAGE": "registry.example/config-proxy:1"},
         {"log_level": "all"}),
        ("custom-endpoint-cadata", {**CUSTOM, "--authority-host": None, "--log-level": "info"},
         {"AZURE_ENVIRONMENT": "AzureStackCloud", "AZURE_ENVIRONMENT_FILEPATH": str(stack_empty),
          "AZURE_KUBERNETES_TOKEN_PROXY": "https://proxy.example", "AZURE_KUBERNETES_CA_DATA": CA_DATA},
         {"log_level": "info"}),
    ]
    base_env = {"AZURE_TENANT_ID": wid.tenant}
    profiles = [{
        "name": "shipped", "url": webhook.url, "log_level": "debug", "generated": GENERATED,
        # wid's --authority-host, given to upstream the way it has: an AzureStackCloud environment file.
        "env": {**base_env, "AZURE_ENVIRONMENT": "AzureStackCloud", "AZURE_ENVIRONMENT_FILEPATH": str(stack)},
    }]
    hooks = []
    try:
        for i, (name, flags, env, up) in enumerate(extra):
            hook = extra_webhook(webhook, tmp_path, name, flags, env)
            hooks.append(hook)
            profile = {**copy.deepcopy(up), "name": name, "url": hook.url, "generated": 1000, "seed": SEED + 1 + i,
                       "env": {**base_env, **env, **up.get("env", {})}}
            if name.startswith("custom-endpoint"):
                profile["custom_suffix"] = flags["--custom-token-endpoint-annotation-suffix"]
                profile["custom_audience"] = flags["--custom-token-endpoint-audience"]
            profiles.append(profile)
        config = {
            "kubeconfig": str(kube.kubeconfig), "namespace": ns, "ca_file": str(ca), "doc": str(DOC),
            "seed": SEED, "workers": 4, "profiles": profiles, "log_file": str(tmp_path / "upstream.log"),
            # WID_ORACLE_ONLY=gen/42,unit/...: run only those cases and print each in full.
            "only": [c for c in os.environ.get("WID_ORACLE_ONLY", "").split(",") if c],
        }
        (tmp_path / "oracle.json").write_text(json.dumps(config, indent=2))
        proc = subprocess.run([oracle["ORACLE"], "webhook", "--config", str(tmp_path / "oracle.json")],
                              capture_output=True, text=True, timeout=RUN_TIMEOUT)
    finally:
        for hook in hooks:
            hook.stop()
    print(proc.stdout)
    rc, stderr = proc.returncode, proc.stderr
    assert rc == 0, (
        f"webhook-oracle exited {rc} (its report is the captured stdout; upstream's log is "
        f"{tmp_path / 'upstream.log'})\n{stderr}"
    )
