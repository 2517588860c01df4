"""The end-to-end stack's pieces (used by tests/e2e/conftest.py's `stack` fixture and the tests):
the Helm chart's ServiceAccount and RBAC, a kubeconfig for it, the operator and the local kubelet as
subprocesses."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from support import kube
from support.controlplane import ControlPlane, log_tail
from support.kubelet import NODE_NAME

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "helm" / "kslim"
RELEASE = "kslim-e2e"
RUNNER_IMAGE = "kslim/runner:e2e"
ARTIFACTS_CLAIM = "kslim-artifacts"  # examples/quickstart.yaml writes to pvc://kslim-artifacts/...
START_TIMEOUT = 90.0
STOP_TIMEOUT = 5.0  # a well-behaved process exits at once on SIGTERM; then it is killed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    control_plane: ControlPlane
    api: client.ApiClient
    namespace: str
    kubelet_root: Path
    metrics_url: str
    logs: dict[str, Path]

    def kubectl(
        self, *args: str, timeout: float = 60.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.control_plane.kubectl("-n", self.namespace, *args, timeout=timeout, check=check)

    def apply(self, manifest: dict[str, Any]) -> None:
        self.control_plane.kubectl("apply", "-n", self.namespace, "-f", "-", input=json.dumps(manifest))

    def local_path(self, uri: str) -> Path:
        """Where the local kubelet keeps a pvc:// URI's files."""
        assert uri.startswith("pvc://"), uri
        return self.kubelet_root / "pvc" / uri[len("pvc://") :]

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=10) as response:
            return str(response.read().decode())

    def diagnostics(self) -> str:
        """The last lines of the operator's and the kubelet's logs (for failure messages)."""
        return "\n".join(f"--- {name} log:\n{log_tail(path, 30)}" for name, path in self.logs.items())


# ---- pieces


