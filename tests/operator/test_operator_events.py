"""Events: one per transition a user cares about, none when nothing changed."""

from __future__ import annotations

from kslim_operator import conditions as cond
from kslim_operator.events import transition_events
from kslim_operator.observe import Observation


def _st(phase: str, running_reason: str, accepted: bool = True, **extra):  # type: ignore[no-untyped-def]
    desired = [cond.Desired("Running", phase == "Running", running_reason)]
    if accepted:
        desired.append(cond.Desired("Accepted", True, "JobCreated"))
    return {"phase": phase, "conditions": cond.merge([], desired, generation=1, now="t"), **extra}


def _reasons(before, after, obs):  # type: ignore[no-untyped-def]
    return [(e.type, e.reason) for e in transition_events(before, after, obs, "yolo")]


def test_created_queued_started_stage_succeeded() -> None:
    queued = _st("Pending", "Queued")
    assert _reasons({}, queued, Observation("Pending", "Queued", "wait")) == [
        ("Normal", "JobCreated"),
        ("Normal", "Queued"),
    ]
    running = _st("Running", "Running", attempts=1, stage="baseline")
    assert _reasons(queued, running, Observation("Running", "Running", "")) == [
        ("Normal", "Started"),
        ("Normal", "StageChanged"),
    ]
    assert _reasons(running, running, Observation("Running", "Running", "")) == []
    done = _st("Succeeded", "Completed", attempts=1, stage="report")
    assert _reasons(running, done, Observation("Succeeded", "Completed", "AP ...")) == [
        ("Normal", "Succeeded")
    ]


def test_failures_retries_and_blocked_pods_warn() -> None:
    running = _st("Running", "Running", attempts=1)
    retry = _st("Pending", "PodStarting", attempts=2)
    obs = Observation("Pending", "PodStarting", "", last_failure="exit code 1")
    assert ("Warning", "Retrying") in _reasons(running, retry, obs)
    pulled = _st("Pending", "ImagePullFailed")
    assert _reasons(
        _st("Pending", "PodStarting"), pulled, Observation("Pending", "ImagePullFailed", "x")
    ) == [("Warning", "ImagePullFailed")]
    failed = _st("Failed", "QualityGateFailed")
    assert _reasons(running, failed, Observation("Failed", "QualityGateFailed", "AP drop")) == [
        ("Warning", "QualityGateFailed")
    ]


def test_suspend_and_resume() -> None:
    running = _st("Running", "Running")
    suspended = _st("Suspended", "Suspended")
    assert _reasons(running, suspended, Observation("Suspended", "Suspended", "")) == [
        ("Normal", "Suspended")
    ]
    assert ("Normal", "Resumed") in _reasons(suspended, running, Observation("Running", "Running", ""))
