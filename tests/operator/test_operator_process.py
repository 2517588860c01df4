"""`python -m kslim_operator` as a process: settings check, Lease leader election, probes, /metrics."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cj_samples import cj_body
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
