"""Given a Job and pods like these, the CompressionJob is in that phase for that reason."""

from __future__ import annotations

import datetime

from cj_samples import cj_body, job_body, pod_body, report_text, terminated, with_spec
from kslim_operator.observe import observe
from kslim_operator.request import parse_request
from kslim_operator.views import job_view, pod_view

NOW = datetime.datetime(2026, 1, 1, 0, 1, 0, tzinfo=datetime.UTC)
REQ = parse_request(cj_body())


def _observe(job=None, pods=(), req=REQ, **kw):  # type: ignore[no-untyped-def]
    args = dict(
        job_created_before=False,
        queued=False,
        max_concurrent_jobs=0,
        missing_claims=[],
        now=NOW,
        start_timeout_seconds=300,
    )
    args.update(kw)
    return observe(
        req,
        job_view(job) if job else None,
        [pod_view(p) for p in pods],
        **args,  # type: ignore[arg-type]
    )


def _failed(reason: str, message: str = "") -> dict:  # type: ignore[type-arg]
    return {"conditions": [{"type": "Failed", "status": "True", "reason": reason, "message": message}]}


def test_no_job_yet_is_pending_creating() -> None:
    obs = _observe()
    assert (obs.phase, obs.reason, obs.terminal) == ("Pending", "Creating", False)


def test_a_job_deleted_under_a_started_job_fails_it() -> None:
    obs = _observe(job_created_before=True)
    assert (obs.phase, obs.reason, obs.terminal) == ("Failed", "JobDeleted", True)


