"""What a CompressionJob is doing, decided from its Job and pods (pure).

The decision order follows the Job's own: terminal conditions first (Failed, Complete), then
suspension, then the pod of the current attempt.
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass

from kslim_api.contract import (
    NO_RETRY_EXIT_CODES,
    PADDLEJOB_KIND,
    RUNNER_ERROR,
    Outcome,
    Phase,
    Reason,
    TerminationMessage,
    parse_termination_message,
    reason_for_exit_code,
)

from kslim_operator import names
from kslim_operator.request import JobRequest
from kslim_operator.views import JobView, PodView

IMAGE_PULL_WAITING = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "RegistryUnavailable", "SignatureValidationFailed"}
)
IMAGE_PERMANENT_WAITING = frozenset({"InvalidImageName", "ErrImageNeverPull"})
CONFIG_WAITING = frozenset({"CreateContainerConfigError", "CreateContainerError"})
#: Reasons a pod cannot start; with a start timeout they end the job.
BLOCKING_REASONS = frozenset({"ImagePullFailed", "Unschedulable", "PVCNotFound", "ContainerConfigError"})


@dataclass(frozen=True)
class Observation:
    phase: str
    reason: str
    message: str
    terminal: bool = False
    report: TerminationMessage | None = None
    attempts: int | None = None
    last_failure: str | None = None
    """What went wrong in the latest failed attempt (for the Retrying event)."""
    stop_job: bool = False
    """The operator ended the job (start timeout): delete the Job so its pod stops waiting."""

    @property
    def succeeded(self) -> bool:
        return self.phase == Phase.SUCCEEDED

    @property
    def failed(self) -> bool:
        return self.phase == Phase.FAILED


def parse_time(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _newest(pods: list[PodView]) -> PodView | None:
    return max(pods, key=lambda p: (p.created, p.name), default=None)


def describe_pod_failure(pod: PodView, req: JobRequest) -> str:
    """One sentence on why an attempt failed, with what to do when we know."""
    report = parse_termination_message(pod.termination_message)
    if report is not None and report.structured and report.message:
        return report.message
    if pod.terminated_reason == "OOMKilled":
        return (
            f"the runner ran out of memory (spec.resources.memory={req.spec.resources.memory}); raise it, "
            "or lower spec.train.batchSize / spec.train.workers"
        )
    code = (
        f"exit code {pod.exit_code}"
        if pod.exit_code is not None
        else (pod.terminated_reason or "no exit code")
    )
    text = f"the runner stopped with {code}"
    if report is not None and report.raw_text:
        text += f": {report.raw_text}"
    return text


def failure_reason(pod: PodView | None, report: TerminationMessage | None) -> str:
    """The Failed reason for a job the runner failed: the runner's own word, else by exit code."""
    if report is not None and report.reason and report.outcome != Outcome.SUCCEEDED:
        return report.reason
    return reason_for_exit_code(pod.exit_code if pod is not None else None)


def count_attempts(job: JobView, pods: list[PodView]) -> int:
    """Pods started so far: the Job's counters, or the pods seen if the counters lag (a failing pod
    is counted by the Job only once its tracking finalizer is gone). A multi-node job is one
    attempt (its PaddleJob does not retry)."""
    if job.kind == PADDLEJOB_KIND:
        return 1
    return max(job.attempts, len([p for p in pods if p.terminated or not p.deleting]))


def all_workers_succeeded(pods: list[PodView], workers: int) -> bool:
    done = {p.rank for p in pods if p.rank is not None and p.exit_code == 0 and p.phase == "Succeeded"}
    return done >= set(range(workers))


def _first_failure(failed: list[PodView]) -> PodView | None:
    """The failed pod that explains the outcome: the leader's when it stopped on purpose (a user
    error, the quality gate, the device: its report says why), else the worker that failed first
    (the others then lose their peer), else the newest."""
    deliberate = [p for p in failed if p.leader and p.exit_code in NO_RETRY_EXIT_CODES]
    if deliberate:
        return _newest(deliberate)
    timed = [p for p in failed if p.finished_at]
    if len(timed) > 1:
        return min(timed, key=lambda p: (p.finished_at or "", p.name))
    return _newest(failed)


