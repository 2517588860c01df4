"""`python -m kslim_operator` as a process: settings check, Lease leader election, probes, /metrics."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from cj_samples import cj_body, with_spec
from kubernetes import client
from operator_harness import Jobs, free_port


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read()
    except OSError:
        return 0, b""


@contextmanager
def operator_process(
    kubeconfig: Path, namespace: str, identity: str, log: Path
) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    health, metrics = free_port(), free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "KSLIM_OPERATOR_NAMESPACES": namespace,
        "KSLIM_OPERATOR_LEADER_ELECTION_NAMESPACE": namespace,
        "KSLIM_OPERATOR_IDENTITY": identity,
        "KSLIM_OPERATOR_HEALTH_PORT": str(health),
        "KSLIM_OPERATOR_METRICS_PORT": str(metrics),
        "KSLIM_OPERATOR_LEASE_DURATION_SECONDS": "4",
        "KSLIM_OPERATOR_RENEW_DEADLINE_SECONDS": "3",
        "KSLIM_OPERATOR_RETRY_PERIOD_SECONDS": "0.5",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kslim_operator"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield proc, health, metrics
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_bad_settings_stop_the_operator_with_exit_2() -> None:
    env = {**os.environ, "KSLIM_OPERATOR_MAX_CONCURRENT_JOBS": "many"}
    result = subprocess.run(
        [sys.executable, "-m", "kslim_operator"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "KSLIM_OPERATOR_MAX_CONCURRENT_JOBS" in result.stderr


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has a SIGTERM handler installed (bit 15 of SigCgt in /proc/PID/status)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_operator_is_still_starting_ends_it_with_exit_0(
    signum: int, tmp_path: Path
) -> None:
    # an API server that is not there: whatever point of start-up the signal meets, nothing may hang
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "KSLIM_OPERATOR_HEALTH_PORT": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kslim_operator"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while not _catches_sigterm(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        assert proc.poll() is None, "the operator ended before the signal was sent"
        started = time.monotonic()
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out.decode(errors="replace")
    assert b"Traceback" not in out, out.decode(errors="replace")
    # the handler is in place before Kopf is imported, so the signal met the start-up path
    assert b"asked to stop while starting" in out, out.decode(errors="replace")
    assert took < 5.0, f"the operator took {took:.1f} s to exit"


@pytest.mark.cluster
def test_two_replicas_never_both_act_and_the_standby_takes_over(
    jobs: Jobs, kube_api: client.ApiClient, namespace: str, kubeconfig: Path, tmp_path: Path
) -> None:
    coord = client.CoordinationV1Api(kube_api)
    lease = lambda: coord.read_namespaced_lease("kslim-operator", namespace).spec.holder_identity  # noqa: E731
    with operator_process(kubeconfig, namespace, "replica-a", tmp_path / "a.log") as (a, a_health, a_metrics):
        jobs.wait(
            "replica-a leads", lambda: _get(f"http://127.0.0.1:{a_metrics}/metrics")[0] == 200, timeout=60
        )
        assert lease() == "replica-a"
        with operator_process(kubeconfig, namespace, "replica-b", tmp_path / "b.log") as (
            b,
            b_health,
            b_metrics,
        ):
            status, body = jobs.wait(
                "standby health", lambda: (r := _get(f"http://127.0.0.1:{b_health}/healthz"))[0] and r
            )
            assert status == 200 and json.loads(body) == {"standby": True}
            assert _get(f"http://127.0.0.1:{b_metrics}/metrics")[0] == 0  # the standby runs nothing
            jobs.create(cj_body(name="first"))
            jobs.wait("Job of first", lambda: jobs.job("first"), timeout=30)
            assert jobs.wait(
                "Kopf's probe on the leader", lambda: _get(f"http://127.0.0.1:{a_health}/healthz")[0] == 200
            )
            a.send_signal(signal.SIGTERM)
            assert a.wait(timeout=30) == 0
            jobs.wait("replica-b leads", lambda: lease() == "replica-b", timeout=30)
            jobs.wait(
                "b serves metrics",
                lambda: _get(f"http://127.0.0.1:{b_metrics}/metrics")[0] == 200,
                timeout=60,
            )
            jobs.create(cj_body(name="second"))
            jobs.wait("Job of second", lambda: jobs.job("second"), timeout=30)
            _, text = _get(f"http://127.0.0.1:{b_metrics}/metrics")
            assert b'kslim_jobs{phase="Pending"} 2.0' in text and b"kslim_operator_ready 1.0" in text
            promtool = shutil.which("promtool")
            assert promtool, "promtool missing: run `make tools`"
            check = subprocess.run(
                [promtool, "check", "metrics"], input=text, capture_output=True, check=False
            )
            assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
            assert b.poll() is None
    # one Job per CompressionJob, whoever created it
    assert sorted(j.metadata.name for j in jobs.batch.list_namespaced_job(namespace).items) == [
        "first",
        "second",
    ]


class Relay:
    """A TCP relay in front of the API server; `freeze()` makes it an API server that stops
    answering (connections stay open, nothing comes back), as when the control plane hangs."""

    def __init__(self, server_url: str) -> None:
        parsed = urllib.parse.urlsplit(server_url)
        self.target = (parsed.hostname or "127.0.0.1", parsed.port or 443)
        self.frozen = threading.Event()
        self.closed = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for src, dst in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                while self.frozen.is_set() and not self.closed.is_set():
                    time.sleep(0.05)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def kubeconfig(self, original: Path, path: Path) -> Path:
        config = yaml.safe_load(original.read_text())
        for cluster in config["clusters"]:
            cluster["cluster"]["server"] = f"https://127.0.0.1:{self.port}"
        path.write_text(yaml.safe_dump(config))
        return path

    def close(self) -> None:
        self.closed.set()
        self.listener.close()


def _stop_within(proc: subprocess.Popen[bytes], seconds: float) -> int:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=30)
    took = time.monotonic() - started
    assert took < seconds, f"the operator took {took:.1f} s to exit after SIGTERM"
    return code


@pytest.mark.cluster
def test_sigterm_stops_the_operator_within_seconds_busy_or_with_a_hung_api_server(
    jobs: Jobs, kube_api: client.ApiClient, namespace: str, kubeconfig: Path, tmp_path: Path
) -> None:
    coord = client.CoordinationV1Api(kube_api)
    server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    relay = Relay(server)
    via_relay = relay.kubeconfig(kubeconfig, tmp_path / "kubeconfig")
    try:
        # a standby whose Lease requests hang
        coord.create_namespaced_lease(
            namespace,
            client.V1Lease(
                metadata=client.V1ObjectMeta(name="kslim-operator"),
                spec=client.V1LeaseSpec(holder_identity="someone-else", lease_duration_seconds=3600),
            ),
        )
        with operator_process(via_relay, namespace, "standby", tmp_path / "standby.log") as (proc, health, _):
            jobs.wait("standby health", lambda: _get(f"http://127.0.0.1:{health}/healthz")[0] == 200)
            relay.frozen.set()
            time.sleep(1.0)
            assert _stop_within(proc, 3.0) == 0
        relay.frozen.clear()
        coord.delete_namespaced_lease("kslim-operator", namespace)

        # a leader in the middle of a burst: stops, and hands the Lease back
        with operator_process(via_relay, namespace, "busy", tmp_path / "busy.log") as (proc, _, metrics):
            jobs.wait("leader", lambda: _get(f"http://127.0.0.1:{metrics}/metrics")[0] == 200, timeout=60)
            for i in range(40):
                jobs.create(cj_body(name=f"burst-{i}", spec=with_spec(resources={"gpus": 0})))
            jobs.wait("first Jobs", lambda: len(jobs.batch.list_namespaced_job(namespace).items) >= 5)
            assert _stop_within(proc, 5.0) == 0
        assert coord.read_namespaced_lease("kslim-operator", namespace).spec.holder_identity is None

        # a leader whose API server stops answering (the Lease cannot be handed back: it expires)
        with operator_process(via_relay, namespace, "hung", tmp_path / "hung.log") as (proc, _, metrics):
            jobs.wait("leader", lambda: _get(f"http://127.0.0.1:{metrics}/metrics")[0] == 200, timeout=60)
            relay.frozen.set()
            time.sleep(1.0)
            assert _stop_within(proc, 5.0) == 0
    finally:
        relay.close()
