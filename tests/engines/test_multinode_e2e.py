"""A multi-node CompressionJob end to end, as on a cluster: `kubectl apply` with
`spec.resources.workers: 2` -> the operator (under the chart's RBAC, multiNode.enabled) creates a
PaddleJob -> Kubeflow training-operator v1.8.1 creates two worker pods and their Services -> the
local kubelet runs the real runner in each, with its own IP and name resolution -> worker 0 leads,
worker 1 follows, both train every session -> Succeeded, with a report showing both took part.
Then one worker is killed mid-training: the engine fails the PaddleJob, kslim says why, nothing is
left running and no report is written."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_stack import ARTIFACTS_CLAIM, Stack, running_stack
from kslim_api.contract import JOB_NAME_ENV, NODE_RANK_ENV, parse_termination_message
from kubernetes import client
from support import kube
from support.controlplane import ControlPlane
from support.engines import TrainingOperator
from support.kube import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.engines, pytest.mark.slow, pytest.mark.timeout(900)]

OUTPUT = f"pvc://{ARTIFACTS_CLAIM}/jobs"


@pytest.fixture(scope="module")
def stack(
    engines_control_plane: ControlPlane,
    training_operator: TrainingOperator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    kube.apply_crds(engines_control_plane, Path(__file__).resolve().parents[2] / "crds")
    with (
        kube.api_client_for(engines_control_plane.kubeconfig) as api,
        running_stack(
            engines_control_plane,
            api,
            tmp_path_factory.mktemp("multinode"),
            chart_values=["--set", "multiNode.enabled=true"],
        ) as stack,
    ):
        yield stack


def _job(name: str, iterations: int = 6, fine_tune: int = 4) -> dict[str, Any]:
    """Synthetic data (each worker generates its own copy), a baseline trained from scratch and a
    pruning step that fine-tunes: two training sessions across the two workers."""
    return {
        "apiVersion": "kslim.dev/v1alpha1",
        "kind": "CompressionJob",
        "metadata": {"name": name},
        "spec": {
            "model": {
                "architecture": "yolov3_mobilenet_v1",
                "width": "0.25",
                "numClasses": 3,
                "inputSize": 96,
            },
            "dataset": {
                "format": "synthetic",
                "synthetic": {"trainImages": 16, "valImages": 4, "imageSize": 96, "classes": 3, "seed": 3},
            },
            "strategy": [
                {"prune": {"ratio": "0.2", "criterion": "l1_norm", "fineTune": {"iterations": fine_tune}}}
            ],
            "train": {
                "iterations": iterations,
                "batchSize": 2,
                "workers": 0,
                "logEveryIterations": 2,
                "checkpointEveryIterations": 1000,
                "warmupIterations": 1,
                "learningRate": "0.002",
            },
            "benchmark": {"device": "cpu", "iterations": 3, "warmup": 1, "threads": 1},
            "evaluation": {"batchSize": 4},
            "output": {"uri": OUTPUT},
            "resources": {"gpus": 0, "workers": 2, "cpu": "1", "memory": "3Gi"},
        },
    }


def _cj(stack: Stack, name: str) -> dict[str, Any]:
    found: Any = client.CustomObjectsApi(stack.api).get_namespaced_custom_object(
        "kslim.dev", "v1alpha1", stack.namespace, "compressionjobs", name
    )
    return dict(found)


def _condition(cj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in (cj.get("status") or {}).get("conditions") or [] if c["type"] == kind), None)


def _finished(stack: Stack, name: str, timeout: float) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        cj = _cj(stack, name)
        return cj if (cj.get("status") or {}).get("phase") in ("Succeeded", "Failed") else None

    try:
        return wait_for(done, f"{name} finished", timeout=timeout, interval=1.0)
    except TimeoutError:
        pytest.fail(f"{name} did not finish: {json.dumps(_cj(stack, name).get('status'), indent=1)}\n"
                    f"{stack.diagnostics()}", pytrace=False)  # fmt: skip


def _pods(stack: Stack, name: str) -> list[client.V1Pod]:
    core = client.CoreV1Api(stack.api)
    return list(core.list_namespaced_pod(stack.namespace, label_selector=f"kslim.dev/job-name={name}").items)


def _termination(pod: client.V1Pod) -> Any:
    (status,) = pod.status.container_statuses
    return parse_termination_message(status.state.terminated.message if status.state.terminated else None)


def test_two_workers_train_together_and_worker_0_reports(stack: Stack) -> None:
    stack.apply(_job("duo"))
    cj = _finished(stack, "duo", timeout=600)
    assert cj["status"]["phase"] == "Succeeded", json.dumps(cj["status"], indent=1) + stack.diagnostics()
    pods = {p.metadata.name: p for p in _pods(stack, "duo")}
    assert set(pods) == {"duo-worker-0", "duo-worker-1"}
    ips = {p.status.pod_ip for p in pods.values()}
    assert len(ips) == 2  # each worker its own address, reached by name through its Service

    report = json.loads((stack.local_path(f"{OUTPUT}/duo") / "report.json").read_text())
    trains = {row["name"]: row["train"] for row in report["rows"]}
    assert trains["baseline"]["ranks"] == 2 and trains["baseline"]["nodes"] == 2
    assert trains["baseline"]["worker_steps"] == [6, 6] and trains["baseline"]["global_batch"] == 4
    assert trains["step1-prune"]["worker_steps"] == [4, 4]
    assert cj["status"]["result"]["ap"] is not None  # worker 0's report is the job's

    follower = _termination(pods["duo-worker-1"])
    assert follower.message.startswith("worker 1 of 2: took part in 2 training sessions, 10 steps")
    assert not follower.artifacts
    log = stack.kubectl("logs", "duo-worker-0").stdout
    assert "data parallel over 2 processes on 2 nodes" in log


def _runner_pid(job: str, rank: int) -> int | None:
    """The `kslim run` process of a worker (its data-parallel processes carry the same environment)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"run" not in cmdline or not any(part.endswith(b"kslim") for part in cmdline[:2]):
            continue
        if f"{JOB_NAME_ENV}={job}".encode() in environ and f"{NODE_RANK_ENV}={rank}".encode() in environ:
            return int(entry.name)
    return None