def _failed_pods(pods: list[PodView]) -> list[PodView]:
    return [p for p in pods if p.terminated and (p.exit_code not in (None, 0) or p.phase == "Failed")]


def observe_failed_job(job: JobView, pods: list[PodView], req: JobRequest) -> Observation:
    cond = job.failed_condition
    assert cond is not None
    last = _first_failure(_failed_pods(pods))
    report = parse_termination_message(last.termination_message) if last else None
    last_failure = describe_pod_failure(last, req) if last else None
    attempts = count_attempts(job, pods)
    policy = req.spec.run_policy
    if cond.reason == "DeadlineExceeded":
        reason = "DeadlineExceeded"
        message = (
            "the job ran longer than spec.runPolicy.activeDeadlineSeconds "
            f"({policy.active_deadline_seconds} s); raise it, or shorten training "
            "(spec.train.epochs/iterations)"
        )
    elif cond.reason == "BackoffLimitExceeded":
        reason = "BackoffLimitExceeded"
        message = (
            f"all {attempts} attempts failed (spec.runPolicy.backoffLimit={policy.backoff_limit}); "
            f"last: {last_failure or cond.message or 'unknown'}"
        )
    elif cond.reason == "PodFailurePolicy" or last is not None:
        reason = failure_reason(last, report)
        message = last_failure or cond.message or "the runner failed"
    else:
        reason = cond.reason or RUNNER_ERROR
        message = cond.message or "the Job failed"
    return Observation(
        Phase.FAILED,
        reason,
        message,
        terminal=True,
        report=report,
        attempts=attempts,
        last_failure=last_failure,
    )


def observe_final_pod_failure(
    job: JobView, failed: list[PodView], pods: list[PodView], req: JobRequest
) -> Observation:
    pod = _newest(failed)
    assert pod is not None
    report = parse_termination_message(pod.termination_message)
    message = describe_pod_failure(pod, req)
    return Observation(
        Phase.FAILED,
        failure_reason(pod, report),
        message,
        terminal=True,
        report=report,
        attempts=count_attempts(job, pods),
        last_failure=message,
    )


def observe_complete_job(job: JobView, pods: list[PodView]) -> Observation:
    done = [p for p in pods if (p.exit_code == 0 or p.phase == "Succeeded") and p.leader]
    pod = _newest(done)
    report = parse_termination_message(pod.termination_message) if pod else None
    message = (
        summarize(report)
        if report is not None and report.structured
        else "completed (no report in the termination message)"
    )
    return Observation(
        Phase.SUCCEEDED,
        Reason.COMPLETED,
        message,
        terminal=True,
        report=report,
        attempts=count_attempts(job, pods),
    )


def _fmt(x: object, scale: float = 1.0, digits: int = 1) -> str | None:
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return f"{x * scale:.{digits}f}"
    return None


def summarize(report: TerminationMessage) -> str:
    """'AP 31.0 -> 30.6 (-0.4 points), speed-up 2.10x' from a report (AP shown in points)."""
    parts = []
    base = _fmt((report.baseline or {}).get("ap"), 100)
    res = _fmt((report.result or {}).get("ap"), 100)
    delta = _fmt((report.delta or {}).get("ap"), 100)
    if base and res:
        parts.append(f"AP {base} -> {res}" + (f" ({delta} points)" if delta else ""))
    speed = _fmt((report.delta or {}).get("speedup"), 1, 2)
    if speed:
        parts.append(f"speed-up {speed}x")
    if report.message:
        parts.append(report.message)
    return ", ".join(parts) or "completed"


