"""What a real API server rarely does, on KMock (Kopf author's Kubernetes mock): 409 on create,
500s on writes, a dropped watch. The operator retries with backoff, converges, never crashes."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import kmock
import kopf
import kslim_operator.handlers  # noqa: F401  (registers the handlers)
import pytest
from cj_samples import cj_body

NS = "team-a"
CJ = kmock.resource("kslim.dev/v1alpha1/compressionjobs")
JOBS = kmock.resource("batch/v1/jobs")


def _declare(server: kmock.KubernetesEmulator) -> None:
    server.resources["kslim.dev/v1alpha1/compressionjobs"] = kmock.ResourceInfo(
        kind="CompressionJob",
        namespaced=True,
        verbs={"list", "watch", "get", "patch", "create", "delete"},
        subresources={"status"},
    )
    server.resources["v1/namespaces"] = kmock.ResourceInfo(
        kind="Namespace", namespaced=False, verbs={"list", "watch", "get"}
    )
    for res, kind in (
        ("batch/v1/jobs", "Job"),
        ("v1/pods", "Pod"),
        ("v1/configmaps", "ConfigMap"),
        ("v1/events", "Event"),
        ("v1/persistentvolumeclaims", "PersistentVolumeClaim"),
    ):
        server.resources[res] = kmock.ResourceInfo(
            kind=kind, namespaced=True, verbs={"list", "watch", "get", "patch", "create", "delete"}
        )


def _cr(name: str) -> dict[str, Any]:
    body = cj_body(name=name, namespace=NS)
    body["metadata"]["creationTimestamp"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body["metadata"]["uid"] = f"uid-{name}"
    body["metadata"]["resourceVersion"] = "1"
    return body


@pytest.fixture
def env(
    kmock: kmock.KubernetesEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> kmock.KubernetesEmulator:
    _declare(kmock)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": str(kmock.url).rstrip("/")}}],
        "users": [{"name": "kmock", "user": {"token": "kmock"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}],
        "current-context": "kmock",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config))
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setenv("KSLIM_OPERATOR_METRICS_PORT", "0")
    monkeypatch.setenv("KSLIM_OPERATOR_STATUS_MIN_INTERVAL_SECONDS", "0.1")
    return kmock


@contextlib.asynccontextmanager
async def _operator(memo: kopf.Memo) -> AsyncIterator[None]:
    stop = asyncio.Event()
    settings = kopf.OperatorSettings()
    # KMock 0.8 cannot parse /api/v1/namespaces; the watched namespace is named, no need to list.
    settings.scanning.disabled = True
    operator = kopf.operator(standalone=True, namespaces=[NS], memo=memo, stop_flag=stop, settings=settings)
    task = asyncio.create_task(operator)
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def _until(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        result = check()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


def _errors(memo: kopf.Memo, kind: str = "TransientError") -> float:
    state = getattr(memo, "state", None)
    return float(state.metrics.reconcile_errors.labels(kind=kind)._value.get()) if state else 0.0


def _status(server: kmock.KubernetesEmulator, name: str) -> dict[str, Any]:
    return dict(server.objects[CJ, NS, name].get("status") or {})


def _jobs(server: kmock.KubernetesEmulator) -> list[str]:
    return [key[2] for key, obj in server.objects.items() if key[0] == JOBS and not obj.deleted]


@pytest.mark.asyncio
async def test_500s_then_409_on_job_creation_end_with_exactly_one_job(env: kmock.KubernetesEmulator) -> None:
    # The first creation answers 500 although the server stored the Job (KMock keeps what it was
    # sent: a lost response); the retry must adopt that Job, not make another.
    env["post", JOBS][:1] << 500 << {"kind": "Status", "code": 500, "message": "etcd timeout"}
    env.objects[CJ, NS, "yolo"] = _cr("yolo")
    memo = kopf.Memo()
    async with _operator(memo):
        status = await _until(
            "Accepted", lambda: _status(env, "yolo").get("startTime") and _status(env, "yolo")
        )
        assert status["phase"] == "Pending"
        assert _jobs(env) == ["yolo"]
        assert _errors(memo) >= 1
        # The retry either sees the stored Job in the index already or meets 409 and reads it:
        # either way it adopts that Job and never makes a second one.
        assert len(list(env["post", JOBS])) in (1, 2)
        assert not env.objects[CJ, NS, "yolo"]["metadata"].get("finalizers")


@pytest.mark.asyncio
async def test_503s_on_status_patches_are_retried_and_the_job_stays_driven(
    env: kmock.KubernetesEmulator,
) -> None:
    status_patches = env["patch", CJ, kmock.subresource("status")]
    status_patches[:3] << 503 << {"kind": "Status", "code": 503, "message": "unavailable"}
    env.objects[CJ, NS, "yolo"] = _cr("yolo")
    memo = kopf.Memo()
    async with _operator(memo):
        await _until("a refused status patch", lambda: _errors(memo) >= 1)
        status = await _until("status", lambda: _status(env, "yolo").get("phase") and _status(env, "yolo"))
        assert status["phase"] == "Pending" and _jobs(env) == ["yolo"]
        # still driving the job after the errors: a suspension reaches the Job
        async with aiohttp.ClientSession(base_url=str(env.url)) as session:
            url = f"/apis/kslim.dev/v1alpha1/namespaces/{NS}/compressionjobs/yolo"
            patch = {"spec": {"runPolicy": {"suspend": True}}}
            headers = {"Content-Type": "application/merge-patch+json"}
            async with session.patch(url, data=json.dumps(patch), headers=headers) as response:
                assert response.status < 300
        await _until("Job suspended", lambda: env.objects[JOBS, NS, "yolo"]["spec"]["suspend"] is True)
        await _until("Suspended", lambda: _status(env, "yolo").get("phase") == "Suspended")


@pytest.mark.asyncio
async def test_dropped_watch_is_resumed(env: kmock.KubernetesEmulator) -> None:
    # The first watch of CompressionJobs ends at once (a dropped connection); Kopf watches again.
    env[kmock.action.WATCH, CJ][:1] << (b"",)
    memo = kopf.Memo()
    async with _operator(memo):
        await _until("first watch dropped", lambda: len(list(env[kmock.action.WATCH, CJ])) >= 2, timeout=30)
        async with aiohttp.ClientSession(base_url=str(env.url)) as session:
            url = f"/apis/kslim.dev/v1alpha1/namespaces/{NS}/compressionjobs"
            async with session.post(url, json=_cr("late")) as response:
                assert response.status < 300
        status = await _until(
            "late job accepted", lambda: _status(env, "late").get("startTime") and _status(env, "late")
        )
        assert status["phase"] == "Pending" and _jobs(env) == ["late"]
