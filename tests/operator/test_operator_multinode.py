"""Multi-node jobs (spec.resources.workers > 1): the PaddleJob the operator builds, how it reads one
back, and what it decides from a PaddleJob and its worker pods (pure; the cluster tests run it)."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from cj_samples import cj_body, report_text, terminated, with_spec
from kslim_api.contract import (
    HANDOVER_PORT,
    HANDOVER_TOKEN_ENV,
    MASTER_PORT,
    NODE_RANK_ENV,
    NODES_ENV,
    REPLICA_INDEX_LABEL,
)
from kslim_operator.builders import build_handover_secret, build_paddlejob
from kslim_operator.kube import NotFound, PermanentApiError
from kslim_operator.observe import observe
from kslim_operator.refusals import engine_refused
from kslim_operator.request import InvalidSpec, parse_request
from kslim_operator.settings import Settings
from kslim_operator.views import paddlejob_view, pod_view

NOW = datetime.datetime(2026, 1, 1, 0, 1, 0, tzinfo=datetime.UTC)
REQ = parse_request(
    cj_body(spec=with_spec(resources={"gpus": 4, "workers": 2}), labels={"kueue.x-k8s.io/queue-name": "q"})
)


def _worker(rank: int, *, phase: str = "Running", state: dict[str, Any] | None = None, **kw: Any) -> Any:
    status: dict[str, Any] = {"phase": phase, "conditions": []}
    status["containerStatuses"] = [{"name": "paddle", "state": state or {"running": {}}}]
    return pod_view(
        {
            "metadata": {
                "name": f"yolo-worker-{rank}",
                "labels": {"kslim.dev/job-name": "yolo", REPLICA_INDEX_LABEL: str(rank)},
                "creationTimestamp": "2026-01-01T00:00:05Z",
            },
            "spec": {"nodeName": f"node-{rank}"},
            "status": status,
            **kw,
        }
    )


def _paddlejob(conditions: list[dict[str, Any]] = (), suspend: bool = False, **workers: int) -> Any:  # type: ignore[assignment]
    return paddlejob_view(
        {
            "apiVersion": "kubeflow.org/v1",
            "kind": "PaddleJob",
            "metadata": {
                "name": "yolo",
                "namespace": "team-a",
                "uid": "pj-uid",
                "labels": {"kslim.dev/job-name": "yolo"},
                "ownerReferences": [{"uid": "uid-yolo", "controller": True}],
            },
            "spec": {"runPolicy": {"suspend": suspend}},
            "status": {"conditions": list(conditions), "replicaStatuses": {"Worker": workers}},
        }
    )


def _observe(job: Any, pods: list[Any], **kw: Any) -> Any:
    args: dict[str, Any] = dict(
        job_created_before=True,
        queued=False,
        max_concurrent_jobs=0,
        missing_claims=[],
        now=NOW,
        start_timeout_seconds=300,
    )
    args.update(kw)
    return observe(REQ, job, pods, **args)


# ---- what the operator builds


def test_the_paddlejob_runs_the_runner_pod_on_every_worker() -> None:
    body = build_paddlejob(REQ, Settings(), suspend=True)
    assert (body["apiVersion"], body["kind"], body["metadata"]["name"]) == (
        "kubeflow.org/v1",
        "PaddleJob",
        "yolo",
    )
    assert body["metadata"]["ownerReferences"][0]["uid"] == "uid-yolo"
    assert body["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "q"  # Kueue's Kubeflow integration
    policy = body["spec"]["runPolicy"]
    assert (policy["cleanPodPolicy"], policy["suspend"]) == ("Running", True)
    assert "backoffLimit" not in policy  # its path in training-operator deletes the failed pods too
    assert policy["activeDeadlineSeconds"] == 3600 and policy["ttlSecondsAfterFinished"] == 600
    workers = body["spec"]["paddleReplicaSpecs"]["Worker"]
    assert (workers["replicas"], workers["restartPolicy"]) == (2, "Never")
    pod = workers["template"]["spec"]
    assert "restartPolicy" not in pod  # training-operator's, from the replica spec
    (container,) = pod["containers"]
    assert container["name"] == "paddle"  # training-operator's admission requires it
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"  # GPUs per worker
    assert {p["containerPort"] for p in container["ports"]} == {MASTER_PORT, HANDOVER_PORT}
    env = {e["name"]: e for e in container["env"]}
    assert env[NODES_ENV]["value"] == "2"
    assert (
        env[NODE_RANK_ENV]["valueFrom"]["fieldRef"]["fieldPath"]
        == f"metadata.labels['{REPLICA_INDEX_LABEL}']"
    )
    assert env[HANDOVER_TOKEN_ENV]["valueFrom"]["secretKeyRef"]["name"] == "yolo-handover"
    assert workers["template"]["metadata"]["labels"]["kslim.dev/job-name"] == "yolo"  # the pods are watched
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False


def test_each_job_gets_its_own_random_token() -> None:
    a, b = build_handover_secret(REQ), build_handover_secret(REQ)
    token_a, token_b = a["stringData"]["handover-token"], b["stringData"]["handover-token"]
    assert token_a != token_b and len(token_a) >= 40
    assert a["immutable"] is True and a["metadata"]["ownerReferences"][0]["uid"] == "uid-yolo"


def test_a_multi_node_name_must_leave_room_for_the_worker_suffix() -> None:
    body = cj_body(name="x" * 54, spec=with_spec(resources={"workers": 2}))
    try:
        parse_request(body)
    except InvalidSpec as error:
        assert "at most 53 characters" in str(error)
    else:
        raise AssertionError("a 54-character multi-node name was accepted")


# ---- reading a PaddleJob


def test_paddlejob_conditions_read_as_a_jobs() -> None:
    job = _paddlejob([{"type": "Succeeded", "status": "True", "reason": "PaddleJobSucceeded"}], succeeded=2)
    assert job.kind == "PaddleJob" and job.complete and job.succeeded == 2
    failed = _paddlejob([{"type": "Failed", "status": "True", "reason": "PaddleJobFailed", "message": "m"}])
    assert failed.failed_condition is not None and failed.finished
    assert _paddlejob(suspend=True).suspend


def test_followers_done_before_the_leader_is_not_success() -> None:
    """Followers exit 0 once the leader says done, whatever its outcome: only the leader decides."""
    pods = [_worker(0), _worker(1, phase="Succeeded", state=terminated(0, '{"outcome":"Succeeded"}'))]
    obs = _observe(_paddlejob(active=1, succeeded=1), pods)
    assert (obs.phase, obs.reason) == ("Running", "Running")
    assert obs.attempts == 1


def test_success_takes_the_leaders_report() -> None:
    pods = [
        _worker(0, phase="Succeeded", state=terminated(0, report_text())),
        _worker(
            1, phase="Succeeded", state=terminated(0, '{"outcome":"Succeeded","message":"worker 1 of 2"}')
        ),
    ]
    obs = _observe(_paddlejob([{"type": "Succeeded", "status": "True"}], succeeded=2), pods)
    assert (obs.phase, obs.reason) == ("Succeeded", "Completed")
    assert obs.report is not None and obs.report.result is not None and obs.report.result["ap"] == 0.306


def test_the_leaders_user_error_fails_the_job_at_once_with_its_reason() -> None:
    msg = report_text(outcome="Failed", reason="InvalidInput", message="dataset.val: not found")
    pods = [_worker(0, phase="Failed", state=terminated(2, msg)), _worker(1)]
    obs = _observe(_paddlejob(active=1, failed=1), pods)
    assert (obs.phase, obs.reason, obs.terminal) == ("Failed", "InvalidInput", True)


def test_a_killed_worker_is_the_cause_not_the_leader_that_lost_it() -> None:
    def stopped(code: int, at: str, message: str | None = None) -> dict[str, Any]:
        state = terminated(code, message)
        state["terminated"]["finishedAt"] = at
        return state

    pods = [
        _worker(0, phase="Failed", state=stopped(1, "2026-01-01T00:00:50Z", "training: a process failed")),
        _worker(1, phase="Failed", state=stopped(137, "2026-01-01T00:00:40Z")),
    ]
    failed = [{"type": "Failed", "status": "True", "reason": "PaddleJobFailed", "message": "2 Worker failed"}]
    obs = _observe(_paddlejob(failed, failed=2), pods)
    assert (obs.phase, obs.terminal) == ("Failed", True)
    assert "137" in obs.message, obs.message


def test_a_worker_that_cannot_start_is_shown_while_the_leader_runs() -> None:
    waiting = _worker(
        1,
        phase="Pending",
        state={"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}},
    )
    obs = _observe(_paddlejob(active=2), [_worker(0), waiting])
    assert obs.reason == "ImagePullFailed"


# ---- the engine missing or not allowed


def test_no_paddlejob_resource_is_engine_not_installed() -> None:
    obs = engine_refused(NotFound("the server could not find the requested resource"))
    assert (obs.phase, obs.reason, obs.terminal) == ("Failed", "EngineNotInstalled", True)
    assert "training-operator" in obs.message and "workers to 1" in obs.message


def test_forbidden_paddlejobs_is_engine_not_enabled() -> None:
    error = PermanentApiError(
        403, "Forbidden", 'paddlejobs.kubeflow.org is forbidden: User "x" cannot create'
    )
    obs = engine_refused(error)
    assert obs.reason == "EngineNotEnabled" and "multiNode.enabled=true" in obs.message


def test_every_worker_done_completes_the_job_even_if_the_engine_has_not_said_so() -> None:
    """training-operator down at the end: the workers' own outcome still ends the job."""
    pods = [
        _worker(0, phase="Succeeded", state=terminated(0, report_text())),
        _worker(1, phase="Succeeded", state=terminated(0, '{"outcome":"Succeeded"}')),
    ]
    obs = _observe(_paddlejob(active=2), pods)
    assert (obs.phase, obs.reason) == ("Succeeded", "Completed")


def test_a_paddlejob_left_without_workers_fails_after_the_start_timeout() -> None:
    """training-operator not running (or refusing the pods): no silent wait forever."""
    job = dataclasses.replace(_paddlejob(), created="2026-01-01T00:00:00Z")  # NOW is a minute later
    waiting = _observe(job, [], start_timeout_seconds=300)
    assert (waiting.phase, waiting.reason) == ("Pending", "PodStarting")
    assert "training-operator" in waiting.message
    late = _observe(job, [], start_timeout_seconds=30)
    assert (late.phase, late.reason, late.terminal, late.stop_job) == (
        "Failed",
        "EngineNotResponding",
        True,
        True,
    )
    assert "kubectl describe paddlejob yolo" in late.message