def observe_pod(
    pod: PodView,
    req: JobRequest,
    *,
    missing_claims: list[str],
    now: datetime.datetime,
    start_timeout_seconds: int,
    attempts: int,
) -> Observation:
    """The current attempt's pod: running, or why it is not."""
    if pod.running:
        return Observation(
            Phase.RUNNING,
            "Running",
            f"attempt {attempts} running on {pod.node_name or 'a node'}",
            attempts=attempts,
        )
    image = req.spec.template.image or "the runner image"
    reason, message, permanent = "PodStarting", "the pod is starting", False
    if pod.waiting_reason in IMAGE_PERMANENT_WAITING or pod.waiting_reason in IMAGE_PULL_WAITING:
        permanent = pod.waiting_reason in IMAGE_PERMANENT_WAITING
        reason = "ImagePullFailed"
        message = (
            f"cannot pull {image}: {pod.waiting_message or pod.waiting_reason}; "
            "check spec.template.image and spec.template.imagePullSecrets"
        )
    elif missing_claims:
        reason = "PVCNotFound"
        message = (
            f"PersistentVolumeClaim {', '.join(missing_claims)} not found in namespace {req.namespace}; "
            "create it or fix the pvc:// URIs"
        )
    elif pod.unschedulable:
        reason = "Unschedulable"
        message = f"no node can run the pod: {pod.unschedulable}"
        if req.spec.resources.gpus > 0:
            message += " (GPU jobs need a node with a free nvidia.com/gpu of compute capability 6.x-8.x)"
    elif pod.waiting_reason in CONFIG_WAITING:
        reason = "ContainerConfigError"
        message = f"the container cannot be created: {pod.waiting_message or pod.waiting_reason}"
    if reason in BLOCKING_REASONS:
        since = parse_time(pod.created)
        waited = (now - since).total_seconds() if since else 0.0
        if permanent or (start_timeout_seconds > 0 and waited >= start_timeout_seconds):
            if not permanent:
                message += f" (waited {int(waited)} s)"
            return Observation(Phase.FAILED, reason, message, terminal=True, attempts=attempts, stop_job=True)
    return Observation(Phase.PENDING, reason, message, attempts=attempts)


def observe(
    req: JobRequest,
    job: JobView | None,
    pods: list[PodView],
    *,
    job_created_before: bool,
    queued: bool,
    max_concurrent_jobs: int,
    missing_claims: list[str],
    now: datetime.datetime,
    start_timeout_seconds: int,
    pod_create_failure: tuple[str, str] | None = None,
    kueue_message: str | None = None,
) -> Observation:
    """`pod_create_failure`: (reason, message) of the Job's latest FailedCreate Event, if any;
    `kueue_message`: why Kueue has not admitted it yet (its Workload's QuotaReserved condition)."""
    if job is None:
        if job_created_before:
            return Observation(
                Phase.FAILED,
                "JobDeleted",
                f"the Job {req.name} was deleted before it finished; delete and re-create the CompressionJob "
                "to run it again",
                terminal=True,
                stop_job=False,
            )
        return Observation(Phase.PENDING, "Creating", "creating the Job")
    if job.failed_condition is not None:
        return observe_failed_job(job, pods, req)
    if job.complete:
        return observe_complete_job(job, pods)
    # The pod decides before the Job says so (the Job controller batches pod updates for about a
    # second): with one completion, a pod that exited 0 completes the Job, and an exit code the
    # podFailurePolicy maps to FailJob fails it.
    # (A multi-node job's followers exit 0 whatever happened: only the leader decides; with every
    # worker done, the job is too, even when training-operator has not said so: it may be down.)
    if job.kind == "Job" and any(p.exit_code == 0 and p.phase == "Succeeded" for p in pods):
        return observe_complete_job(job, pods)
    if job.kind == PADDLEJOB_KIND and all_workers_succeeded(pods, req.spec.resources.workers):
        return observe_complete_job(job, pods)
    final = [p for p in pods if p.exit_code in NO_RETRY_EXIT_CODES and p.phase == "Failed" and p.leader]
    if final and not job.suspend:
        return observe_final_pod_failure(job, final, pods, req)
    attempts = count_attempts(job, pods)
    failed = _failed_pods(pods)
    newest_failed = _newest(failed)
    last_failure = describe_pod_failure(newest_failed, req) if newest_failed else None
    if job.suspend:
        if req.spec.run_policy.suspend:
            return Observation(
                Phase.SUSPENDED,
                "Suspended",
                "suspended by spec.runPolicy.suspend; set it to false to resume from the last stage "
                "checkpoint",
                attempts=attempts,
            )
        if queued:
            return Observation(
                Phase.PENDING,
                "Queued",
                f"waiting for a free slot (maxConcurrentJobs={max_concurrent_jobs})",
                attempts=attempts,
            )
        if job.kueue:
            return Observation(
                Phase.PENDING,
                "Queued",
                f"waiting for Kueue to admit the {job.kind} (queue {req.labels.get(names.LABEL_KUEUE_QUEUE)})"
                + (f": {kueue_message}" if kueue_message else ""),
                attempts=attempts,
            )
        return Observation(Phase.PENDING, "Starting", "starting the Job", attempts=attempts)
    live = [p for p in pods if not p.terminated and not p.deleting]
    # a worker that cannot start holds every other one up: it is the one to show
    pod = (
        _newest([p for p in live if not p.running]) or _newest([p for p in live if p.leader]) or _newest(live)
    )
    if pod is not None:
        obs = observe_pod(
            pod,
            req,
            missing_claims=missing_claims,
            now=now,
            start_timeout_seconds=start_timeout_seconds,
            attempts=max(attempts, 1),
        )
        return dataclasses.replace(obs, last_failure=last_failure)
    if job.kind == PADDLEJOB_KIND and failed:
        return Observation(  # for a moment: training-operator then fails the PaddleJob (no retries)
            Phase.RUNNING,
            "WorkerFailed",
            f"worker {newest_failed.rank if newest_failed else '?'} failed ({last_failure or 'no detail'}); "
            "the job ends",
            attempts=attempts,
            last_failure=last_failure,
        )
    if job.failed > 0:
        return Observation(
            Phase.PENDING,
            "Retrying",
            f"attempt {job.failed} failed ({last_failure or 'no detail'}); retrying "
            f"(spec.runPolicy.backoffLimit={req.spec.run_policy.backoff_limit})",
            attempts=attempts,
            last_failure=last_failure,
        )
    if pod_create_failure is not None:
        return observe_pod_create_failure(job, pod_create_failure, now, start_timeout_seconds, attempts)
    if job.kind == PADDLEJOB_KIND:
        return observe_paddlejob_without_workers(job, now, start_timeout_seconds)
    return Observation(
        Phase.PENDING, "PodStarting", "waiting for the Job to create the pod", attempts=attempts
    )


