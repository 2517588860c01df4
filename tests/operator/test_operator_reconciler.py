"""One reconcile pass at a time, with a fake API: what it creates, writes and posts."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from cj_samples import cj_body, job_body, pod_body, report_text, terminated
from kslim_operator.events import Event
from kslim_operator.metrics import Metrics
from kslim_operator.reconciler import JobMemory, Reconciler
from kslim_operator.settings import Settings
from kslim_operator.state import OperatorState
from kslim_operator.views import job_view, pod_view


class FakeKube:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.status: dict[str, Any] = {}

    async def create_configmap(self, body: dict[str, Any]) -> None:
        self.calls.append(("create_configmap", body["metadata"]["name"]))

    async def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("create_job", body["metadata"]["name"]))
        created = copy.deepcopy(body)
        created["metadata"]["uid"] = "job-uid"
        return created

    async def set_job_suspend(self, namespace: str, name: str, suspend: bool) -> dict[str, Any]:
        self.calls.append(("set_job_suspend", suspend))
        return job_body(name, namespace, suspend=suspend, generation=2)

    async def delete_job(self, namespace: str, name: str) -> None:
        self.calls.append(("delete_job", name))

    async def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("patch_status", patch))
        self.status = {**self.status, **{k: v for k, v in patch.items() if v is not None}}
        return {"status": copy.deepcopy(self.status)}

    async def pod_log_tail(self, namespace: str, pod: str, lines: int, limit_bytes: int) -> str:
        return ""

    async def missing_claims(self, namespace: str, claims: list[str]) -> list[str]:
        return []

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _setup(**settings: Any) -> tuple[Reconciler, OperatorState, FakeKube, Clock, list[Event]]:
    kube = FakeKube()
    state = OperatorState(settings=Settings(**settings), kube=kube, metrics=Metrics())  # type: ignore[arg-type]
    clock = Clock()
    return Reconciler(state, clock=clock), state, kube, clock, []


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_first_pass_creates_children_and_accepts() -> None:
    rec, state, kube, _, posted = _setup()
    delay = _run(rec.reconcile(cj_body(), JobMemory(), posted.append))
    assert kube.names() == ["create_configmap", "create_job", "patch_status"]
    status = kube.status
    assert status["phase"] == "Pending" and status["startTime"]
    assert [e.reason for e in posted] == ["JobCreated"]
    assert delay is not None and state.metrics.created._value.get() == 1


def test_invalid_spec_fails_once_and_is_not_retried() -> None:
    rec, state, kube, _, posted = _setup()
    body = cj_body()
    body["spec"]["model"] = {"architecture": "yolov9000"}
    delay = _run(rec.reconcile(body, JobMemory(), posted.append))
    assert delay is None  # the driver stops: nothing to retry
    assert kube.names() == ["patch_status"]
    failed = next(c for c in kube.status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "InvalidSpec" and "spec.model.architecture" in failed["message"]
    assert [e.reason for e in posted] == ["InvalidSpec"]
    assert state.metrics.failed.labels(reason="InvalidSpec")._value.get() == 1


def test_status_patches_are_rate_limited_per_job() -> None:
    rec, state, kube, clock, posted = _setup()
    mem = JobMemory()
    body = cj_body()
    _run(rec.reconcile(body, mem, posted.append))
    state.jobs = {("team-a", "yolo"): [job_view(job_body(status={"active": 1}))]}
    state.pods = {("team-a", "yolo"): [pod_view(pod_body(phase="Running", state={"running": {}}))]}
    clock.now += 0.3
    wait = _run(rec.reconcile(body, mem, posted.append))
    assert wait is not None and 0.69 < wait < 0.71  # held back: the last patch was 0.3 s ago
    assert kube.names().count("patch_status") == 1
    clock.now += 0.7
    _run(rec.reconcile(body, mem, posted.append))
    assert kube.names().count("patch_status") == 2 and kube.status["phase"] == "Running"
    clock.now += 5
    _run(rec.reconcile(body, mem, posted.append))
    assert kube.names().count("patch_status") == 2  # nothing changed: no patch at all


def test_queued_job_is_created_suspended_and_admitted_later() -> None:
    rec, state, kube, _, posted = _setup(max_concurrent_jobs=1)
    from kslim_operator.summary import summarize_job

    first, second = cj_body(name="a"), cj_body(name="b")
    second["metadata"]["creationTimestamp"] = "2026-01-01T00:00:01Z"
    state.cjs = {("team-a", "a"): [summarize_job(first)], ("team-a", "b"): [summarize_job(second)]}
    state.jobs = {("team-a", "a"): [job_view(job_body("a", status={"active": 1}))]}  # a holds the slot
    _run(rec.reconcile(second, JobMemory(), posted.append))
    assert kube.status["conditions"][1]["reason"] == "Queued"
    assert ("Normal", "Queued") in [(e.type, e.reason) for e in posted]
    state.jobs = {("team-a", "b"): [job_view(job_body("b", suspend=True))]}  # a is gone
    state.cjs = {("team-a", "b"): [summarize_job(second)]}
    mem = JobMemory()
    _run(rec.reconcile(second, mem, posted.append))
    assert ("set_job_suspend", False) in kube.calls


def test_user_error_from_the_pod_fails_the_job_at_once() -> None:
    rec, state, kube, _, posted = _setup()
    state.jobs = {("team-a", "yolo"): [job_view(job_body(status={"active": 1}))]}
    state.pods = {
        ("team-a", "yolo"): [
            pod_view(pod_body(phase="Failed", state=terminated(3, report_text(outcome="Failed"))))
        ]
    }
    body = cj_body(status={"startTime": "2026-01-01T00:00:00Z"})
    delay = _run(rec.reconcile(body, JobMemory(), posted.append))
    assert delay is None
    failed = next(c for c in kube.status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "QualityGateFailed"
    assert kube.status["result"]["ap"] == 0.306  # figures and artifacts are kept


def test_a_spec_change_after_start_is_not_silently_ignored() -> None:
    rec, state, _kube, _, posted = _setup()
    job = job_body(status={"active": 1})
    job["metadata"]["annotations"] = {"kslim.dev/spec-hash": "0000000000000000"}  # built from another spec
    state.jobs = {("team-a", "yolo"): [job_view(job)]}
    body = cj_body(status={"startTime": "2026-01-01T00:00:00Z"}, generation=2)
    mem = JobMemory()
    _run(rec.reconcile(body, mem, posted.append))
    _run(rec.reconcile(body, mem, posted.append))
    warnings = [e for e in posted if e.reason == "SpecChangeIgnored"]
    assert len(warnings) == 1 and warnings[0].type == "Warning" and "re-create" in warnings[0].message