def test_a_worker_killed_mid_training_fails_the_job_with_a_reason(stack: Stack) -> None:
    stack.apply(_job("cut", iterations=2000))

    def training() -> dict[str, Any] | None:
        progress = (_cj(stack, "cut").get("status") or {}).get("progress") or {}
        return progress if progress.get("total") == 2000 and (progress.get("step") or 0) >= 10 else None

    wait_for(training, "baseline training on both workers", timeout=300, interval=1.0)
    pid = wait_for(lambda: _runner_pid("cut", 1), "worker 1's runner process", timeout=30)
    os.kill(pid, signal.SIGKILL)
    started = time.monotonic()
    cj = _finished(stack, "cut", timeout=120)
    assert cj["status"]["phase"] == "Failed"
    failed = _condition(cj, "Failed")
    assert failed is not None and failed["status"] == "True"
    assert "137" in failed["message"], failed  # the killed worker is named as the cause
    assert time.monotonic() - started < 120  # no silent hang
    # nothing left running: the engine deleted the leader (cleanPodPolicy Running)
    wait_for(
        lambda: (
            all(
                p.status.phase in ("Succeeded", "Failed") or p.metadata.deletion_timestamp
                for p in _pods(stack, "cut")
            )
            or not _pods(stack, "cut")
        ),
        "no worker left running",
        timeout=60,
    )
    wait_for(lambda: _runner_pid("cut", 0) is None, "worker 0's process gone", timeout=60)
    assert not (stack.local_path(f"{OUTPUT}/cut") / "report.json").exists()  # no report, no half report