ENGINE_NOT_RESPONDING = "EngineNotResponding"


def observe_paddlejob_without_workers(
    job: JobView, now: datetime.datetime, start_timeout_seconds: int
) -> Observation:
    """An admitted PaddleJob with no worker pods: training-operator creates them within seconds; if
    it does not within the start timeout it is not running (or refuses them: its Events say why)."""
    since = parse_time(job.created)
    waited = (now - since).total_seconds() if since else 0.0
    message = "waiting for training-operator to create the PaddleJob's worker pods"
    if start_timeout_seconds > 0 and waited >= start_timeout_seconds:
        return Observation(
            Phase.FAILED,
            ENGINE_NOT_RESPONDING,
            f"training-operator created no worker pod for the PaddleJob in {int(waited)} s: check that it "
            f"runs (kubectl get pods -n kubeflow) and the PaddleJob's Events (kubectl describe paddlejob "
            f"{job.name})",
            terminal=True,
            attempts=1,
            stop_job=True,
        )
    return Observation(Phase.PENDING, "PodStarting", message, attempts=1)


def observe_pod_create_failure(
    job: JobView, failure: tuple[str, str], now: datetime.datetime, start_timeout_seconds: int, attempts: int
) -> Observation:
    """The Job cannot create its pod: the reason to wait on, and Failed once the start timeout passed."""
    reason, message = failure
    since = parse_time(job.created)
    waited = (now - since).total_seconds() if since else 0.0
    if start_timeout_seconds > 0 and waited >= start_timeout_seconds:
        return Observation(
            Phase.FAILED,
            reason,
            f"{message} (waited {int(waited)} s)",
            terminal=True,
            attempts=attempts,
            stop_job=True,
        )
    return Observation(Phase.PENDING, reason, message, attempts=attempts)