def helm(control_plane: ControlPlane, *args: str) -> str:
    command = [str(control_plane.bin_dir / "helm"), f"--kubeconfig={control_plane.kubeconfig}", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"helm {' '.join(args)} failed: {result.stderr}"
    return result.stdout


def install_chart(control_plane: ControlPlane, namespace: str, values: Sequence[str] = ()) -> str:
    """The chart with the operator scaled to 0 (it runs as a local process); returns its
    ServiceAccount. The schema wants replicas >= 1, and nothing would run that pod here anyway.
    `values`: more `--set` arguments."""
    helm(
        control_plane,
        "install", RELEASE, str(CHART), "--namespace", namespace, "--skip-crds",
        "--set", "operator.leaderElection=false", "--set", "runner.image.pullPolicy=Never", *values,
    )  # fmt: skip
    control_plane.kubectl(
        "scale", "deployment", "-n", namespace, "-l", f"app.kubernetes.io/instance={RELEASE}", "--replicas=0"
    )
    label = f"app.kubernetes.io/instance={RELEASE}"
    out = control_plane.kubectl(
        "get", "sa", "-n", namespace, "-l", label, "-o", "jsonpath={.items[0].metadata.name}"
    )
    return out.stdout.strip()


def service_account_kubeconfig(control_plane: ControlPlane, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig with a token of `account`: the operator gets exactly the chart's RBAC."""
    token = control_plane.kubectl("create", "token", account, "-n", namespace, "--duration=2h").stdout.strip()
    admin = yaml.safe_load(control_plane.kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [
            {"name": "operator", "context": {"cluster": admin["clusters"][0]["name"], "user": account}}
        ],
        "current-context": "operator",
    }
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def start_process(name: str, args: list[str], env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        return subprocess.Popen(
            args, env=env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_until(check: Any, what: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if check():
            return
        if process.poll() is not None:
            pytest.fail(f"{what}: the process exited ({process.returncode}):\n{log_tail(log)}", pytrace=False)
        time.sleep(0.2)
    pytest.fail(f"{what}: not ready after {START_TIMEOUT:.0f}s:\n{log_tail(log)}", pytrace=False)


def node_ready(api: client.ApiClient) -> bool:
    try:
        node = client.CoreV1Api(api).read_node(NODE_NAME)
    except client.exceptions.ApiException:
        return False
    conditions = (node.status.conditions if node.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def claim(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}},
    }


def clean_env() -> dict[str, str]:
    """This process's environment without kubeconfig or operator settings of the caller."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("KSLIM_", "KUBECONFIG"))}


def start_kubelet(
    control_plane: ControlPlane, api: client.ApiClient, root: Path, logs: Path
) -> subprocess.Popen[bytes]:
    """`python tests/support/kubelet.py` (the real runner), once its Node is Ready."""
    script = REPO_ROOT / "tests" / "support" / "kubelet.py"
    args = [sys.executable, str(script), "--kubeconfig", str(control_plane.kubeconfig), "--root", str(root)]
    process = start_process("kubelet", args, clean_env(), logs)
    wait_until(lambda: node_ready(api), "the local kubelet's Node", process, logs / "kubelet.log")
    return process


def start_operator(kubeconfig: Path, logs: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m kslim_operator` with the dev-cluster settings; returns it and its /metrics URL."""
    metrics_port = free_port()
    env = {
        **clean_env(),
        "KUBECONFIG": str(kubeconfig),
        "KSLIM_OPERATOR_IMAGE": RUNNER_IMAGE,
        "KSLIM_OPERATOR_IMAGE_PULL_POLICY": "Never",
        "KSLIM_OPERATOR_LEADER_ELECTION": "false",
        "KSLIM_OPERATOR_METRICS_PORT": str(metrics_port),
        "KSLIM_OPERATOR_HEALTH_PORT": str(free_port()),
        "KSLIM_OPERATOR_PROGRESS_INTERVAL_SECONDS": "1",
        "KSLIM_OPERATOR_STATUS_MIN_INTERVAL_SECONDS": "0.5",
    }
    process = start_process("operator", [sys.executable, "-m", "kslim_operator"], env, logs)
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    wait_until(lambda: answers(metrics_url), "the operator's /metrics", process, logs / "operator.log")
    return process, metrics_url


RELEASE_NAMESPACE_PREFIX = "kslim-e2e-system"


@contextlib.contextmanager
def running_stack(
    control_plane: ControlPlane, api: client.ApiClient, work: Path, chart_values: Sequence[str] = ()
) -> Iterator[Stack]:
    """Namespaces, the artifacts claim, the chart (with `chart_values`), the local kubelet and the
    operator under the chart's RBAC; everything removed at the end."""
    logs = work / "logs"
    logs.mkdir()
    system = f"{RELEASE_NAMESPACE_PREFIX}-{secrets.token_hex(3)}"
    namespace = f"kslim-e2e-{secrets.token_hex(3)}"
    for name in (system, namespace):
        kube.create_namespace(api, name)
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(claim(ARTIFACTS_CLAIM)))
    account = install_chart(control_plane, system, chart_values)
    operator_kubeconfig = service_account_kubeconfig(
        control_plane, system, account, work / "operator.kubeconfig"
    )
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(start_kubelet(control_plane, api, work / "kubelet", logs))
        operator, metrics_url = start_operator(operator_kubeconfig, logs)
        processes.append(operator)
        yield Stack(
            control_plane=control_plane,
            api=api,
            namespace=namespace,
            kubelet_root=work / "kubelet",
            metrics_url=metrics_url,
            logs={"operator": logs / "operator.log", "kubelet": logs / "kubelet.log"},
        )
    finally:
        # Delete the jobs while the operator and the kubelet still run: their pods stop cleanly.
        control_plane.kubectl("delete", "cjob", "--all", "-n", namespace, "--timeout=30s", check=False)
        for process in reversed(processes):
            stop_process(process)
        control_plane.kubectl("delete", "node", NODE_NAME, "--ignore-not-found", "--wait=false", check=False)
        helm(control_plane, "uninstall", RELEASE, "--namespace", system)
        for name in (namespace, system):
            kube.delete_namespace(api, name)