def test_complete_job_succeeds_with_the_report() -> None:
    job = job_body(status={"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
    pod = pod_body(phase="Succeeded", state=terminated(0, report_text()))
    obs = _observe(job, [pod])
    assert (obs.phase, obs.reason, obs.terminal) == ("Succeeded", "Completed", True)
    assert obs.report is not None and obs.report.result is not None
    assert obs.report.result["ap"] == 0.306
    assert "AP 31.0 -> 30.6 (-0.4 points)" in obs.message and "speed-up 2.07x" in obs.message
    assert obs.attempts == 1


def test_user_error_exit_without_reason_is_runner_error() -> None:
    job = job_body(status={"failed": 1, **_failed("PodFailurePolicy", "Container runner ... exit code 2")})
    pod = pod_body(phase="Failed", state=terminated(2, "Traceback ... ValueError: bad"))
    obs = _observe(job, [pod])
    assert (obs.phase, obs.reason, obs.terminal) == ("Failed", "RunnerError", True)
    assert "exit code 2" in obs.message and "ValueError: bad" in obs.message


def test_runner_reason_and_message_win() -> None:
    msg = report_text(
        outcome="Failed",
        reason="InvalidInput",
        message="dataset.val.annotations: /mnt/pvc/data/val.json not found",
    )
    job = job_body(status={"failed": 1, **_failed("PodFailurePolicy")})
    obs = _observe(job, [pod_body(phase="Failed", state=terminated(2, msg))])
    assert obs.reason == "InvalidInput"
    assert "val.json not found" in obs.message


def test_quality_gate_exit_keeps_the_figures() -> None:
    msg = report_text(
        outcome="Failed", reason=None, qualityGate={"passed": False, "message": "AP drop 3.0 > 1.0"}
    )
    job = job_body(status={"failed": 1, **_failed("PodFailurePolicy")})
    obs = _observe(job, [pod_body(phase="Failed", state=terminated(3, msg))])
    assert obs.reason == "QualityGateFailed"
    assert obs.report is not None and obs.report.baseline is not None


def test_device_exit_code() -> None:
    job = job_body(status={"failed": 1, **_failed("PodFailurePolicy")})
    obs = _observe(job, [pod_body(phase="Failed", state=terminated(4))])
    assert obs.reason == "DeviceUnsupported"


def test_deadline_and_backoff() -> None:
    obs = _observe(
        job_body(status=_failed("DeadlineExceeded", "Job was active longer than specified deadline"))
    )
    assert obs.reason == "DeadlineExceeded" and "activeDeadlineSeconds (3600 s)" in obs.message
    pods = [
        pod_body(f"p{i}", phase="Failed", created=f"2026-01-01T00:00:0{i}Z", state=terminated(1, f"boom {i}"))
        for i in range(3)
    ]
    obs = _observe(job_body(status={"failed": 3, **_failed("BackoffLimitExceeded")}), pods)
    assert obs.reason == "BackoffLimitExceeded"
    assert "all 3 attempts failed" in obs.message and "boom 2" in obs.message


def test_oom_is_explained() -> None:
    job = job_body(status={"failed": 3, **_failed("BackoffLimitExceeded")})
    obs = _observe(job, [pod_body(phase="Failed", state=terminated(137, reason="OOMKilled"))])
    assert "ran out of memory" in obs.message and "4Gi" in obs.message


def test_suspended_queued_and_kueue() -> None:
    suspended = parse_request(cj_body(spec=with_spec(runPolicy={"suspend": True})))
    assert _observe(job_body(suspend=True), req=suspended).phase == "Suspended"
    obs = _observe(job_body(suspend=True), queued=True, max_concurrent_jobs=5)
    assert (obs.phase, obs.reason) == ("Pending", "Queued") and "maxConcurrentJobs=5" in obs.message
    kueue = parse_request(cj_body(labels={"kueue.x-k8s.io/queue-name": "q"}))
    job = job_body(suspend=True)
    job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] = "q"
    obs = _observe(job, req=kueue)
    assert (obs.phase, obs.reason) == ("Pending", "Queued") and "Kueue" in obs.message


def test_running_pod() -> None:
    pod = pod_body(phase="Running", state={"running": {}}, node="gpu-1")
    obs = _observe(job_body(status={"active": 1}), [pod])
    assert (obs.phase, obs.reason) == ("Running", "Running")
    assert obs.attempts == 1


def test_image_pull_failure_shows_then_fails_after_the_start_timeout() -> None:
    pod = pod_body(state={"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}})
    obs = _observe(job_body(status={"active": 1}), [pod])
    assert (obs.phase, obs.reason, obs.terminal) == ("Pending", "ImagePullFailed", False)
    assert "spec.template.image" in obs.message
    late = NOW + datetime.timedelta(minutes=10)
    obs = _observe(job_body(status={"active": 1}), [pod], now=late)
    assert (obs.phase, obs.reason, obs.terminal, obs.stop_job) == ("Failed", "ImagePullFailed", True, True)
    bad = pod_body(state={"waiting": {"reason": "InvalidImageName", "message": "invalid reference"}})
    assert _observe(job_body(status={"active": 1}), [bad]).terminal


def test_unschedulable_and_missing_claims() -> None:
    pod = pod_body(
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
            }
        ]
    )
    obs = _observe(job_body(status={"active": 1}), [pod])
    assert obs.reason == "Unschedulable" and "Insufficient nvidia.com/gpu" in obs.message
    obs = _observe(job_body(status={"active": 1}), [pod_body()], missing_claims=["data"])
    assert obs.reason == "PVCNotFound" and "data" in obs.message


def test_retrying_between_attempts() -> None:
    failed = pod_body("p0", phase="Failed", state=terminated(1, "CUDA error: launch failure"))
    obs = _observe(job_body(status={"failed": 1}), [failed])
    assert (obs.phase, obs.reason) == ("Pending", "Retrying")
    assert obs.last_failure is not None and "CUDA error" in obs.last_failure
    running = pod_body("p1", phase="Running", created="2026-01-01T00:00:09Z", state={"running": {}})
    obs = _observe(job_body(status={"failed": 1, "active": 1}), [failed, running])
    assert obs.phase == "Running" and obs.attempts == 2 and obs.last_failure
