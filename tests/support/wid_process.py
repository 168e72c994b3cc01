"""A real `wid serve` process for the Python test suites (tests/sdk/python, tests/e2e): start it on
a loopback port with its own data dir and CLI profile, wait until it is ready, run the CLI against
it, stop it with SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
CLI_TIMEOUT = 60.0


class CliError(AssertionError):
    pass


@dataclass
class Wid:
    """A running `wid serve`."""

    bin: Path
    root: Path
    proc: subprocess.Popen
    profile: dict
    ca: Path
    cli_env: dict
    log: Path
    extra: dict = field(default_factory=dict)

    @property
    def server(self) -> str:
        return self.profile["server"]

    @property
    def tenant(self) -> str:
        return self.profile["tenantId"]

    def cli(self, *args: str) -> str:
        """Runs `wid ARGS…` with this server's profile; returns stdout (unstripped)."""
        r = subprocess.run(
            [str(self.bin), *args], env=self.cli_env, capture_output=True, text=True, timeout=CLI_TIMEOUT
        )
        if r.returncode != 0:
            raise CliError(f"wid {' '.join(args)} exited with {r.returncode}:\n{r.stderr}{r.stdout}")
        return r.stdout

    def tsv(self, *args: str) -> str:
        return self.cli(*args, "-o", "tsv").strip()


def wid_bin() -> Path:
    """The binary under test: `WID_BIN`, else target/debug/wid."""
    configured = os.environ.get("WID_BIN")
    path = Path(configured) if configured else REPO / "target" / "debug" / "wid"
    if not path.is_absolute():
        path = REPO / path
    if not path.is_file():
        pytest.exit(f"wid binary not found at {path}; build it (cargo build -p wid) or set WID_BIN", 4)
    return path


def http_get(url: str, ca: Optional[Path] = None, timeout: float = 5) -> tuple[int, bytes]:
    """GET without proxies (everything is on loopback), trusting `ca` if given."""
    ctx = ssl.create_default_context(cafile=str(ca)) if ca else None
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
    try:
        with opener.open(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def start_wid(
    root: Path,
    extra_args: list[str],
    env: Optional[dict] = None,
    data: Optional[Path] = None,
    ready: Optional[Callable[[dict, Path], bool]] = None,
    cls: type = Wid,
) -> Wid:
    """Starts `wid serve ARGS` (profile in ROOT/profile.json, log in ROOT/serve.log) and waits until
    `ready(profile, ca)` (default: GET {server}/readyz answers 200, trusting the CA)."""
    ready = ready or (lambda profile, ca: http_get(f"{profile['server']}/readyz", ca)[0] == 200)
    binary = wid_bin()
    data = data or root / "data"
    profile_path = root / "profile.json"
    cli_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root),
        "LANG": "C.UTF-8",
        "WID_CONFIG": str(profile_path),
    }
    log_path = root / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(binary), "serve", *extra_args],
            env={**cli_env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    ca = data / "ca.pem"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"wid serve exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}")
        try:
            profile = json.loads(profile_path.read_text())
            if ca.is_file() and ready(profile, ca):
                return cls(bin=binary, root=root, proc=proc, profile=profile, ca=ca, cli_env=cli_env, log=log_path)
        except (OSError, ValueError, KeyError):
            pass  # not written yet, half written, or not listening yet
        if time.monotonic() > deadline:
            stop_process(proc)
            raise RuntimeError(f"wid serve not ready after {START_TIMEOUT}s:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.1)


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 15 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
