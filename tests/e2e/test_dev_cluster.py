"""`hack/dev-cluster.sh up` from nothing: it waits for what it needs (API ready, CRDs Established and
served, node Ready, operator ready) and says clearly what did not come up; `down` stops it all."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from support.controlplane import find_bin_dir

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "hack" / "dev-cluster.sh"


def dev(dev_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "KSLIM_DEV_DIR": str(dev_dir), **env}
    environ.pop("KUBECONFIG", None)
    return subprocess.run(
        [str(SCRIPT), *args], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=400, check=False
    )


def kubectl(dev_dir: Path, *args: str) -> str:
    command = [str(find_bin_dir() / "kubectl"), f"--kubeconfig={dev_dir / 'kubeconfig'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout


def test_up_waits_for_every_piece_and_down_stops_them(tmp_path: Path) -> None:
    dev_dir = tmp_path / "dev"
    try:
        # The operator cannot start: `up` says so, with its log, instead of hanging or going on.
        bad = dev(dev_dir, "up", KSLIM_OPERATOR_LOG_LEVEL="LOUD", KSLIM_DEV_WAIT_TIMEOUT="60")
        assert bad.returncode != 0
        assert "error: the operator (kslim_operator_ready 1): its process exited" in bad.stderr, bad.stderr
        assert "KSLIM_OPERATOR_LOG_LEVEL" in bad.stderr

        up = dev(dev_dir, "up")
        assert up.returncode == 0, up.stderr
        assert "control plane already running" in up.stderr and "starting the operator" in up.stderr
        crd = yaml.safe_load(kubectl(dev_dir, "get", "crd", "compressionjobs.kslim.dev", "-o", "yaml"))
        established = [c for c in crd["status"]["conditions"] if c["type"] == "Established"]
        assert established and established[0]["status"] == "True"
        node = yaml.safe_load(kubectl(dev_dir, "get", "node", "kslim-local", "-o", "yaml"))
        assert {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"] == "True"
        status = dev(dev_dir, "status")
        assert status.returncode == 0 and "operator:      running" in status.stdout, status.stdout

        again = dev(dev_dir, "up")
        assert again.returncode == 0 and "nothing to start" in again.stderr, again.stderr
    finally:
        down = dev(dev_dir, "down")
    assert down.returncode == 0, down.stderr
    assert dev(dev_dir, "status").returncode != 0
