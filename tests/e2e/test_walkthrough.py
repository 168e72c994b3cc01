"""scripts/walkthrough.sh --local: the seed 003 walkthrough end to end on loopback (its own etcd,
kube-apiserver, wid serve and wid webhook), ending with the secret the seed's application read —
with wid's CLI, and with the real az (--az, scripts/az.sh) for the walkthrough's az commands."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO, wid_bin


@pytest.mark.parametrize("flags", [["--local"], ["--local", "--az"]], ids=["wid", "az"])
def test_walkthrough_prints_the_secret(flags: list[str]):
    env = {**os.environ, "WID_BIN": str(wid_bin()), "PYTHON": os.environ.get("E2E_PYTHON", sys.executable)}
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "walkthrough.sh"), *flags],
        env=env, capture_output=True, text=True, timeout=1500,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-6000:]}"
    lines = proc.stdout.strip().splitlines()
    # As in the seed: `--value "Hello\!"` stores Hello\! (the backslash stays inside double quotes).
    assert lines[-1] == "Hello\\!", proc.stdout[-2000:]
    # The steps ran against the real cluster: the pod was mutated by the webhook.
    assert "SECRET_NAME:" in proc.stdout
    assert "AZURE_FEDERATED_TOKEN_FILE" in proc.stderr
    # ... and gave it wid's CA (--ca-bundle-configmap), which the application used.
    assert "REQUESTS_CA_BUNDLE" in proc.stderr
    if "--az" in flags:
        assert "az: register wid as a cloud" in proc.stderr
        # az's own output: the group it created, as JSON with Azure's shape.
        assert '"provisioningState": "Succeeded"' in proc.stdout
